"""bench_app: Hydra-composed LLM evaluation runner (vLLM + AISBench) with replayable config snapshots."""
