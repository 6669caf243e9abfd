"""`python -m bench_app.compare ...` is `bench-app compare ...` (kept for scripts, older reproduce.sh)."""

if __name__ == "__main__":
    from bench_app.cli.tools import run_verb

    raise SystemExit(run_verb("compare"))
