"""Datasets you can trust before the first GPU hour: `bench-app datasets check|list|fetch`, the data check
at planning, and the data's hash in the run's records.

Downloads come from a loopback HTTP server these tests start, serving archives they build: a good one, one
cut short, one whose checksum is wrong, and one whose connection drops mid-file and then resumes (Range).
"""

import hashlib
import io
import json
import re
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


def source(url, name, **pinned):
    """One host's archive of STOCK, with the values given pinned (md5, sha256, size, unconfirmed)."""
    return fetch.Source(STOCK, [fetch.Archive(f"{url}/{name}", unpack_into="ais_bench/datasets", **pinned)])


def test_a_good_archive_is_verified_and_unpacked_in_place(archives, tmp_path):
    url, sha256, size = archives
    base, downloads = tmp_path / "root", tmp_path / "downloads"
    seen = []
    md5 = hashlib.md5(gsm8k_zip()).hexdigest()
    got = fetch.fetch(
        source(url, "good.zip", sha256=sha256, size=size, md5=md5),
        base,
        downloads=downloads,
        on_progress=lambda d, t: seen.append((d, t)),
    )
    assert (got.sha256, got.md5, got.checked, got.warnings) == (sha256, md5, ["md5", "sha256"], [])
    assert seen[-1] == (size, size)
    assert (base / STOCK / "test.jsonl").read_bytes() == (SAMPLE_GSM8K / "test.jsonl").read_bytes()
    assert [p.name for p in (base / "ais_bench/datasets").iterdir()] == ["gsm8k"]  # no staging left


def test_a_wrong_checksum_or_a_short_download_unpacks_nothing(archives, tmp_path):
    url, sha256, size = archives
    base, downloads = tmp_path / "root", tmp_path / "downloads"
    with pytest.raises(UserError, match="is not the archive expected: its sha256 is .* the table says 0000"):
        fetch.fetch(source(url, "bad.zip", sha256="0000"), base, downloads=downloads)
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
        fetch.fetch(source(url, "flaky.zip", sha256=sha256), base, downloads=downloads)
    kept = (downloads / "flaky.zip.part").stat().st_size
    assert 0 < kept < size and not (base / STOCK).exists()
    assert fetch.fetch(source(url, "flaky.zip", sha256=sha256), base, downloads=downloads).sha256 == sha256
    assert Archives.ranges == [f"bytes={kept}-"]  # only the rest was asked for
    assert (base / STOCK / "train.jsonl").is_file()


def test_offline_fetch_takes_the_archive_from_a_folder_and_says_what_is_missing(archives, tmp_path):
    url, sha256, _ = archives
    copied = tmp_path / "copied"
    copied.mkdir()
    with pytest.raises(UserError, match="no good.zip there. Download .*good.zip on a machine with network"):
        fetch.fetch(source(url, "good.zip", sha256=sha256), tmp_path / "root", from_dir=copied)
    (copied / "good.zip").write_bytes(gsm8k_zip())
    assert fetch.fetch(
        source("http://unreachable.invalid", "good.zip", sha256=sha256), tmp_path / "root", from_dir=copied
    )
    assert (tmp_path / "root" / STOCK / "test.jsonl").is_file()


def test_no_network_is_one_clear_paragraph(tmp_path):
    gone = source("http://127.0.0.1:9", "gsm8k.zip")
    with pytest.raises(UserError, match="could not download .* Without network here: .*--from DIR"):
        fetch.fetch(gone, tmp_path / "root", downloads=tmp_path / "downloads")


def test_an_md5_that_differs_is_refused_and_one_that_matches_is_accepted(archives, tmp_path):
    url, sha256, size = archives
    base, downloads = tmp_path / "root", tmp_path / "downloads"
    md5 = hashlib.md5(gsm8k_zip()).hexdigest()
    wrong = "901e5dc93a2889789a469da9850cdca8"  # OpenCompass's gsm8k.zip: not the archive this test built
    with pytest.raises(UserError, match=f"its md5 is {md5}, the table says {wrong}"):
        fetch.fetch(source(url, "good.zip", md5=wrong, checksum_source="X"), base, downloads=downloads)
    assert not list(downloads.glob("good.zip*")) and not (base / STOCK).exists()
    got = fetch.fetch(source(url, "good.zip", md5=md5), base, downloads=downloads)
    assert got.checked == ["md5"] and (base / STOCK / "test.jsonl").is_file()


def test_an_unconfirmed_value_that_differs_warns_with_both_values_and_keeps_the_archive(archives, tmp_path):
    url, sha256, size = archives
    base, downloads = tmp_path / "root", tmp_path / "downloads"
    claimed = {"sha256": "b28b" + "0" * 60, "source": "a third-party copy"}
    got = fetch.fetch(source(url, "good.zip", unconfirmed=claimed), base, downloads=downloads)
    (warning,) = got.warnings
    assert f"its sha256 is {sha256}, an unconfirmed value for good.zip is {claimed['sha256']}" in warning
    assert "a third-party copy" in warning and got.checked == []
    assert (downloads / "good.zip").is_file() and (base / STOCK / "test.jsonl").is_file()
    # the same value confirmed: no warning
    again = fetch.fetch(
        source(url, "good.zip", unconfirmed={"sha256": sha256}), tmp_path / "b", downloads=downloads
    )
    assert again.warnings == []


def test_a_second_host_serves_what_the_first_cannot_and_a_member_is_moved_to_the_data_path(
    archives, tmp_path
):
    url, _, _ = archives
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:  # laid out as OpenCompass's longbenchv2.zip
        archive.writestr("longbenchv2/data.json", json.dumps([{"question": "q"}]))
    Archives.files["longbenchv2.zip"] = buffer.getvalue()
    key = "ais_bench/datasets/LongBench-v2/data.json"
    mirror = fetch.Archive(
        f"{url}/longbenchv2.zip",
        unpack_into="ais_bench/datasets",
        member="longbenchv2/data.json",
        md5=hashlib.md5(buffer.getvalue()).hexdigest(),
    )
    both = fetch.Source(key, [fetch.Archive("http://127.0.0.1:9/data.json", unpack_into=None), mirror])
    said = []
    got = fetch.fetch(both, tmp_path / "root", downloads=tmp_path / "dl", on_host_failed=said.append)
    assert got.archive.url.endswith("longbenchv2.zip") and got.checked == ["md5"]
    assert "could not download http://127.0.0.1:9/data.json" in said[0] and "next host" in said[0]
    assert json.loads((tmp_path / "root" / key).read_text()) == [{"question": "q"}]
    assert not (tmp_path / "root/ais_bench/datasets/longbenchv2").exists()  # only the member moved in


def test_the_table_pins_the_published_checksums():
    """Each value as its source gives it (see the table's comments); a change here is a change of source."""
    md5 = {
        "ais_bench/datasets/gsm8k": "901e5dc93a2889789a469da9850cdca8",
        "ais_bench/datasets/mmlu": "761310671509a239e41c4b717f7fab9c",
        "ais_bench/datasets/math": "cb5b4c8378085929e20345174e731fdf",
        "ais_bench/datasets/gpqa": "2e9657959030a765916f1f2aca29140d",
        "ais_bench/datasets/aime/aime.jsonl": "fbe2d0577fc210962a549f8cea1a00c8",
        "ais_bench/datasets/aime2025": "aa18cd5d2e2de246c5397f5eb1e61004",
        "ais_bench/datasets/mmlu_pro": "e3200c7380f4cea5f13c768f2815fabb",
        "ais_bench/datasets/ceval/formal_ceval": "3889202085aebd28b596b98bee43e1aa",
        "ais_bench/datasets/LongBench-v2/data.json": "09b7e06e6f98c5cca8ad597b3d7b42f0",
    }
    sources = fetch.load_sources()
    pinned = {key: a.md5 for key, s in sources.items() for a in s.archives if a.md5}
    assert pinned == md5
    assert all(a.sha256 is None and a.size is None for s in sources.values() for a in s.archives)
    unconfirmed = {a.url.rsplit("/", 1)[1]: a.unconfirmed for s in sources.values() for a in s.archives
                   if a.unconfirmed}  # fmt: skip
    assert unconfirmed["ceval-exam.zip"]["sha256"] == (
        "b28bc560b655dc3c0ff05b20648b5ef8caed732bdaa8918e66fe5f3a1c711c52"
    )
    assert unconfirmed["ceval-exam.zip"]["size"] == 1548257
    assert (
        unconfirmed["data.json"]["sha256"]
        == "15d61c22d92c96900b3c4948b6aeea218d3214b676a65df48e7b8555604c7fe2"
    )


def test_the_first_host_of_each_dataset_is_the_one_the_installed_aisbench_readme_links():
    import importlib.util

    configs = Path(importlib.util.find_spec("ais_bench").submodule_search_locations[0]) / "benchmark/configs"
    for key, entry in fetch.load_sources().items():
        if entry.manual:
            continue
        first = entry.archives[0]
        readme = (
            configs / "datasets" / first.linked_by.split()[1] / "README_en.md"
        )  # "AISBench's <name> README"
        links = re.findall(r"https?://[^\s)\]>`\"]+", readme.read_text())
        # the archive itself, or the repository it is a file of (LongBench v2's README links the repository)
        assert any(first.url == link or first.url.startswith(link.rstrip("/") + "/") for link in links), key


def test_the_table_names_a_source_for_each_stock_data_path():
    sources = fetch.load_sources()
    assert fetch.source_for("ais_bench/datasets/gsm8k", sources).url.endswith("gsm8k.zip")
    assert fetch.source_for("ais_bench/datasets/aime2025/aime2025.jsonl", sources).url.endswith(
        "aime2025.zip"
    )
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
    assert f"good.zip: md5 {hashlib.md5(gsm8k_zip()).hexdigest()}, sha256 {sha256}" in fetched.stdout
    assert "(sha256 match the pinned value(s))" in fetched.stdout
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


def test_fetch_from_a_folder_checks_the_md5_and_pin_writes_your_table(workdir):
    archive = gsm8k_zip()
    md5, sha256 = hashlib.md5(archive).hexdigest(), hashlib.sha256(archive).hexdigest()
    copied, root = workdir / "copied", workdir / "root"
    copied.mkdir()
    (copied / "gsm8k.zip").write_bytes(archive)
    args = ["dataset=gsm8k", f"evaluator.datasets_root={root}", "--from", str(copied)]
    table = workdir / "sources.yaml"

    def write_table(pinned_md5):
        entry = {"url": "http://mirror.invalid/gsm8k.zip", "unpack_into": "ais_bench/datasets"}
        table.write_text(yaml.safe_dump({STOCK: {"archives": [dict(entry, md5=pinned_md5)]}}))

    write_table("901e5dc93a2889789a469da9850cdca8")  # OpenCompass's gsm8k.zip, not this one
    refused = run_cli(["datasets", "fetch", *args, "--sources", str(table)], workdir)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"its md5 is {md5}, the table says 901e5dc93a2889789a469da9850cdca8" in refused.stderr
    assert not (root / STOCK).exists()
    write_table(md5)
    accepted = run_cli(["datasets", "fetch", *args, "--sources", str(table)], workdir)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "(md5 match the pinned value(s))" in accepted.stdout and "gsm8k: ok" in accepted.stdout
    checked = run_cli(["datasets", "check", "dataset=gsm8k", f"evaluator.datasets_root={root}",
                       "--sources", str(table)], workdir)  # fmt: skip
    assert checked.returncode == 0 and "fetched from http://mirror.invalid/gsm8k.zip" in checked.stdout
    assert "(md5 match the pinned value)" in checked.stdout
    # a table whose pinned value changed since: check says the data no longer matches it
    write_table("0" * 32)
    stale = run_cli(["datasets", "check", "dataset=gsm8k", f"evaluator.datasets_root={root}",
                     "--sources", str(table)], workdir)  # fmt: skip
    assert (
        stale.returncode == 1
        and f"DOES NOT MATCH the table: md5 {md5}, pinned now {'0' * 32}" in stale.stdout
    )

    # --pin: what was fetched is written into the user's own table, created from bench_app's
    shutil.rmtree(root)
    mine = workdir / "mine.yaml"
    nopin = run_cli(["datasets", "fetch", *args, "--pin"], workdir)
    assert nopin.returncode == 2 and "give it with --sources FILE" in nopin.stderr
    (copied / "gsm8k.zip").write_bytes(archive)
    pinned = run_cli(["datasets", "fetch", *args, "--pin", "--sources", str(mine)], workdir)
    assert pinned.returncode == 2, pinned.stdout  # bench_app's table pins OpenCompass's md5: not this archive
    (copied / "gsm8k.zip").unlink()
    real = load(Path(fetch.SOURCES))[STOCK]["archives"][0]
    mine.write_text(yaml.safe_dump({STOCK: {"archives": [dict(real, md5=None)]}}))
    (copied / "gsm8k.zip").write_bytes(archive)
    pinned = run_cli(["datasets", "fetch", *args, "--pin", "--sources", str(mine)], workdir)
    assert pinned.returncode == 0, pinned.stdout + pinned.stderr
    assert f"pinned in {mine}: size {len(archive)}, md5 {md5}, sha256 {sha256}" in pinned.stdout
    written = load(mine)[STOCK]["archives"][0]
    assert (written["md5"], written["sha256"], written["size"]) == (md5, sha256, len(archive))
    assert "pinned by `bench-app datasets fetch --pin`" in written["checksum_source"]
