"""Engines: the inference servers bench_app starts, chosen by `_target_` in conf/engine/*.yaml."""

from bench_app.engines.base import Engine, EngineServer, ServerFacts

__all__ = ["Engine", "EngineServer", "ServerFacts"]
