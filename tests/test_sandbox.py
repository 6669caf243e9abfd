"""Model-written code runs in the sandbox (bench_app.evaluators.sandbox): hostile programs are contained and
scored as failed, honest ones score as AISBench scores them unsandboxed, and a run that needs the sandbox
where it cannot start is refused before any server starts. The adversary is a stand-in (fault injection):
the programs are scored by AISBench's own evaluator, directly and in a real run against a stand-in server."""

import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
from conftest import FAKES_CONF, load, run_cli

from bench_app.evaluators.aisbench import AisbenchEvaluator
from bench_app.evaluators.sandbox import NOBODY, UID_BASE, SandboxLimits

PROJECT_ROOT = Path(__file__).parents[1]
SAMPLE = PROJECT_ROOT / "data/samples/livecodebench/code_generation_lite"
DRY = ["execution.dry_run=true"]
PYTHON = str(PROJECT_ROOT / ".venv/bin/python")
SCORE_SCRIPT = PROJECT_ROOT / "tests/fakes/score_livecodebench.py"
SCORE_IN_PROCESS_SCRIPT = PROJECT_ROOT / "tests/fakes/score_code_evaluators.py"
AIS_BENCH = str(PROJECT_ROOT / ".venv/bin/ais_bench")

pytestmark = pytest.mark.skipif(
    shutil.which("bwrap") is None,
    reason="bwrap not installed: `make test` installs Debian's bubblewrap (scripts/setup.sh sandbox) as root",
)


class CanaryServer:
    """Listens on 127.0.0.1; records every connection and what it was sent."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.received = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stop.is_set():
            try:
                connection, _ = self.sock.accept()
            except OSError:
                continue
            connection.settimeout(2)
            try:
                self.received.append(connection.recv(1000))
            except OSError:
                self.received.append(b"<connected>")
            connection.close()

    def close(self):
        self.stop.set()
        self.thread.join()
        self.sock.close()


@pytest.fixture
def canaries(tmp_path):
    """A canary file in the home folder and one in a run folder (their access time set in the past, so a
    read shows), a canary server, a planted secret, and a path outside the sandbox to write to."""
    home = Path.home() / f".bench_app_canary_{uuid.uuid4().hex}"
    run = tmp_path / "outputs" / "run" / "canary.txt"
    run.parent.mkdir(parents=True)
    for file in (home, run):
        file.write_text("canary")
        os.utime(file, (time.time() - 3600, time.time()))  # atime before mtime: a read updates it
    server = CanaryServer()
    found = {
        "home": home,
        "run": run,
        "outside": tmp_path / "pwned.txt",
        "port": server.port,
        "server": server,
        "secret": "planted-" + uuid.uuid4().hex,
    }
    yield found
    server.close()
    home.unlink(missing_ok=True)


def attacks(c):
    """Each attack sets ok = True only if it worked."""
    return {
        "read_home": f"ok = 'canary' in open({str(c['home'])!r}).read()",
        "read_run": f"ok = 'canary' in open({str(c['run'])!r}).read()",
        "write_outside": f"open({str(c['outside'])!r}, 'w').write('pwned')\nok = True",
        "write_environment": "open(os.path.join(sys.prefix, 'pwned'), 'w').write('pwned')\nok = True",
        "connect": f"socket.create_connection(('127.0.0.1', {c['port']}), 2).sendall(b'pwned')\nok = True",
        "fork_bomb": "while True:\n    try:\n        os.fork()\n    except OSError:\n        pass",
        "memory": "x = bytearray(3 * 1024 ** 3)\nok = True",
        "sleep": "time.sleep(300)\nok = True",
        "kill_parent": "os.kill(os.getppid(), 9)\nok = True",
        "secret": f"ok = os.environ.get('BENCH_APP_CANARY_SECRET') == {c['secret']!r}",
        "user_namespace": "ok = os.system('unshare --user --map-root-user true') == 0",
        "output_flood": "while True:\n    sys.stdout.write('x' * 1048576)",
    }


SUM = "a, b = map(int, input().split())\nprint(a + b if ok else 'contained')"


def program(codes, solution=SUM):
    """A program that runs each attack, then solves its problem only if one of them worked."""
    text = "import os, socket, sys, time\nok = False\n"
    for code in codes:
        inner = "\n".join("    " + line for line in code.replace("ok = ", "ok = ok or ").splitlines())
        text += f"try:\n{inner}\nexcept Exception:\n    pass\n"
    return text + solution


def evaluator_script(argv, tmp_path, sandbox, limits, env, timeout_s):
    """A script run with the evaluator environment's python, as a run's evaluator would be (sandboxed or
    not, by its environment): the JSON of its last line."""
    evaluator = AisbenchEvaluator(
        command=[AIS_BENCH], sandbox=sandbox, sandbox_limits=limits or SandboxLimits()
    )
    done = subprocess.run(
        [PYTHON, *map(str, argv)],
        env={**evaluator.environment(tmp_path), **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def score(answers, tmp_path, sandbox, timeout=3, limits=None, env=None):
    """[[question_id, program], ...] scored by AISBench's LCBCodeGenerationEvaluator: each one's results."""
    file = tmp_path / f"answers_{uuid.uuid4().hex}.json"
    file.write_text(json.dumps(answers))
    return evaluator_script([SCORE_SCRIPT, SAMPLE, file, timeout], tmp_path, sandbox, limits, env, 600)


def sandbox_processes():
    """Processes of the sandboxes' users (nobody, or UID_BASE + a pid when run as root)."""
    ps = subprocess.run(["ps", "-e", "-o", "uid=,pid=,cmd="], capture_output=True, text=True)
    return [
        line
        for line in ps.stdout.splitlines()
        if int(line.split()[0]) == NOBODY or int(line.split()[0]) >= UID_BASE
    ]


def assert_contained(canaries):
    """Nothing read, nothing received, nothing written, nothing left running."""
    for file in (canaries["home"], canaries["run"]):
        assert os.stat(file).st_atime < os.stat(file).st_mtime, f"{file} was read"
    assert canaries["server"].received == []
    assert not canaries["outside"].exists()
    assert not list((PROJECT_ROOT / ".venv").glob("pwned"))
    assert sandbox_processes() == []


def hostile_run(tmp_path, canaries, dataset, script, wall_s, name):
    """A real run of `dataset` against a stand-in server answering with `script` ({text in the question:
    answer}); the run folder, once the run exited 0."""
    answers = tmp_path / f"answers_{name}.json"
    answers.write_text(json.dumps(script))
    done = run_cli(
        [
            f"hydra.searchpath=[file://{FAKES_CONF}]",
            "engine=scripted",
            f"dataset={dataset}",
            f"evaluator.sandbox_limits.wall_s={wall_s}",
            f"benchmark.name={name}",
        ],
        tmp_path,
        env={"FAKE_ENGINE_ANSWERS": str(answers), "BENCH_APP_CANARY_SECRET": canaries["secret"]},
        timeout=900,
    )
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return tmp_path / "outputs" / name, done


def fenced(found, names, solution):
    """A fenced answer: the attacks `names` of `found`, then the solution (see program)."""
    return f"```python\n{program([found[n] for n in names], solution)}\n```"


def test_honest_solutions_score_the_same_inside_and_outside_the_sandbox(tmp_path):
    honest = json.loads((SAMPLE / "solutions.json").read_text())
    answers = [[question, program] for question, program in honest.items()]
    answers += [
        ["bench_app_sum", "a, b = map(int, input().split())\nprint(a - b)\n"],  # wrong
        ["bench_app_reverse", "print(input(]\n"],  # does not compile
        ["bench_app_largest", "class Solution:\n    def largest(self, nums):\n        return nums[7]\n"],
        ["bench_app_vowels", "class Solution:\n    def countVowels(self, s):\n        return len(s)\n"],
    ]
    inside = score(answers, tmp_path, "auto")
    assert inside == score(answers, tmp_path, "off")
    assert [all(r is True for r in results) for results in inside] == [True] * 4 + [False] * 4


def test_every_hostile_program_is_contained_and_scored_as_failed(tmp_path, canaries):
    programs = {name: program([code]) for name, code in attacks(canaries).items()}
    answers = [["bench_app_sum", text] for text in programs.values()]
    # Honest programs scored beside them, four at a time: a fork bomb next door must not fail them.
    honest = json.loads((SAMPLE / "solutions.json").read_text())
    answers += [[question, text] for question, text in honest.items()] * 2
    secret = {"BENCH_APP_CANARY_SECRET": canaries["secret"]}
    limits = SandboxLimits(memory_mb=1024, wall_s=5)  # the wall limit, not AISBench's 30 s, stops the sleep
    started = time.monotonic()
    results = score(answers, tmp_path, "auto", timeout=30, limits=limits, env=secret)
    took = time.monotonic() - started
    passed = [all(r is True for r in result) for result in results]
    assert dict(zip(programs, passed[: len(programs)], strict=True)) == {name: False for name in programs}, (
        results
    )
    assert passed[len(programs) :] == [True] * 8, results
    assert took < 120  # the sleeper was stopped at its wall limit, not after its 300 s
    assert_contained(canaries)

    # The same attacks without the sandbox succeed (the harmless ones): what the checks above would see.
    harmless = ["read_home", "read_run", "write_outside", "secret"]
    bare = score([["bench_app_sum", programs[n]] for n in harmless], tmp_path, "off", env=secret)
    assert [all(r is True for r in result) for result in bare] == [True] * 4
    assert canaries["outside"].exists()
    assert os.stat(canaries["home"]).st_atime >= os.stat(canaries["home"]).st_mtime


def score_in_process(cases, tmp_path, sandbox, limits=None, env=None):
    """Cases scored by the evaluators that run the model's code in a fork of their own process (or `eval`
    it): each group's results (tests/fakes/score_code_evaluators.py)."""
    work = tmp_path / f"work_{uuid.uuid4().hex}"
    work.mkdir()
    (work / "cases.json").write_text(json.dumps(cases))
    return evaluator_script(
        [SCORE_IN_PROCESS_SCRIPT, work / "cases.json", work], tmp_path, sandbox, limits, env, 900
    )


ADD = {
    "task_id": "bench_app/add",
    "prompt": "def add(a, b):\n",
    "entry_point": "add",
    "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n    assert candidate(-1, 1) == 0\n",
}
SQUARE = ["def square(x):\n    return x * x", "assert square(3) == 9\nassert square(-2) == 4"]


def test_evaluators_that_exec_the_code_score_honest_answers_the_same_inside_and_outside(tmp_path):
    cases = {
        "mbpp": [
            SQUARE,
            ["def square(x):\n    return x + x", SQUARE[1]],  # wrong
            ["def square(x):\n    return x *", SQUARE[1]],  # does not compile
            ["import time\ndef square(x):\n    time.sleep(20)", SQUARE[1]],  # past AISBench's 10 s
        ],
        "code_execution": [  # LiveCodeBench's: the model predicts what the code returns
            ["def f(x):\n    return int(np.sum(x))", "f([1, 2])", "3", "3"],
            ["def f(x):\n    return x[::-1]", "f('ab')", "'ba'", "'ab'"],
        ],
        "test_output": [["assert f(2) == [1, 2]", "[1, 2]"], ["assert f(2) == [2]", "[1, 2]"]],
        "humaneval": {
            "problems": [ADD],
            "completions": [
                ["bench_app/add", "    return a + b\n"],
                ["bench_app/add", "    return a - b\n"],
                ["bench_app/add", "    while True:\n        pass\n"],
            ],
        },
    }
    inside = score_in_process(cases, tmp_path, "auto")
    assert inside == score_in_process(cases, tmp_path, "off")
    assert inside == {
        "mbpp": ["pass", "wrong_answer", "failed", "timeout"],
        "code_execution": [True, False],
        "test_output": [True, False],
        "humaneval": ["passed", "failed: ", "timed out"],
    }


def test_evaluators_that_exec_the_code_contain_every_hostile_program(tmp_path, canaries):
    found = attacks(canaries)
    honest = 4
    mbpp = [[program([code], ""), "assert ok"] for code in found.values()] + [SQUARE] * honest
    body = program([], "return a + b if ok else None")
    completions = [
        "\n".join("    " + line for line in program([code], "return a + b if ok else None").splitlines())
        + "\n"
        for code in found.values()
    ] + ["\n".join("    " + line for line in body.splitlines()).replace("ok = False", "ok = True") + "\n"]
    home, run, outside, port = (repr(str(canaries[k])) for k in ("home", "run", "outside", "port"))
    expressions = {  # what the model's answer `eval`s to (test output) or is compared with (code execution)
        "read_home": (f"open({home}).read()", '"canary"'),
        "read_run": (f"open({run}).read()", '"canary"'),
        "write_outside": (f"open({outside}, 'w').write('pwned')", "5"),
        "connect": (
            f"__import__('socket').create_connection(('127.0.0.1', {port}), 2).sendall(b'x')",
            "null",
        ),
        "secret": ("__import__('os').environ.get('BENCH_APP_CANARY_SECRET')", json.dumps(canaries["secret"])),
    }
    cases = {
        "mbpp": mbpp,
        "humaneval": {"problems": [ADD], "completions": [["bench_app/add", c] for c in completions]},
        "test_output": [[f"assert f() == {e}", expected] for e, expected in expressions.values()],
        "code_execution": [
            ["def f():\n    return 0", "f()", repr(json.loads(expected)), e]
            for e, expected in expressions.values()
        ],
    }
    secret = {"BENCH_APP_CANARY_SECRET": canaries["secret"]}
    limits = SandboxLimits(memory_mb=1024, wall_s=5)
    results = score_in_process(cases, tmp_path, "auto", limits=limits, env=secret)
    named = dict(zip(found, results["mbpp"], strict=False))
    assert "pass" not in named.values(), named
    assert results["mbpp"][len(found) :] == ["pass"] * honest, results["mbpp"]
    assert "passed" not in results["humaneval"][: len(found)], results["humaneval"]
    assert results["humaneval"][len(found) :] == ["passed"], results["humaneval"]
    assert results["test_output"] == [False] * len(expressions)
    assert results["code_execution"] == [False] * len(expressions)
    assert_contained(canaries)

    # Without the sandbox the harmless attacks succeed: what the checks above would see.
    bare = {
        "mbpp": [mbpp[list(found).index(name)] for name in ("read_home", "secret")],
        "test_output": [cases["test_output"][list(expressions).index("read_run")]],
    }
    assert score_in_process(bare, tmp_path, "off", env=secret) == {
        "mbpp": ["pass"] * 2,
        "test_output": [True],
    }
    assert os.stat(canaries["home"]).st_atime >= os.stat(canaries["home"]).st_mtime
    assert os.stat(canaries["run"]).st_atime >= os.stat(canaries["run"]).st_mtime


def test_a_run_answered_with_hostile_code_finishes_with_every_answer_failed(tmp_path, canaries):
    found = attacks(canaries)
    # The sample's four questions (two read stdin, two are LeetCode-style classes), each answered by attacks.
    script = {
        "Print A + B": fenced(found, ["read_home", "read_run", "secret", "write_outside"], SUM),
        "Print S reversed": fenced(
            found, ["connect", "kill_parent"], "print(input().strip()[::-1] if ok else '')"
        ),
        "return its largest element": fenced(
            found,
            ["fork_bomb"],
            "class Solution:\n    def largest(self, nums):\n        return max(nums) if ok else 0",
        ),
        "how many of its letters are vowels": fenced(
            found,
            ["memory", "sleep"],
            "class Solution:\n    def countVowels(self, s):\n"
            "        return sum(c in 'aeiou' for c in s) if ok else -1",
        ),
    }
    run, done = hostile_run(tmp_path, canaries, "sample_livecodebench", script, 10, "hostile")
    result = load(run / "results.yaml")["datasets"]["sample_livecodebench"]
    assert result["status"] == "ok" and result["metrics"]["pass@1"] == 0.0
    samples = [
        json.loads(line) for line in (run / "sample_livecodebench/samples.jsonl").read_text().splitlines()
    ]
    assert len(samples) == 4 and not any(s["correct"] for s in samples)
    assert_contained(canaries)
    sandbox = load(run / "configs/metadata.yaml")["sandbox"]
    assert sandbox["mode"] == "auto" and sandbox["version"].startswith("bubblewrap")
    assert sandbox["datasets"] == {"sample_livecodebench": "LCBCodeGenerationEvaluator"}
    assert sandbox["limits"]["wall_s"] == 10 and sandbox["network"] == "none"
    assert "the model's code runs in bubblewrap" in done.stdout

    # Re-scoring runs the programs again: in the sandbox too.
    again = run_cli(["rescore", str(run)], tmp_path, env={"BENCH_APP_CANARY_SECRET": canaries["secret"]})
    assert again.returncode == 0, (again.stdout + again.stderr)[-3000:]
    assert load(run / "results.yaml")["datasets"]["sample_livecodebench"]["metrics"]["pass@1"] == 0.0
    assert_contained(canaries)


def test_an_mbpp_run_answered_with_hostile_code_scores_only_the_honest_answers(tmp_path, canaries):
    found = attacks(canaries)
    # The sample's four scored problems: two answered by attacks (each solved only if one worked), two
    # honestly; AISBench's MBPP pass@k evaluator runs each in a fork of its own task, sandboxed.
    script = {
        "sum of the digits": fenced(
            found,
            ["read_home", "read_run", "secret", "write_outside", "connect", "kill_parent"],
            "def digit_sum(n):\n    return sum(int(d) for d in str(n)) if ok else -1",
        ),
        "reads the same backwards": fenced(
            found,
            ["fork_bomb", "memory", "sleep", "user_namespace", "output_flood"],
            "def is_palindrome(s):\n    return s == s[::-1] if ok else None",
        ),
        "count the even numbers": fenced(
            found, [], "def count_even(nums):\n    return sum(n % 2 == 0 for n in nums)"
        ),
        "second largest distinct": fenced(
            found, [], "def second_largest(nums):\n    return sorted(set(nums))[-2]"
        ),
    }
    run, _ = hostile_run(tmp_path, canaries, "sample_mbpp", script, 5, "hostile_mbpp")
    result = load(run / "results.yaml")["datasets"]["sample_mbpp"]
    assert result["status"] == "ok" and result["metrics"]["pass@1"] == 50.0, result
    assert_contained(canaries)
    assert load(run / "configs/metadata.yaml")["sandbox"]["datasets"] == {"sample_mbpp": "MBPPPassKEvaluator"}


def test_a_run_is_refused_before_any_server_when_the_sandbox_cannot_start(tmp_path):
    done = run_cli(
        [
            "dataset=sample_livecodebench",
            "evaluator.sandbox_tool=/nonexistent/bwrap",
            "benchmark.name=refused",
        ],
        tmp_path,
        timeout=300,
    )
    assert done.returncode == 2
    said = " ".join((done.stdout + done.stderr).split())
    assert (
        "sample_livecodebench (LCBCodeGenerationEvaluator) scored by running the code the model wrote" in said
    )
    assert "'/nonexistent/bwrap' (evaluator.sandbox_tool) is not installed" in said
    assert "apt-get install bubblewrap" in said and "evaluator.sandbox=off" in said
    assert "Traceback" not in said and "starting server" not in said


def test_sandbox_off_is_warned_and_recorded_and_replayed(tmp_path):
    done = run_cli(
        [
            "dataset=sample_livecodebench",
            "evaluator.sandbox=off",
            "execution.dry_run=true",
            "benchmark.name=off",
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    said = " ".join(done.stdout.split())
    assert (
        "evaluator.sandbox=off: sample_livecodebench run the code the model wrote without a sandbox" in said
    )
    configs = tmp_path / "outputs/off/configs"
    assert load(configs / "metadata.yaml")["sandbox"] == {
        "mode": "off",
        "datasets": {"sample_livecodebench": "LCBCodeGenerationEvaluator"},
    }
    assert load(configs / "config_snapshot.yaml")["evaluator"]["sandbox"] == "off"
    replay = subprocess.run(
        [str(configs / "reproduce.sh"), "--frozen", "execution.dry_run=true", "benchmark.name=off_again"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "evaluator.sandbox=off: sample_livecodebench" in " ".join(replay.stdout.split()), replay.stderr[
        -2000:
    ]


def test_a_typo_and_an_evaluator_the_sandbox_cannot_hold_are_refused(tmp_path):
    typo = run_cli(
        ["dataset=sample_livecodebench", "evaluator.sandbox=of", "execution.dry_run=true"], tmp_path
    )
    assert typo.returncode != 0 and "evaluator.sandbox='of': one of auto, off" in typo.stdout + typo.stderr
    humanevalx = run_cli(["dataset=ais/humanevalx_gen_0_shot", *DRY], tmp_path)
    said = " ".join((humanevalx.stdout + humanevalx.stderr).split())
    assert humanevalx.returncode != 0 and (
        "HumanevalXEvaluator runs the code the model wrote where bench_app cannot put it in a sandbox (it "
        "compiles and runs programs of five languages" in said
    )
    assert "Traceback" not in said
    # The stock MBPP and HumanEval configs are planned with their code in the sandbox.
    for name in ("mbpp_passk_gen_3_shot_chat_prompt", "humaneval_gen_0_shot"):
        planned = run_cli([f"dataset=ais/{name}", f"benchmark.name={name}", *DRY], tmp_path)
        assert f"sandbox: {name}: the model's code runs in bubblewrap" in planned.stdout, planned.stdout[
            -2000:
        ]


@pytest.mark.server
def test_the_tiny_model_writes_programs_that_are_scored_in_the_sandbox(workdir, vllm_server):
    from conftest import assert_documents_typed

    done = run_cli(
        vllm_server.args("benchmark.name=lcb", "dataset=sample_livecodebench"), workdir, env=vllm_server.env()
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    run = workdir / "outputs/lcb"
    result = load(run / "results.yaml")["datasets"]["sample_livecodebench"]
    assert result["status"] == "ok" and 0 <= result["metrics"]["pass@1"] <= 100
    records = [
        json.loads(line) for line in (run / "sample_livecodebench/samples.jsonl").read_text().splitlines()
    ]
    assert len(records) == 4 and all(r["answer"] for r in records)
    assert load(run / "configs/metadata.yaml")["sandbox"]["datasets"] == {
        "sample_livecodebench": "LCBCodeGenerationEvaluator"
    }
    assert_documents_typed(run)
