"""The README is the user's map: what it says about the layout and the test suite is checked against the files."""

from __future__ import annotations

import re

from .conftest import ROOT

README = (ROOT / "README.md").read_text()


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
