import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir

from bench_app.app import CONF_DIR
from bench_app.config import resolve
from bench_app.plan import build_plan

PYTHON = sys.executable
BROKEN_ENGINE = str(Path(__file__).parent / "fakes" / "broken_engine.py")


def compose_config(overrides):
    """Compose like the CLI does (schema, groups, overrides) with Hydra's compose API."""
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        cfg = compose(config_name="config", overrides=["benchmark.name=test", *overrides])
    return cfg


def plan_for(overrides):
    return build_plan(resolve(compose_config(overrides)))


def run_cli(args, cwd, env=None, timeout=900, module="bench_app"):
    """Run `python -m bench_app ARGS` in `cwd` (outputs/ lands there)."""
    full_env = dict(os.environ, **(env or {}))
    return subprocess.run(
        [PYTHON, "-m", module, *args], cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout
    )


def load(path):
    return yaml.safe_load(Path(path).read_text())


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"


FAKES_CONF = Path(__file__).parent / "fakes" / "conf"


def broken_engine_args(mode, pidfile):
    """Select the broken stand-in engine through config only (its conf file in a user config folder)."""
    return (
        [f"hydra.searchpath=[file://{FAKES_CONF}]", "engine=broken"],
        {"FAKE_ENGINE_PIDFILE": str(pidfile), "FAKE_ENGINE_MODE": mode},
    )


@pytest.fixture
def workdir(tmp_path):
    return tmp_path
