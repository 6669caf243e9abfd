"""SGLang (`python -m sglang.launch_server`): the worked example of adding an engine (README).

The same engine args (the document's `vllm:` block) mapped to SGLang's flags; rope scaling and other
model-config overrides travel in --json-model-override-args.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping

from bench_app.common.errors import UserError
from bench_app.common.net import http_get_json
from bench_app.engines.base import Engine, ServerFacts
from bench_app.engines.vllm import parse_rope_scaling

# Engine arg -> SGLang flag (booleans: a flag that is given when the value says so).
_FLAGS = {
    "host": "--host",
    "port": "--port",
    "tensor_parallel_size": "--tp-size",
    "max_model_len": "--context-length",
    "dtype": "--dtype",
    "gpu_memory_utilization": "--mem-fraction-static",
    "served_model_name": "--served-model-name",
    "seed": "--random-seed",
    "max_num_seqs": "--max-running-requests",
    "quantization": "--quantization",
    "kv_cache_dtype": "--kv-cache-dtype",
    "reasoning_parser": "--reasoning-parser",
}
_SWITCHES = {
    "trust_remote_code": ("--trust-remote-code", True),
    "enforce_eager": ("--disable-cuda-graph", True),
    "enable_prefix_caching": ("--disable-radix-cache", False),
}


@dataclass
class SglangEngine(Engine):
    name = "sglang"
    label = "SGLang"
    version_packages = {"sglang": ("sglang",), "torch": ("torch",), "transformers": ("transformers",)}

    def argv(self, engine_args: Mapping[str, Any], where: str = "vllm") -> List[str]:
        argv = [*self.command, "--model-path", str(engine_args["model_path"])]
        for key, flag in _FLAGS.items():
            if engine_args.get(key) is not None:
                argv += [flag, str(engine_args[key])]
        for key, (flag, when) in _SWITCHES.items():
            if engine_args.get(key) is when:
                argv.append(flag)
        if engine_args.get("max_num_batched_tokens") is not None:
            raise UserError(f"{where}: max_num_batched_tokens has no SGLang equivalent; use extra_args.")
        overrides = self.launch_details(engine_args, where)["json_model_override_args"]
        if overrides:
            argv += ["--json-model-override-args", json.dumps(overrides, sort_keys=True)]
        for key, value in sorted((engine_args.get("extra_args") or {}).items()):
            flag = "--" + key.replace("_", "-")
            argv += ([flag] if value is True else []) if isinstance(value, bool) else [flag, str(value)]
        return argv

    def launch_details(self, engine_args: Mapping[str, Any], where: str) -> Dict[str, Any]:
        overrides = dict(engine_args.get("hf_overrides") or {})
        rope = parse_rope_scaling(engine_args.get("rope_scaling"), where)
        if rope is not None:
            overrides["rope_scaling"] = rope
        return {"json_model_override_args": overrides or None}

    def argv_with_port(self, argv: List[str], port: int) -> List[str]:
        argv = list(argv)
        argv[argv.index("--port") + 1] = str(port)
        return argv

    def read_back(self, base_url: str) -> ServerFacts:
        first = ((http_get_json(base_url + "/v1/models") or {}).get("data") or [{}])[0]
        info = http_get_json(base_url + "/get_server_info") or {}
        return ServerFacts(
            served_model=first.get("id"),
            max_model_len=first.get("max_model_len"),
            version=info.get("version"),
        )
