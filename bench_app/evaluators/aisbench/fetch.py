"""Getting a dataset's data onto this machine: an archive AISBench's own READMEs link for it (sources.yaml;
where two hosts serve the same data both are listed and tried in order), downloaded with a progress bar (a
partial download resumes where it stopped), checked against the md5 / sha256 / size the table pins, and
unpacked beside its place under a temporary name first, then moved in: a failure leaves the datasets folder
as it was. Offline machines take the archive from a folder (`--from DIR`).

A pinned value that differs refuses the archive (a download is removed). A value marked `unconfirmed` (given
only by third-party copies) that differs is a warning with both values: the archive is kept and used.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import time
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import yaml

from bench_app.common.errors import UserError
from bench_app.common.files import atomic_write
from bench_app.config.resolvers import PROJECT_ROOT

SOURCES = Path(__file__).with_name("sources.yaml")
DOWNLOADS = PROJECT_ROOT / ".cache" / "datasets" / "downloads"
CHUNK = 1 << 20
CHECKSUMS = ("md5", "sha256")  # the digests a table may pin, in the order they are reported


@dataclass
class Archive:
    """One host's copy of a dataset's data."""

    url: str
    unpack_into: Optional[str] = None  # relative to the datasets root; None: the download is the file itself
    member: Optional[str] = None  # the path inside the archive that becomes the data path, when it differs
    size: Optional[int] = None
    md5: Optional[str] = None
    sha256: Optional[str] = None
    # values only third-party copies give: a mismatch warns, never refuses ({md5|sha256|size, source})
    unconfirmed: Dict[str, object] = field(default_factory=dict)
    checksum_source: Optional[str] = None  # where the pinned values come from
    linked_by: Optional[str] = None  # which README links this host

    @property
    def name(self) -> str:
        return Path(urllib.request.urlparse(self.url).path).name or "download"

    def pinned(self) -> Dict[str, object]:
        return {k: getattr(self, k) for k in ("size", *CHECKSUMS) if getattr(self, k) is not None}


@dataclass
class Source:
    key: str  # the data path it provides (relative to the datasets root)
    archives: List[Archive] = field(default_factory=list)  # hosts, tried in order
    manual: Optional[str] = None  # no archive: the step to do by hand

    @property
    def url(self) -> Optional[str]:
        return self.archives[0].url if self.archives else None


@dataclass
class Fetched:
    """What was unpacked: which archive, its digests, and how they compare with the table."""

    archive: Archive
    path: Path
    size: int
    md5: str
    sha256: str
    checked: List[str]  # pinned values that matched, e.g. ["md5"]
    warnings: List[str]  # unconfirmed values that differ

    def summary(self) -> str:
        if self.checked:
            said = f"{' and '.join(self.checked)} match the pinned value(s)"
        else:
            said = "no pinned checksum: pin it with --pin"
        return said + "".join(f"; WARNING {w}" for w in self.warnings)


ARCHIVE_KEYS = {f for f in Archive.__dataclass_fields__}


def _archive(key: str, value: Dict) -> Archive:
    unknown = sorted(set(value) - ARCHIVE_KEYS)
    if unknown:
        raise UserError(
            f"dataset sources: {key}: unknown field(s) {', '.join(unknown)}; "
            f"known: {', '.join(sorted(ARCHIVE_KEYS))}"
        )
    return Archive(**value)


def load_sources(path: Optional[Path] = None) -> Dict[str, Source]:
    """The table: data path -> {archives: [...]} or {manual: ...}; a single archive's fields may also stand
    directly under the data path (the older, one-host layout)."""
    path = path or SOURCES
    try:
        table = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"cannot read the dataset sources table {path}: {error}") from None
    sources: Dict[str, Source] = {}
    for key, value in table.items():
        value, key = dict(value or {}), key.rstrip("/")
        manual = value.pop("manual", None)
        listed = value.pop("archives", None)
        archives = [_archive(key, dict(a)) for a in listed or []]
        if value.get("url"):
            archives.insert(0, _archive(key, value))
        sources[key] = Source(key, archives, manual)
    return sources


def source_for(declared: str, sources: Dict[str, Source]) -> Optional[Source]:
    """The source of a data path: the entry with that path, or the longest one it lies under."""
    path = declared.rstrip("/")
    for key in sorted(sources, key=len, reverse=True):
        if path == key or path.startswith(key + "/"):
            return sources[key]
    return None


def fetch(
    source: Source,
    base: Path,
    from_dir: Optional[Path] = None,
    downloads: Path = DOWNLOADS,
    on_progress: Callable[[int, Optional[int]], None] = lambda done, total: None,
    on_host_failed: Callable[[str], None] = lambda message: None,
) -> Fetched:
    """Get the source's data into base from the first host that serves it (or from `from_dir`)."""
    if source.manual:
        raise UserError(f"{source.key} has no archive to fetch; do it by hand: {source.manual}")
    if not source.archives:
        raise UserError(f"{source.key}: the sources table lists no archive for it")
    if from_dir is not None:
        for archive in source.archives:
            if (Path(from_dir) / archive.name).is_file():
                fetched = verify(Path(from_dir) / archive.name, archive)
                break
        else:
            names = " or ".join(a.name for a in source.archives)
            raise UserError(
                f"--from {from_dir}: no {names} there. Download {source.archives[0].url} on a machine with "
                f"network, copy it into {from_dir}, and run this again."
            )
    else:
        failures: List[str] = []
        for archive in source.archives:
            try:
                fetched = download(archive, downloads, on_progress)
                break
            except HostUnreachable as error:
                failures.append(str(error))
                if archive is not source.archives[-1]:
                    on_host_failed(f"{error} Trying the next host.")
        else:
            names = ", ".join(a.name for a in source.archives)
            raise UserError(
                " ".join(failures)
                + " Without network here: download it elsewhere, copy it ("
                + names
                + ") into a folder DIR and run `bench-app datasets fetch --from DIR ...`."
            )
    unpack(fetched.path, fetched.archive, source.key, base)
    return fetched


class HostUnreachable(Exception):
    """A host that did not give the whole archive: the next host may."""


def download(archive: Archive, downloads: Path, on_progress) -> Fetched:
    """The archive in the downloads folder, resumed from a partial one, verified."""
    downloads.mkdir(parents=True, exist_ok=True)
    final = downloads / archive.name
    if final.is_file():
        return verify(final, archive)
    partial = final.with_name(final.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(archive.url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if have and response.status != 206:  # the server sends the whole file again
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length else archive.size
            with open(partial, "ab" if have else "wb") as out:
                done = have
                while True:
                    chunk = response.read(CHUNK)
                    if not chunk:
                        break
                    out.write(chunk)
                    done += len(chunk)
                    on_progress(done, total)
            if total is not None and done < total:
                raise OSError(f"the connection ended after {done} of {total} bytes")
    except (urllib.error.URLError, OSError) as error:
        kept = partial.stat().st_size if partial.exists() else 0
        raise HostUnreachable(
            f"could not download {archive.url}: {getattr(error, 'reason', None) or error}."
            + (f" The {kept} bytes received are kept in {partial}; run this again to resume." if kept else "")
        ) from None
    fetched = verify(partial, archive, remove_bad=True)
    os.replace(partial, final)
    fetched.path = final
    return fetched


def digests(path: Path) -> Dict[str, str]:
    """md5 and sha256 of a file, read once."""
    found = {name: hashlib.new(name) for name in CHECKSUMS}
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            for digest in found.values():
                digest.update(chunk)
    return {name: digest.hexdigest() for name, digest in found.items()}


def compare(path: Path, archive: Archive) -> Fetched:
    """The file's size and digests against the table's pinned and unconfirmed values (nothing refused)."""
    size, found = path.stat().st_size, digests(path)
    fetched = Fetched(archive, path, size, found["md5"], found["sha256"], [], [])
    actual = {"size": size, **found}
    for key, value in archive.unconfirmed.items():
        if key in actual and str(value).lower() != str(actual[key]):
            fetched.warnings.append(
                f"its {key} is {actual[key]}, an unconfirmed value for {archive.name} is {value} "
                f"({archive.unconfirmed.get('source', 'a third-party copy')}); kept and used"
            )
    return fetched


def against_pins(
    archive: Archive, actual: Dict[str, object]
) -> Tuple[List[Tuple[str, object, object]], List[str]]:
    """An archive's size, md5 and sha256 against the values the table pins: the (key, actual, pinned) that
    differ, and the checksums that match."""
    differ, matched = [], []
    for key, value in archive.pinned().items():
        if str(value).lower() != str(actual[key]):
            differ.append((key, actual[key], value))
        elif key in CHECKSUMS:
            matched.append(key)
    return differ, matched


def mismatches(fetched: Fetched) -> List[str]:
    """Pinned values the file does not have (and records the ones it has in fetched.checked)."""
    actual = {"size": fetched.size, "md5": fetched.md5, "sha256": fetched.sha256}
    differ, matched = against_pins(fetched.archive, actual)
    fetched.checked.extend(matched)
    return [f"its {key} is {found}, the table says {value}" for key, found, value in differ]


def verify(path: Path, archive: Archive, remove_bad: bool = False) -> Fetched:
    """The file checked against the table: a pinned value that differs refuses it."""
    fetched = compare(path, archive)
    problems = mismatches(fetched)
    if problems:
        if remove_bad:
            path.unlink(missing_ok=True)  # a bad download is not resumed
        raise UserError(
            f"{path.name} from {archive.url} is not the archive expected: {'; '.join(problems)}"
            + (f" (pinned from {archive.checksum_source})" if archive.checksum_source else "")
            + ". Nothing was unpacked"
            + ("; the download was removed, run this again to fetch it anew." if remove_bad else ".")
        )
    return fetched


def unpack(path: Path, archive: Archive, key: str, base: Path) -> None:
    """Unpack next to where it goes, check it holds the data path, then move it in (never half-written)."""
    target = base / key
    into = base / archive.unpack_into if archive.unpack_into else target.parent
    into.mkdir(parents=True, exist_ok=True)
    staging = into / f".bench_app-unpack-{os.getpid()}-{int(time.time())}"
    staging.mkdir()
    try:
        if archive.unpack_into is None:
            shutil.copyfile(path, staging / target.name)
        elif zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as zipped:
                zipped.extractall(staging)
        elif tarfile.is_tarfile(path):
            with tarfile.open(path) as tarred:
                tarred.extractall(staging, filter="data")
        else:
            raise UserError(f"{path} is neither a zip nor a tar archive")
        wanted = archive.member or str(target.relative_to(into))
        inside = staging / wanted
        if not inside.exists():
            held = ", ".join(sorted(p.name for p in staging.iterdir())[:10]) or "nothing"
            raise UserError(
                f"{path.name} does not hold {wanted} (it holds {held}); the datasets folder is unchanged. "
                f"Unpack it by hand so that {target} exists."
            )
        # with `member`, only that path moves, to the data path; otherwise everything unpacked moves in
        moves = (
            [(inside, target)] if archive.member else [(e, into / e.name) for e in sorted(staging.iterdir())]
        )
        for entry, destination in moves:
            destination.parent.mkdir(parents=True, exist_ok=True)
            if destination.exists():  # an incomplete copy: kept aside, never deleted
                destination.rename(destination.with_name(f"{destination.name}.replaced-{int(time.time())}"))
            entry.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def pin(table: Path, fetched: Fetched, key: str) -> List[str]:
    """Write what was fetched (size, md5, sha256) as pinned values of its archive in the user's table, which
    is created from bench_app's own when it does not exist yet. Returns what changed."""
    source_table = table if table.exists() else SOURCES
    try:
        document = yaml.safe_load(Path(source_table).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"cannot read the dataset sources table {source_table}: {error}") from None
    entry = next((v for k, v in document.items() if k.rstrip("/") == key), None)
    if entry is None:
        raise UserError(f"--pin: {table} has no entry {key}")
    hosts = entry.get("archives") or [entry]
    host = next((h for h in hosts if h.get("url") == fetched.archive.url), None)
    if host is None:
        raise UserError(f"--pin: {table}: {key} lists no archive {fetched.archive.url}")
    changed = []
    for name, value in (("size", fetched.size), ("md5", fetched.md5), ("sha256", fetched.sha256)):
        if host.get(name) != value:
            host[name] = value
            changed.append(f"{name} {value}")
    if host.pop("unconfirmed", None) is not None:
        changed.append("unconfirmed values dropped")
    host["checksum_source"] = f"pinned by `bench-app datasets fetch --pin` on {time.strftime('%Y-%m-%d')}"
    header = (
        "# Dataset sources of this installation (bench-app datasets fetch --sources THIS_FILE); values\n"
        "# pinned with --pin are what was fetched here.\n"
    )
    atomic_write(table, header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=110))
    return changed
