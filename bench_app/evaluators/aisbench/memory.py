"""AISBench's memory guard, checked before it bites: its inference task refuses to start when more than 80%
of the machine's memory is in use (`tasks/utils.py: check_virtual_memory_usage`, error TINFER-PARAM-005;
the task passes 80 itself, so AISBench offers no setting for it). A vLLM-CPU server started without
VLLM_CPU_KVCACHE_SPACE takes most of the memory for its KV cache and trips it by itself; so can a large
server beside the evaluator. Checked before each dataset, the refusal says where the memory went and what
frees it, instead of AISBench's bare percentage from inside its task."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional, Tuple

# What AISBench's inference task passes as threshold_percent (openicl_api_infer.py).
AISBENCH_MEMORY_LIMIT_PERCENT = 80
GIB = 1024**3


def memory_in_use(meminfo: Path = Path("/proc/meminfo")) -> Optional[Tuple[int, int]]:
    """(total, used) bytes as AISBench measures them (psutil: used = total - MemAvailable); None where
    /proc/meminfo does not say."""
    fields = {}
    try:
        for line in meminfo.read_text().splitlines():
            name, _, value = line.partition(":")
            parts = value.split()
            if parts and parts[0].isdigit():
                fields[name] = int(parts[0]) * 1024  # kB
    except OSError:
        return None
    if "MemTotal" not in fields or "MemAvailable" not in fields:
        return None
    return fields["MemTotal"], fields["MemTotal"] - fields["MemAvailable"]


def largest_processes(count: int = 3, proc: Path = Path("/proc")) -> List[Tuple[int, str, int]]:
    """The processes holding the most memory: (pid, name, resident bytes), largest first."""
    found = []
    for status in proc.glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":", 1) for line in status.read_text().splitlines() if ":" in line)
        except (OSError, ValueError):
            continue
        rss = fields.get("VmRSS", "").split()
        if rss and rss[0].isdigit():
            found.append((int(status.parent.name), _command(status.parent, fields), int(rss[0]) * 1024))
    return sorted(found, key=lambda p: -p[2])[:count]


def _command(folder: Path, fields: dict) -> str:
    """A process in a few words: its program and first argument ("vllm serve", "python -m")."""
    try:
        argv = (folder / "cmdline").read_bytes().split(b"\0")
    except OSError:
        argv = []
    words = [Path(argv[0].decode(errors="replace")).name, *(a.decode(errors="replace") for a in argv[1:2])]
    said = " ".join(w for w in words if w) or fields.get("Name", "?").strip()
    return said[:40]


def memory_refusal(
    limit_percent: float = AISBENCH_MEMORY_LIMIT_PERCENT, meminfo: Path = Path("/proc/meminfo")
) -> Optional[str]:
    """Why AISBench would refuse to start inference now, in one line with the numbers, where the memory
    went and the remedy; None when it would not (or memory cannot be read)."""
    measured = memory_in_use(meminfo)
    if measured is None:
        return None
    total, used = measured
    percent = 100.0 * used / total if total else 0.0
    if percent <= limit_percent:
        return None
    largest = ", ".join(f"{name} (pid {pid}) {rss / GIB:.1f} GiB" for pid, name, rss in largest_processes())
    return (
        f"AISBench would refuse to start inference (TINFER-PARAM-005): {percent:.1f}% of this machine's "
        f"memory is in use ({used / GIB:.1f} of {total / GIB:.1f} GiB), more than its {limit_percent:g}%; "
        f"largest: {largest or 'unknown'}. A vLLM-CPU server takes VLLM_CPU_KVCACHE_SPACE GiB for its KV "
        "cache (engine.env for a server bench_app starts; set it where you start your own), or run the "
        "server on another machine"
    )
