"""Getting a dataset's data onto this machine: the archive AISBench documents for it (sources.yaml),
downloaded with a progress bar (a partial download resumes where it stopped), checked against its size and
sha256, and unpacked beside its place under a temporary name first, then moved in: a failure leaves the
datasets folder as it was. Offline machines take the archive from a folder (`--from DIR`).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional

import yaml

from bench_app.common.errors import UserError
from bench_app.config.resolvers import PROJECT_ROOT

SOURCES = Path(__file__).with_name("sources.yaml")
DOWNLOADS = PROJECT_ROOT / ".cache" / "datasets" / "downloads"
CHUNK = 1 << 20


@dataclass
class Source:
    key: str  # the data path it provides (relative to the datasets root)
    url: Optional[str] = None
    unpack_into: Optional[str] = None  # None: the download is the file itself
    size: Optional[int] = None
    sha256: Optional[str] = None
    manual: Optional[str] = None

    @property
    def archive_name(self) -> str:
        return Path(urllib.request.urlparse(self.url or "").path).name or "download"


def load_sources(path: Optional[Path] = None) -> Dict[str, Source]:
    path = path or SOURCES
    try:
        table = yaml.safe_load(Path(path).read_text()) or {}
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"cannot read the dataset sources table {path}: {error}") from None
    return {key.rstrip("/"): Source(key.rstrip("/"), **(value or {})) for key, value in table.items()}


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
) -> str:
    """Get the source's data into base; returns the sha256 of what was unpacked (the archive's)."""
    if source.manual:
        raise UserError(f"{source.key} has no archive to fetch; do it by hand: {source.manual}")
    if from_dir is not None:
        archive = Path(from_dir) / source.archive_name
        if not archive.is_file():
            raise UserError(
                f"--from {from_dir}: no {source.archive_name} there. Download {source.url} on a machine with "
                f"network, copy it into {from_dir}, and run this again."
            )
        digest = verify(archive, source)
    else:
        archive, digest = download(source, downloads, on_progress)
    unpack(archive, source, base)
    return digest


def download(source: Source, downloads: Path, on_progress) -> tuple:
    """The archive in the downloads folder, resumed from a partial one; (path, sha256)."""
    downloads.mkdir(parents=True, exist_ok=True)
    final = downloads / source.archive_name
    if final.is_file():
        return final, verify(final, source)
    partial = final.with_name(final.name + ".part")
    have = partial.stat().st_size if partial.exists() else 0
    request = urllib.request.Request(source.url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            if have and response.status != 206:  # the server sends the whole file again
                have = 0
            length = response.headers.get("Content-Length")
            total = have + int(length) if length else source.size
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
        raise UserError(
            f"could not download {source.url}: {getattr(error, 'reason', None) or error}. "
            + (f"The {kept} bytes received are kept in {partial}; run this again to resume. " if kept else "")
            + f"Without network here: download it elsewhere, copy {source.archive_name} into a folder DIR "
            "and run `bench-app datasets fetch --from DIR ...`."
        ) from None
    digest = verify(partial, source, remove_bad=True)
    os.replace(partial, final)
    return final, digest


def verify(archive: Path, source: Source, remove_bad: bool = False) -> str:
    """The archive's sha256, checked against the table's size and sha256 where it gives them."""
    size = archive.stat().st_size
    problem = None
    if source.size is not None and size != source.size:
        problem = f"it has {size} bytes, the table says {source.size}"
    digest = hashlib.sha256()
    with open(archive, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    found = digest.hexdigest()
    if problem is None and source.sha256 and found != source.sha256:
        problem = f"its sha256 is {found}, the table says {source.sha256}"
    if problem:
        if remove_bad:
            archive.unlink(missing_ok=True)  # a bad download is not resumed
        raise UserError(
            f"{archive.name} from {source.url} is not the archive expected: {problem}. Nothing was unpacked"
            + ("; the download was removed, run this again to fetch it anew." if remove_bad else ".")
        )
    return found


def unpack(archive: Path, source: Source, base: Path) -> None:
    """Unpack next to where it goes, check it holds the data path, then move it in (never half-written)."""
    target = base / source.key
    into = base / source.unpack_into if source.unpack_into else target.parent
    into.mkdir(parents=True, exist_ok=True)
    staging = into / f".bench_app-unpack-{os.getpid()}-{int(time.time())}"
    staging.mkdir()
    try:
        if source.unpack_into is None:
            shutil.copyfile(archive, staging / target.name)
        elif zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                zipped.extractall(staging)
        elif tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tarred:
                tarred.extractall(staging, filter="data")
        else:
            raise UserError(f"{archive} is neither a zip nor a tar archive")
        inside = staging / target.relative_to(into)
        if not inside.exists():
            held = ", ".join(sorted(p.name for p in staging.iterdir())[:10]) or "nothing"
            raise UserError(
                f"{archive.name} does not hold {target.relative_to(into)} (it holds {held}); the datasets "
                f"folder is unchanged. Unpack it by hand so that {target} exists."
            )
        for entry in sorted(staging.iterdir()):
            destination = into / entry.name
            if destination.exists():  # an incomplete copy: kept aside, never deleted
                destination.rename(destination.with_name(f"{entry.name}.replaced-{int(time.time())}"))
            entry.rename(destination)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
