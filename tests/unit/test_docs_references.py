"""References into docs/ resolve: every ``docs/<name>.md#<anchor>`` in the code and every link between
the Markdown files names a file of the checkout and an anchor it has, and no code cites a numbered
section of a document that is not in the repository."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CODE_DIRS = ("shared", "services", "tests", "scripts")
CODE_REFERENCE = re.compile(r"docs/([\w-]+\.md)#([\w-]+)")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]*?\.md)?(?:#([\w-]+))?\)")
EXPLICIT_ANCHOR = re.compile(r'<a id="([\w-]+)"></a>')
HEADING = re.compile(r"^#{1,6}\s+(.*)$", re.MULTILINE)


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def anchors(path: Path) -> set[str]:
    text = path.read_text(encoding="utf-8")
    return set(EXPLICIT_ANCHOR.findall(text)) | {slug(h) for h in HEADING.findall(text)}


def code_files() -> list[Path]:
    return [p for d in CODE_DIRS for p in (REPO / d).rglob("*.py") if "__pycache__" not in p.parts]


def test_every_docs_reference_in_the_code_names_an_anchor_that_exists() -> None:
    known = {p.name: anchors(p) for p in (REPO / "docs").glob("*.md")}
    broken = [
        f"{path.relative_to(REPO)}: docs/{name}#{anchor}"
        for path in code_files()
        for name, anchor in CODE_REFERENCE.findall(path.read_text(encoding="utf-8"))
        if anchor not in known.get(name, set())
    ]
    assert [] == broken


def test_no_code_cites_a_section_sign() -> None:
    """Sections of documents outside the repository do not resolve for a reader of a clone."""
    citing = [
        f"{path.relative_to(REPO)}:{n}"
        for path in code_files()
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if "\N{SECTION SIGN}" in line
    ]
    assert [] == citing


def test_links_between_the_documents_resolve() -> None:
    broken = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target, anchor in MARKDOWN_LINK.findall(path.read_text(encoding="utf-8")):
            if target.startswith(("http:", "https:")):
                continue
            file = (path.parent / target).resolve() if target else path
            if not file.is_file():
                broken.append(f"{path.relative_to(REPO)}: {target} does not exist")
            elif anchor and file.suffix == ".md" and anchor not in anchors(file):
                broken.append(f"{path.relative_to(REPO)}: {target}#{anchor} has no such anchor")
    assert [] == broken


def test_the_slug_of_a_heading_is_githubs() -> None:
    assert "sharing-the-line-modbus" == slug("Sharing the line: `$modbus`")
    assert "checklist-add-a-sensor" == slug("Checklist: add a sensor")
