"""Live progress inside a dataset: prompts done / total, rate, elapsed and ETA from the server's
finished-request counters; on a non-terminal, a plain line at most every Phase.PLAIN_EVERY_S."""

import io

import pytest
from rich.console import Console

from bench_app.run.progress import Phase, Progress, RequestProgress, make_console

AS_WRITTEN = [
    "dataset :smile: in /data/:thumbs_up:/x",  # emoji codes
    "e.g. 'dataset=[ceval,longbenchv2]'",  # rich markup would swallow [ceval,...]
    "/models/[exp]/qwen: [Errno 2] No such file",
    "reason: see [/tmp/aisbench.log]",  # rich markup raised MarkupError on a closing-tag look-alike
]


@pytest.mark.parametrize("text", AS_WRITTEN)
def test_messages_are_printed_as_written(capsys, text):
    make_console().print(text)
    Progress(make_console(), 1).log(text)
    assert capsys.readouterr().out.count(text) == 2


def test_the_live_status_line_shows_messages_as_written():
    console = Console(file=io.StringIO(), force_terminal=True, width=200, markup=False)
    progress = Progress(console, 1)
    with progress.phase(AS_WRITTEN[3], 1) as phase:
        phase.update(AS_WRITTEN[1])
        assert AS_WRITTEN[1] in phase.status.renderable.text.plain and AS_WRITTEN[3] in phase.text


def test_request_progress_counts_what_the_server_finished_since_the_dataset_began(monkeypatch):
    counters = iter([{"stop": 5.0}, {"stop": 7.0, "length": 1.0}, {"stop": 9.0, "length": 2.0}])
    shown = []
    clock = iter([100.0, 110.0, 120.0])
    monkeypatch.setattr("bench_app.run.progress.time.monotonic", lambda: next(clock))
    watch = RequestProgress(lambda: next(counters), 10, shown.append)  # before: stop=5, at t=100
    watch.poll()  # t=110: 3 done
    assert watch.done == 3 and shown[-1] == "3/10 prompts, 0.30 req/s, 10 s, ETA 23 s"
    watch.poll()  # t=120: 6 done
    assert shown[-1] == "6/10 prompts, 0.30 req/s, 20 s, ETA 13 s"


def test_unknown_total_shows_no_eta():
    watch = RequestProgress(lambda: {}, None, lambda text: None)
    watch.done = 4
    assert watch.describe(8.0) == "4/? prompts, 0.50 req/s, 8 s"


def test_plain_lines_are_throttled_on_a_non_terminal(monkeypatch):
    out = io.StringIO()
    console = Console(file=out, force_terminal=False, width=200)
    progress = Progress(console, total=2)
    monkeypatch.setattr(Phase, "PLAIN_EVERY_S", 0.0)
    with progress.phase("evaluating x", 1) as phase:
        phase.update("1/4 prompts")
        monkeypatch.setattr(Phase, "PLAIN_EVERY_S", 3600.0)
        phase.update("2/4 prompts")  # within the interval: not printed
    lines = out.getvalue().splitlines()
    assert [line.split("] ", 1)[1] for line in lines] == [
        "dataset 1/2 · evaluating x",
        "dataset 1/2 · evaluating x: 1/4 prompts",
    ]
