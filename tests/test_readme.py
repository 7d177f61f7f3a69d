"""The README is the user's map: what it says about the layout and the test suite is checked against the files, and
every relative link of the README and of the pages it leads to (docs/, benchmarks/) points to a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .conftest import ROOT

README = (ROOT / "README.md").read_text()
#: the user documentation: the README and every markdown page under docs/ and benchmarks/ (found, not listed)
PAGES = [ROOT / "README.md", *sorted(ROOT.glob("docs/**/*.md")), *sorted(ROOT.glob("benchmarks/**/*.md"))]
LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^)\s]+)\)")


def layout_entries() -> list[tuple[str, str]]:
    """(parent, name) for each line of the README's layout block; indented lines belong to the last top-level one."""
    block = README.split("## Layout", 1)[1].split("```", 2)[1]
    entries, parent = [], ""
    for line in block.strip("\n").splitlines():
        name = line.split()[0]
        if line.startswith("  "):
            entries.append((parent, name))
        else:
            parent = name
            entries.append(("", name))
    return entries


def test_every_path_in_the_layout_exists():
    missing = [parent + name for parent, name in layout_entries() if not (ROOT / parent / name).exists()]
    assert not missing, f"the README's layout names paths that do not exist: {missing}"


def test_every_module_of_the_package_is_in_the_layout():
    listed = {name.rstrip("/") for parent, name in layout_entries() if parent == "src/trainlab/"}
    package = ROOT / "src/trainlab"
    modules = {p.stem for p in package.glob("*.py") if p.name != "__init__.py"}
    modules |= {p.name for p in package.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    names = {n.removesuffix(".py") for n in listed}
    assert modules <= names, f"modules missing from the README's layout: {sorted(modules - names)}"


def test_the_readme_and_the_makefile_state_the_same_test_time():
    """One measurement, stated in both places (`make test` in the quick start and the Makefile's help text)."""
    readme = re.search(r"make test .*?about ([\d,]+) tests, about (\d+) minutes", README)
    makefile = re.search(
        r"^test:.*## .*?about ([\d,]+) tests, about (\d+) minutes", (ROOT / "Makefile").read_text(), re.M
    )
    assert readme and makefile, "the README's quick start and the Makefile's `test` target each state the test time"
    assert readme.groups() == makefile.groups()


def test_the_readme_stays_a_map():
    """Results, definitions, operations and speed live in docs/ and benchmarks/README.md, not in the README."""
    size = len(README.encode())
    assert size <= 12 * 1024, f"README.md is {size} bytes; move detail to docs/ and link to it (at most 12 KiB)"


def test_the_readme_links_every_docs_page():
    """Every page of docs/ and every folder's README.md (benchmarks/) is reachable from the README."""
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in links(README)}
    pages = {p for p in PAGES[1:] if p.parent == ROOT / "docs" or p.name == "README.md"}
    unlinked = sorted(str(p.relative_to(ROOT)) for p in pages if p.resolve() not in linked)
    assert not unlinked, f"pages the README's Documentation list does not link: {unlinked}"


def links(text: str) -> list[str]:
    """The targets of the markdown links of ``text`` outside fenced code blocks, without web and mail addresses."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return [t for t in LINK.findall(prose) if not re.match(r"[a-z][a-z0-9+.-]*:", t)]


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, each space a hyphen."""
    text = re.sub(r"[`*_]", "", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S)
    return {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_points_to_an_existing_file(page: Path):
    broken = []
    for target in links(page.read_text()):
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)} links to what does not exist: {broken}"
