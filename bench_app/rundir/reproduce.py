"""reproduce.sh: the run's own replay script, written into configs/ with every value shell-quoted."""

from __future__ import annotations

import json
import shlex
from typing import List, Optional, Sequence

from bench_app.config.overrides import quote_body, quote_value
from bench_app.config.resolvers import PROJECT_ROOT


def reproduce_script(
    run_name: str,
    overrides: List[str],
    started: str,
    search_path: Sequence[str] = (),
    external_server: Optional[str] = None,
) -> str:
    """reproduce.sh: every value is shell-quoted; arguments given to it are appended as overrides.
    User config folders (hydra.searchpath, --config-dir) are passed on as hydra.searchpath."""
    kept = [o for o in overrides if not o.startswith(("benchmark.name=", "resume=", "frozen_from="))]
    if search_path:
        quoted_folders = ",".join(quote_value(f"file://{folder}") for folder in search_path)
        kept.append(f"hydra.searchpath=[{quoted_folders}]")
    quoted = "".join(f"{shlex.quote(o)} \\\n    " for o in kept)
    name = shlex.quote(run_name)
    # The new run's name for Hydra: the name's own characters quoted for its override grammar.
    hydra_base = shlex.quote(quote_body(f"{run_name}_repro_"))
    root = shlex.quote(str(PROJECT_ROOT))
    external_note = (
        f"\n# The run evaluated a server bench_app did not start ({json.dumps(external_server)}): it must be"
        "\n# running again, serving the same model, before this script is."
        if external_server
        else ""
    )
    return f"""#!/usr/bin/env bash
# Reproduction script for benchmark run {json.dumps(run_name, ensure_ascii=False)}
# Generated: {started}
#   ./reproduce.sh                 re-run with the original config choices and overrides (reads conf/)
#   ./reproduce.sh --frozen        re-run from config_snapshot.yaml alone (works after conf/ changed)
#   ./reproduce.sh KEY=VALUE ...   the same, with extra overrides appended (e.g. vllm.max_num_seqs=128)
# It works from any directory. Results always go to a NEW run folder, ./outputs/<name>_repro_<time>[_N] of
# the directory it is called from; the original is never overwritten.{external_note}
set -euo pipefail

# Its own real folder, also when called through a symlink or a relative path.
SNAPSHOT_DIR="$(cd "$(dirname "$(readlink -f "${{BASH_SOURCE[0]}}")")" && pwd)"
# The project that made this run; if it moved, the nearest folder above this snapshot holding bench_app/.
PROJECT_ROOT={root}
if [ ! -d "$PROJECT_ROOT/bench_app" ]; then
    PROJECT_ROOT="$SNAPSHOT_DIR"
    while [ "$PROJECT_ROOT" != / ] && [ ! -d "$PROJECT_ROOT/bench_app" ]; do
        PROJECT_ROOT="$(dirname "$PROJECT_ROOT")"
    done
fi
PYTHON="${{BENCH_APP_PYTHON:-$PROJECT_ROOT/.venv/bin/python}}"
if ! command -v "$PYTHON" >/dev/null; then
    echo "Error: bench_app's Python not found at $PYTHON; set BENCH_APP_PYTHON to the interpreter" >&2
    echo "       of the environment bench_app is installed in (make setup creates .venv/)." >&2
    exit 1
fi

FROZEN=0
ARGS=()
NAME_GIVEN=0
for arg in "$@"; do
    case "$arg" in
        --frozen) FROZEN=1 ;;
        benchmark.name=*) NAME_GIVEN=1; ARGS+=("$arg") ;;
        *) ARGS+=("$arg") ;;
    esac
done
if [ "$NAME_GIVEN" = 0 ]; then
    # The next free name: two replays started within one second must not collide.
    STAMP="$(date +%Y%m%d_%H%M%S)"
    BASE={name}_repro_"$STAMP"
    SUFFIX=""
    N=2
    while [ -e "outputs/$BASE$SUFFIX" ]; do SUFFIX="_$N"; N=$((N + 1)); done
    ARGS+=("benchmark.name='"{hydra_base}"$STAMP$SUFFIX'")
fi

# Print every difference between this environment and the one recorded in metadata.yaml.
"$PYTHON" -m bench_app envcheck "$SNAPSHOT_DIR/metadata.yaml" || true

if [ "$FROZEN" = 1 ]; then
    exec "$PYTHON" -m bench_app replay "$SNAPSHOT_DIR/config_snapshot.yaml" "${{ARGS[@]}}"
fi
if [ ! -d "$PROJECT_ROOT/conf" ]; then
    echo "Error: the project's conf/ folder is gone ($PROJECT_ROOT/conf); replay from the snapshot alone:" >&2
    echo "       $SNAPSHOT_DIR/reproduce.sh --frozen" >&2
    exit 1
fi
exec "$PYTHON" -m bench_app \\
    {quoted}"${{ARGS[@]}}"
"""
