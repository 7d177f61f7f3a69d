"""The shape of the codebase a user copies: no import cycles between trainlab's modules, and every technique option
is a class that says where it acts (both generated from the files, so a new module or YAML is checked too)."""

from __future__ import annotations

import ast
from pathlib import Path

import hydra
import pytest
from omegaconf import OmegaConf

from trainlab import CONFIG_DIR
from trainlab.techniques import STAGES

SRC = Path(__file__).resolve().parents[1] / "src"


def import_graph() -> dict[str, set[str]]:
    """``{module: trainlab modules it imports}``, counting imports inside functions too."""
    modules = {
        ".".join(p.relative_to(SRC).with_suffix("").parts).removesuffix(".__init__"): p for p in SRC.rglob("*.py")
    }
    modules = {name: path for name, path in modules.items() if name.startswith("trainlab")}
    graph = {}
    for name, path in modules.items():
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trainlab"):
                for alias in node.names:
                    full = f"{node.module}.{alias.name}"
                    deps.add(full if full in modules else node.module)
            elif isinstance(node, ast.Import):
                deps |= {alias.name for alias in node.names if alias.name.startswith("trainlab")}
        graph[name] = {d for d in deps if d in modules and d not in (name, "trainlab")}
    return graph


def test_no_module_of_trainlab_imports_itself_back() -> None:
    graph = import_graph()
    assert "trainlab.train" in graph and "trainlab.build" in graph["trainlab.train"]

    def reaches(start: str, goal: str, seen: set[str]) -> bool:
        for dep in graph[start] - seen:
            if dep == goal or reaches(dep, goal, seen | {dep}):
                return True
        return False

    cycles = sorted(name for name in graph if reaches(name, name, set()))
    assert cycles == [], f"modules on an import cycle: {cycles}"


TECHNIQUE_FILES = sorted(
    p.relative_to(CONFIG_DIR) for group in ("augment", "regularizer") for p in (CONFIG_DIR / group).glob("*.yaml")
)


@pytest.mark.parametrize("path", TECHNIQUE_FILES, ids=str)
def test_every_technique_option_names_a_class_that_says_where_it_acts(path: Path) -> None:
    (name, node), *rest = OmegaConf.load(CONFIG_DIR / path).items()
    assert not rest and name == path.stem, "one entry, under the option's own name"
    cls = hydra.utils.get_class(node["_target_"])
    assert cls.stage in STAGES
    assert cls.__doc__ and len(cls.__doc__.strip()) > 20, "its docstring defines it"
    if cls.stage == "layer":
        assert isinstance(cls.argument, str)
