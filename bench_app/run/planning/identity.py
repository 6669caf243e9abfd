"""What decides a server's answer besides the request itself: the engine configuration's identity.

The request cache keys every answer by this identity's fingerprint with the request body. The body holds the
messages, not the prompt the server builds from them, so the identity must hold everything the server reads
to build a prompt or its defaults: the effective engine arguments, and the content of every file that shapes
the prompt or the sampling defaults, wherever it comes from (the model folder or hub snapshot, a
`--chat-template` file, a `--tokenizer` folder, a `--generation-config` folder), with the weights' identity.
Any change is another fingerprint, so a cached answer is never handed back for a prompt that was not sent.
`changes` names what differs between two identities: why a run did not reuse answers it had.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Collection, Dict, List, Mapping, Optional

from bench_app.common.files import file_sha256
from bench_app.config.hub import model_folder
from bench_app.records.cache import RequestCache

# 2: every prompt- and default-shaping file's content (1 had config.json and the weights only, so a changed
# chat template or tokenizer kept its answers: those are not trusted).
IDENTITY_VERSION = 2
# The files a server reads to build a prompt (tokenizer, chat template) or its defaults (generation config).
PROMPT_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "chat_template.jinja",
    "chat_template.json",
    "preprocessor_config.json",
)
# Engine arguments naming a file or folder that replaces the model folder's own for the prompt or defaults.
ARGUMENT_FILES = ("chat_template", "tokenizer", "generation_config")


def _folder_files(folder: Path) -> Dict[str, str]:
    return {name: file_sha256(folder / name) for name in PROMPT_FILES if (folder / name).is_file()}


def model_identity(model_path: str) -> Dict[str, Any]:
    """The model's files: each prompt-shaping file's hash, the weights' index hash or the weight files'
    names and sizes, and a hub snapshot's revision (its folder name)."""
    folder = model_folder(model_path)
    if folder is None:
        return {"path": model_path}
    identity: Dict[str, Any] = {"path": model_path, "files": _folder_files(folder)}
    indexes = sorted(folder.glob("*.index.json"))
    if indexes:
        identity["weights_index"] = {p.name: file_sha256(p) for p in indexes}
    else:
        identity["weights"] = {p.name: p.stat().st_size for p in sorted(folder.glob("*.safetensors"))}
    if "snapshots" in folder.parts:
        identity["revision"] = folder.name
    return identity


def _argument_files(engine_args: Mapping[str, Any]) -> Dict[str, Any]:
    """The content behind engine arguments that name a chat template, tokenizer or generation config."""
    extra = engine_args.get("extra_args") or {}
    found: Dict[str, Any] = {}
    for name in ARGUMENT_FILES:
        value = engine_args.get(name, extra.get(name, extra.get(name.replace("_", "-"))))
        if not isinstance(value, str) or not value:
            continue
        path = Path(value).expanduser()
        if path.is_file():
            found[name] = file_sha256(path)
        elif path.is_dir():
            found[name] = _folder_files(path)
        elif name == "tokenizer" and model_folder(value) is not None:
            found[name] = _folder_files(model_folder(value))
    return found


def engine_identity(engine_args: Mapping[str, Any]) -> Dict[str, Any]:
    return {
        "identity_version": IDENTITY_VERSION,
        "engine_args": dict(engine_args),
        "model": model_identity(str(engine_args.get("model_path"))),
        "argument_files": _argument_files(engine_args),
    }


def fingerprint_of(identity: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()


def engine_fingerprint(engine_args: Mapping[str, Any]) -> str:
    return fingerprint_of(engine_identity(engine_args))


def _flat(value: Any, prefix: str = "") -> Dict[str, Any]:
    if isinstance(value, Mapping) and value:
        flat: Dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flat(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: json.dumps(value, sort_keys=True, default=str)}


def changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> List[str]:
    """What differs between two identities, readably: a file's content, an engine argument's value."""
    old, new = _flat(before), _flat(after)
    said = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) == new.get(key):
            continue
        if key.startswith(("model.files.", "model.weights", "argument_files.")):
            name = key.split(".", 2)[-1] if key.startswith("model.files.") else key
            state = "added" if key not in old else "removed" if key not in new else "changed"
            said.append(f"{name} {state}")
        else:
            said.append(f"{key}: {old.get(key, '(unset)')} -> {new.get(key, '(unset)')}")
    return said


def why_not_reused(
    cache: RequestCache, fingerprint: str, identity: Mapping[str, Any], siblings: Collection[str] = ()
) -> Optional[str]:
    """Why this engine configuration finds no answers though the cache holds some of its model's (or of
    an earlier bench_app's): what changed. None when it has answers, or when nothing is related.
    siblings: the fingerprints of the run's other engine groups, whose answers are no news (a first run
    of two groups would otherwise call its own first group's answers not reused)."""
    if cache.has_engine(fingerprint):
        return None
    answered, unknown = cache.answered_engines()
    path = (identity.get("model") or {}).get("path")
    for engine, earlier, count in answered:
        if engine not in siblings and (earlier.get("model") or {}).get("path") == path:
            changed = changes(earlier, identity)
            return (
                f"{count} cached answer(s) of this model are not reused: since they were given, "
                + "; ".join(changed[:8])
                + (f" (and {len(changed) - 8} more)" if len(changed) > 8 else "")
            )
    if unknown:
        return (
            f"{unknown} cached answer(s) come from an earlier bench_app, whose cache identity did not "
            f"cover the tokenizer, the chat template and the generation config (identity version "
            f"{IDENTITY_VERSION} does): they are never reused"
        )
    return None
