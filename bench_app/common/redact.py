"""Secret removal for everything bench_app writes (snapshots, metadata, reproduce.sh, copied logs)."""

from __future__ import annotations

import functools
import re
from typing import Any, Iterable, Mapping

REDACTED = "***REDACTED***"
# Whole name parts only: HF_TOKEN and api_key are secrets, max_num_batched_tokens and tokenizer are not.
_SECRET_NAME = re.compile(
    r"((^|[_.-])TOKEN($|[_.-])|SECRET|PASSW(OR)?D|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL"
    r"|(^|[_.-])KEY$|(^|[_.-])AUTH)",
    re.I,
)


# A setting that names the environment variable holding a secret (engine.api_key_env) is not one itself.
_NAMES_A_VARIABLE = re.compile(r"[_.-]env$", re.I)


@functools.lru_cache(maxsize=4096)  # the same few hundred keys, in every document written
def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(str(name))) and not _NAMES_A_VARIABLE.search(str(name))


def redact_mapping(data: Any) -> Any:
    """A copy of nested dicts/lists with the values of secret-looking keys replaced."""
    if isinstance(data, Mapping):
        return {
            k: (REDACTED if is_secret_name(k) and v not in (None, "") else redact_mapping(v))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [redact_mapping(v) for v in data]
    return data


def secret_values(env: Mapping[str, str], config: Any = None) -> list:
    """Values that must never be written: secret-named env vars and config entries."""
    values = [v for k, v in env.items() if is_secret_name(k) and v and len(v) >= 4]

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            for k, v in node.items():
                if is_secret_name(k) and isinstance(v, (str, int)) and len(str(v)) >= 4:
                    values.append(str(v))
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(config)
    return sorted(set(values), key=len, reverse=True)


def scrub_text(text: str, secrets: Iterable[str]) -> str:
    for value in secrets:
        text = text.replace(value, REDACTED)
    return text


def redact_argv(argv: Iterable[str]) -> list:
    """Command-line items like KEY=value or --api-key value with the secret part removed."""
    result, hide_next = [], False
    for item in argv:
        if hide_next:
            result.append(REDACTED)
            hide_next = False
            continue
        name, sep, _ = item.partition("=")
        if sep and is_secret_name(name.lstrip("+~-").split(".")[-1]):
            result.append(f"{name}={REDACTED}")
        elif item.startswith("--") and not sep and is_secret_name(item[2:]):
            result.append(item)
            hide_next = True
        else:
            result.append(item)
    return result
