"""The documents' links cannot rot: every relative link of README.md and docs/*.md names a file that exists
and, with a #fragment, a heading of that file (GitHub's anchors); the README stays an entry point."""

import re
from pathlib import Path

ROOT = Path(__file__).parents[1]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def anchors(path: Path):
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    found, fence = set(), False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fence = not fence
        heading = re.match(r"^#{1,6} (.+)", line)
        if heading and not fence:
            text = heading.group(1).strip().lower()
            found.add(re.sub(r"[^\w\- ]", "", text).replace(" ", "-"))
    return found


def broken_links():
    broken = []
    for document in DOCUMENTS:
        text, fence_free = document.read_text(encoding="utf-8"), []
        fence = False
        for line in text.splitlines():
            if line.startswith("```"):
                fence = not fence
            if not fence:
                fence_free.append(line)
        for target in LINK.findall("\n".join(fence_free)):
            if re.match(r"^[a-z]+://|^mailto:", target):
                continue
            file, _, fragment = target.partition("#")
            path = (document.parent / file).resolve() if file else document
            if not path.exists():
                broken.append(f"{document.relative_to(ROOT)}: {target} (no such file)")
            elif fragment and path.suffix == ".md" and fragment not in anchors(path):
                broken.append(f"{document.relative_to(ROOT)}: {target} (no such heading)")
    return broken


def test_every_link_of_the_documents_resolves():
    assert broken_links() == []


def test_the_readme_is_an_entry_point_that_links_every_guide():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 400
    for page in sorted((ROOT / "docs").glob("*.md")):
        assert f"docs/{page.name}" in readme, f"README.md does not link docs/{page.name}"


def test_the_run_folder_page_lists_every_field_of_the_record_types():
    import importlib.util

    script = ROOT / "scripts" / "record_reference.py"
    spec = importlib.util.spec_from_file_location("record_reference", script)
    reference = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(reference)
    page = reference.PAGE.read_text(encoding="utf-8")
    assert page == reference.page_with_tables(page), (
        "docs/run-folder.md differs from the types in bench_app/records/: run "
        "`.venv/bin/python scripts/record_reference.py --write`"
    )
