"""A setting is declared once, in the signature that takes it (:mod:`trainlab.settings`): what the source says
before the run (read with ast, nothing imported) and what the constructor checks (``@checked``) are the same."""

from __future__ import annotations

import inspect
import math
import sys
import textwrap
from pathlib import Path
from typing import Annotated, Literal

import pytest
import yaml

from trainlab import CONFIG_DIR
from trainlab.settings import Declared, Setting, checked, declaration, declared


def targets() -> list[str]:
    """Every class of trainlab that a config names (``_target_``), read from configs/."""
    found: set[str] = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("_target_"), str) and node["_target_"].startswith("trainlab."):
                found.add(node["_target_"])
            for value in node.values():
                walk(value)

    for path in Path(CONFIG_DIR).rglob("*.yaml"):
        walk(yaml.safe_load(path.read_text()))
    return sorted(found)


def runtime_settings(target: str) -> dict[str, Declared]:
    """The declarations ``@checked`` evaluates in the imported class: its constructor's, and while a constructor
    passes ``**kwargs`` on, those of the next one up the class hierarchy."""
    import importlib

    module, _, name = target.rpartition(".")
    obj = getattr(importlib.import_module(module), name)
    inits = (
        [c.__dict__["__init__"] for c in inspect.getmro(obj) if "__init__" in c.__dict__]
        if inspect.isclass(obj)
        else [obj]
    )
    found: dict[str, Declared] = {}
    for init in inits:
        parameters = inspect.signature(init).parameters
        for pname, parameter in parameters.items():
            annotation = parameter.annotation
            if isinstance(annotation, str):
                try:
                    annotation = eval(annotation, inspect.unwrap(init).__globals__)  # noqa: S307
                except Exception:  # noqa: BLE001
                    continue
            if (d := declaration(annotation)) is not None:
                found.setdefault(pname, d)
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
            break
    return found


def library_settings_of(target: str) -> dict[str, Declared]:
    """What LIBRARY declares for the library classes ``target`` subclasses (checked by the library, not @checked)."""
    import importlib

    from trainlab.settings import _library, library_declared

    module, _, name = target.rpartition(".")
    obj = getattr(importlib.import_module(module), name)
    found: dict[str, Declared] = {}
    for key in _library():
        if key.endswith("."):
            continue
        lib_module, _, lib_name = key.rpartition(".")
        try:
            cls = getattr(importlib.import_module(lib_module), lib_name)
        except ImportError:
            continue  # the other spelling of Lightning's package
        if inspect.isclass(obj) and issubclass(obj, cls):
            found.update(library_declared(key))
    return found


@pytest.mark.parametrize("target", targets())
def test_the_source_and_the_constructor_read_the_same_declarations(target) -> None:
    assert declared(target) == {**library_settings_of(target), **runtime_settings(target)}


def test_no_number_or_flag_a_config_sets_is_left_undeclared() -> None:
    """Every parameter of a trainlab class that a config names and that is a plain ``int``, ``float`` or ``bool``
    declares its range (strings, paths and shapes are not ranges)."""
    import importlib

    plain = {f"{kind}{none}" for kind in ("int", "float", "bool") for none in ("", " | None")}
    undeclared = []
    for target in targets():
        module, _, name = target.rpartition(".")
        parameters = inspect.signature(getattr(importlib.import_module(module), name)).parameters
        undeclared += [
            f"{target}({p.name}: {p.annotation})"
            for p in parameters.values()
            if str(p.annotation) in plain and p.name not in declared(target)
        ]
    assert undeclared == []


@pytest.mark.parametrize(
    ("annotation", "good", "bad", "allowed"),
    [
        (Annotated[int, Setting("n", low=1)], [1, 7], [0, 1.0, True, "3"], "an integer >= 1"),
        (
            Annotated[float, Setting("p", low=0, high=1)],
            [0, 0.5, 1],
            [-0.1, 1.01, math.nan, False],
            "a number in [0, 1]",
        ),
        (Annotated[float, Setting("p", low=0, high=1, high_open=True)], [0, 0.99], [1, 1.0], "a number in [0, 1)"),
        (Annotated[float, Setting("lr", low=0, low_open=True)], [1e-9], [0, 0.0, math.inf], "a number > 0"),
        (Annotated[bool, Setting("flag")], [True, False], [0, 1, "yes"], "true or false"),
        (Annotated[Literal["max", "avg"], Setting("pool")], ["max", "avg"], ["sum", 1], "one of max, avg"),
        (Annotated[Literal["32", 32], Setting("precision")], ["32", 32], [32.0, "16"], "one of 32"),
        (Annotated[int, Setting("threads", low=1, also=("auto",))], ["auto", 2], [0, "all"], "auto or an integer >= 1"),
        (Annotated[int, Setting("k", low=1)] | None, [3], [0], "an integer >= 1"),
    ],
)
def test_a_declaration_accepts_what_it_says_and_refuses_the_rest(annotation, good, bad, allowed) -> None:
    d = declaration(annotation)
    assert d is not None and d.allowed() == allowed
    assert all(d.accepts(v) for v in good) and not any(d.accepts(v) for v in bad)
    assert d.problem("model.k", bad[0]) == f"model.k={bad[0]!r}: {d.what} must be {allowed}"


def test_checked_refuses_every_bad_argument_at_once_and_passes_good_ones() -> None:
    class Net:
        @checked
        def __init__(
            self,
            width: Annotated[int, Setting("units", low=1)] = 8,
            p: Annotated[float, Setting("drop probability", low=0, high=1, high_open=True)] = 0.5,
            name: str = "x",
        ) -> None:
            self.width, self.p = width, p

    assert Net(width=3, p=0.0).width == 3
    with pytest.raises(ValueError, match=r"^width=0: units must be an integer >= 1; p=1: drop probability must be"):
        Net(width=0, p=1)


def test_the_reader_resolves_aliases_imports_and_unpacked_bounds(tmp_path, monkeypatch) -> None:
    """What a user writes: an alias in another module of the package, ``Alias | None``, ``**BOUNDS`` in Setting,
    a subclass that passes ``**kwargs`` on; nothing of it is imported."""
    package = tmp_path / "userpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "kinds.py").write_text(
        textwrap.dedent(
            """
            from typing import Annotated
            from trainlab.settings import Setting
            UNIT = {"low": 0, "high": 1, "high_open": True}
            Probability = Annotated[float, Setting("probability", **UNIT)]
            """
        )
    )
    (package / "net.py").write_text(
        textwrap.dedent(
            """
            import torch
            from typing import Annotated
            from trainlab.settings import Setting, checked
            from userpkg.kinds import Probability

            class Base(torch.nn.Module):
                @checked
                def __init__(
                    self, p: Probability | None = None, depth: Annotated[int, Setting("layers", low=2**1)] = 2
                ):
                    super().__init__()

            class Net(Base):
                def __init__(self, width: Annotated[int, Setting("units", low=1)] = 4, **kwargs):
                    super().__init__(**kwargs)
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    found = {k: (d.kind, d.allowed()) for k, d in declared("userpkg.net.Net").items()}
    assert found == {
        "p": ("number", "a number in [0, 1)"),
        "depth": ("int", "an integer >= 2"),
        "width": ("int", "an integer >= 1"),
    }
    assert "userpkg.net" not in sys.modules and "userpkg.kinds" not in sys.modules


def test_a_key_the_class_does_not_take_is_refused_before_the_run(make_cfg) -> None:
    """A class that declares its settings is read whole: a key its constructor (or the base it passes ``**kwargs``
    on to) does not take is named with a suggestion; the data config's own declarations are not keys of that kind."""
    from trainlab.validate import unknown_key_problems

    assert unknown_key_problems(make_cfg()) == []  # num_classes/input_shape of data: declarations, not arguments
    (problem,) = unknown_key_problems(make_cfg("+model.wdth=3"))
    assert problem.startswith("model.wdth=3: trainlab.models.mlp.MLP has no setting 'wdth'; did you mean 'width'?")
    (problem,) = unknown_key_problems(make_cfg("data=fashion_mnist", "+data.val_sise=10"))
    assert "FashionMNISTDataModule has no setting 'val_sise'; did you mean 'val_size'?" in problem
    assert unknown_key_problems(make_cfg("+optimizer.foo=1")) == []  # torch's: checked against torch itself
