"""Datasets you can trust before the first GPU hour: `bench-app datasets check|list|fetch`, the data check
at planning, and the data's hash in the run's records.

Downloads come from a loopback HTTP server these tests start, serving archives they build: a good one, one
cut short, one whose checksum is wrong, and one whose connection drops mid-file and then resumes (Range).
"""

import hashlib
import io
import json
import shutil
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from conftest import broken_engine_args, load, run_cli

from bench_app.common.errors import UserError
from bench_app.evaluators.aisbench import fetch

SAMPLE_GSM8K = Path(__file__).parents[1] / "data" / "samples" / "gsm8k"
STOCK = "ais_bench/datasets/gsm8k"  # what AISBench's gsm8k configs read, relative to the datasets root


def gsm8k_zip() -> bytes:
    """An archive laid out like OpenCompass's gsm8k.zip: gsm8k/{train,test}.jsonl."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for split in ("train", "test"):
            archive.write(SAMPLE_GSM8K / f"{split}.jsonl", f"gsm8k/{split}.jsonl")
    return buffer.getvalue()


class Archives(BaseHTTPRequestHandler):
    """GET /<name>: files[name]. /short claims more bytes than it sends; /flaky drops the connection half
    way the first time and honours Range after."""

    files = {}
    ranges = []
    flaky_dropped = False

    def log_message(self, *args):
        pass

    def do_GET(self):
        name = self.path.strip("/")
        data = self.files[name]
        start = 0
        if self.headers.get("Range"):
            Archives.ranges.append(self.headers["Range"])
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body) + (100 if name == "short.zip" else 0)))
        self.end_headers()
        if name == "flaky.zip" and not Archives.flaky_dropped:
            Archives.flaky_dropped = True
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def archives():
    good = gsm8k_zip()
    Archives.files = {"good.zip": good, "short.zip": good, "bad.zip": good, "flaky.zip": good}
    Archives.ranges, Archives.flaky_dropped = [], False
    server = ThreadingHTTPServer(("127.0.0.1", 0), Archives)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", hashlib.sha256(good).hexdigest(), len(good)
    server.shutdown()


def source(url, name, sha256=None, size=None):
    return fetch.Source(
        STOCK, url=f"{url}/{name}", unpack_into="ais_bench/datasets", sha256=sha256, size=size
    )


def test_a_good_archive_is_verified_and_unpacked_in_place(archives, tmp_path):
    url, sha256, size = archives
    base, downloads = tmp_path / "root", tmp_path / "downloads"
    seen = []
    digest = fetch.fetch(
        source(url, "good.zip", sha256, size),
        base,
        downloads=downloads,
        on_progress=lambda d, t: seen.append((d, t)),
    )
    assert digest == sha256 and seen[-1] == (size, size)
    assert (base / STOCK / "test.jsonl").read_bytes() == (SAMPLE_GSM8K / "test.jsonl").read_bytes()
    assert [p.name for p in (base / "ais_bench/datasets").iterdir()] == ["gsm8k"]  # no staging left


def test_a_wrong_checksum_or_a_short_download_unpacks_nothing(archives, tmp_path):
    url, sha256, size = archives
    base, downloads = tmp_path / "root", tmp_path / "downloads"
    with pytest.raises(UserError, match="is not the archive expected: its sha256 is .* the table says 0000"):
        fetch.fetch(source(url, "bad.zip", "0000"), base, downloads=downloads)
    assert not list(downloads.glob("bad.zip*"))  # a bad download is not kept to be resumed
    with pytest.raises(
        UserError, match=r"ended after \d+ of \d+ bytes.*kept in .*short.zip.part; run this again"
    ):
        fetch.fetch(source(url, "short.zip"), base, downloads=downloads)
    assert not (base / STOCK).exists() and not list((base / "ais_bench/datasets").glob("*"))


def test_a_download_cut_off_mid_file_resumes_where_it_stopped(archives, tmp_path):
    url, sha256, size = archives
    base, downloads = tmp_path / "root", tmp_path / "downloads"
    with pytest.raises(UserError, match="run this again to resume"):
        fetch.fetch(source(url, "flaky.zip", sha256), base, downloads=downloads)
    kept = (downloads / "flaky.zip.part").stat().st_size
    assert 0 < kept < size and not (base / STOCK).exists()
    assert fetch.fetch(source(url, "flaky.zip", sha256), base, downloads=downloads) == sha256
    assert Archives.ranges == [f"bytes={kept}-"]  # only the rest was asked for
    assert (base / STOCK / "train.jsonl").is_file()


def test_offline_fetch_takes_the_archive_from_a_folder_and_says_what_is_missing(archives, tmp_path):
    url, sha256, _ = archives
    copied = tmp_path / "copied"
    copied.mkdir()
    with pytest.raises(UserError, match="no good.zip there. Download .*good.zip on a machine with network"):
        fetch.fetch(source(url, "good.zip", sha256), tmp_path / "root", from_dir=copied)
    (copied / "good.zip").write_bytes(gsm8k_zip())
    assert fetch.fetch(
        source("http://unreachable.invalid", "good.zip", sha256), tmp_path / "root", from_dir=copied
    )
    assert (tmp_path / "root" / STOCK / "test.jsonl").is_file()


def test_no_network_is_one_clear_paragraph(tmp_path):
    gone = fetch.Source(STOCK, url="http://127.0.0.1:9/gsm8k.zip", unpack_into="ais_bench/datasets")
    with pytest.raises(UserError, match="could not download .* Without network here: .*--from DIR"):
        fetch.fetch(gone, tmp_path / "root", downloads=tmp_path / "downloads")


def test_the_table_names_a_source_for_each_stock_data_path():
    sources = fetch.load_sources()
    assert fetch.source_for("ais_bench/datasets/gsm8k", sources).url.endswith("gsm8k.zip")
    assert fetch.source_for("ais_bench/datasets/ceval/formal_ceval", sources).url.endswith("ceval-exam.zip")
    assert fetch.source_for("ais_bench/datasets/gpqa/", sources).url.endswith("gpqa.zip")
    assert fetch.source_for("ais_bench/datasets/code_generation_lite", sources).manual
    assert fetch.source_for("/data/private", sources) is None


# ------------------------------------------------------------------------------------- the command


def test_check_fetch_and_plan_with_the_command(archives, workdir):
    url, sha256, size = archives
    root = workdir / "root"
    table = workdir / "sources.yaml"
    table.write_text(yaml.safe_dump({STOCK: {"url": f"{url}/good.zip", "unpack_into": "ais_bench/datasets",
                                             "sha256": sha256, "size": size}}))  # fmt: skip
    args = ["dataset=gsm8k", f"evaluator.datasets_root={root}"]
    missing = run_cli(["datasets", "check", *args], workdir)
    assert missing.returncode == 1 and f"gsm8k: MISSING {root / STOCK} does not exist" in missing.stdout
    assert "get it: bench-app datasets fetch dataset=gsm8k" in missing.stdout
    listed = run_cli(["datasets", "list", *args, "--sources", str(table)], workdir)
    assert f"reads {root / STOCK}" in listed.stdout and f"from  {url}/good.zip" in listed.stdout

    # a run is refused before anything starts, naming the files and the command that gets them
    engine, env = broken_engine_args("healthy", workdir / "pids")
    refused = run_cli(["benchmark.name=nodata", *args, *engine], workdir, env=env)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"dataset gsm8k: its data is missing: {root / STOCK} does not exist" in refused.stdout
    assert "bench-app datasets fetch dataset=gsm8k" in refused.stdout
    assert not (workdir / "pids").exists() and not (workdir / "outputs/nodata").exists()
    dry = run_cli(["benchmark.name=dry", *args, "execution.dry_run=true"], workdir)
    assert dry.returncode == 0 and "refused: dataset gsm8k: its data is missing" in dry.stdout

    fetched = run_cli(["datasets", "fetch", *args, "--sources", str(table)], workdir)
    assert fetched.returncode == 0, fetched.stdout + fetched.stderr
    assert f"archive sha256 {sha256} (checked against the table)" in fetched.stdout
    assert "gsm8k: ok" in fetched.stdout
    again = run_cli(["datasets", "check", *args], workdir)
    assert again.returncode == 0 and "gsm8k: ok" in again.stdout

    planned = run_cli(["benchmark.name=planned", *args, "execution.dry_run=true"], workdir)
    assert planned.returncode == 0, planned.stdout
    data = load(workdir / "outputs/planned/configs/per_dataset/gsm8k.yaml")["data"]
    assert data["path"] == str(root / STOCK) and data["files"] == 2 and len(data["sha256"]) == 64
    assert load(workdir / "outputs/planned/configs/metadata.yaml")["data"]["gsm8k"] == data

    # a changed file: check says so, and the plan's fingerprint (what resume compares) changes with it
    with open(root / STOCK / "test.jsonl", "a") as handle:
        handle.write(json.dumps({"question": "1 + 1?", "answer": "#### 2"}) + "\n")
    changed = run_cli(["datasets", "check", *args], workdir)
    assert changed.returncode == 1 and "CHANGED since it was first checked" in changed.stdout
    replanned = run_cli(["benchmark.name=planned2", *args, "execution.dry_run=true"], workdir)
    assert replanned.returncode == 0
    before = load(workdir / "outputs/planned/configs/metadata.yaml")
    after = load(workdir / "outputs/planned2/configs/metadata.yaml")
    assert before["fingerprint"]["gsm8k"] != after["fingerprint"]["gsm8k"]
    compared = run_cli(
        ["compare", str(workdir / "outputs/planned"), str(workdir / "outputs/planned2")], workdir
    )
    assert "data.sha256" in compared.stdout, compared.stdout
    checked = run_cli(["envcheck", str(workdir / "outputs/planned/configs/metadata.yaml")], workdir)
    assert f"dataset gsm8k data {root / STOCK}: recorded sha256 {data['sha256'][:16]}" in checked.stdout
    shutil.rmtree(root)
