"""A setting's type, range and meaning, declared once: in the signature of the class (or function) that takes it.

A constructor argument is a setting when its annotation is ``Annotated[<type>, Setting(<what>, <range>)]``::

    from typing import Annotated, Literal

    from trainlab.settings import Setting, checked

    class MyModel(nn.Module):
        @checked
        def __init__(
            self,
            width: Annotated[int, Setting("units per layer", low=1)] = 64,
            pool: Annotated[Literal["max", "avg"], Setting("the pooling")] = "max",
        ) -> None: ...

The type says the kind (``int``, ``float``: a number, ``bool``, ``Literal[...]``: one of its values); the
:class:`Setting` says what the setting is in a few words and its range. The one declaration is used twice:

* **before the run**, without importing torch: :func:`declared` reads the signature of the config's ``_target_``
  from its source file with :mod:`ast`, and :func:`trainlab.validate.validate` checks the config's values against
  it (exit code 2 in well under a second, nothing written);
* **when the object is built**, from a config or from Python: :func:`checked` checks the arguments against the
  same declaration and raises ``ValueError`` naming the argument, its value and what is allowed.

A user's model, data module or technique gets both checks by declaring its settings the same way. Settings that
need two values (a crop's padding against the image side) are rules of :mod:`trainlab.combinations`; settings
handed to a library's class (torch's optimizers, Lightning's ``Trainer``) are declared in
:data:`trainlab.library_settings.LIBRARY`, since
their signatures are not ours to annotate. A module can declare settings that no class takes (the run's own
switches: ``seed``, ``extras.*``) in a module-level ``SETTINGS = {"key": Annotated[...]}``, read the same way.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Setting:
    """What a setting is (``what``, a few words) and its range: ``low``/``high`` bounds (closed unless
    ``low_open``/``high_open``), and ``also``: values allowed beyond the type and range (``"auto"``)."""

    what: str
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    also: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Declared:
    """A :class:`Setting` with the kind its type gives: ``int``, ``number``, ``bool`` or ``choice``."""

    setting: Setting
    kind: str
    choices: tuple[Any, ...] = ()

    @property
    def what(self) -> str:
        return self.setting.what

    def allowed(self) -> str:
        s = self.setting
        if self.kind == "bool":
            base = "true or false"
        elif self.kind == "choice":
            base = "one of " + ", ".join(dict.fromkeys(map(str, self.choices)))  # 32 and '32' read alike
        else:
            base = "an integer" if self.kind == "int" else "a number"
            if s.low is not None and s.high is not None:
                lo, hi = "(" if s.low_open else "[", ")" if s.high_open else "]"
                base += f" in {lo}{_num(s.low)}, {_num(s.high)}{hi}"
            elif s.low is not None:
                base += f" {'>' if s.low_open else '>='} {_num(s.low)}"
            elif s.high is not None:
                base += f" {'<' if s.high_open else '<='} {_num(s.high)}"
        return " or ".join([*map(_text, s.also), base])

    def accepts(self, value: Any) -> bool:
        s = self.setting
        if any(value == v and type(value) is type(v) for v in s.also):
            return True
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "choice":  # 32 (an int, as Hydra reads it) and '32' are both choices when both are listed
            return any(value == c and type(value) is type(c) for c in self.choices)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False
        if self.kind == "int" and not isinstance(value, int):
            return False
        if not math.isfinite(value):
            return False
        if s.low is not None and (value <= s.low if s.low_open else value < s.low):
            return False
        return not (s.high is not None and (value >= s.high if s.high_open else value > s.high))

    def problem(self, key: str, value: Any) -> str | None:
        """``"<key>=<value>: <what> must be <allowed>"`` when ``value`` is not allowed, else None."""
        return None if self.accepts(value) else f"{key}={value!r}: {self.what} must be {self.allowed()}"


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _text(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def declaration(annotation: Any) -> Declared | None:
    """The :class:`Declared` setting of a type annotation (``Annotated[int, Setting(...)]``, also ``... | None``)."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        found = [d for a in typing.get_args(annotation) if a is not type(None) and (d := declaration(a))]
        return found[0] if len(found) == 1 else None
    if typing.get_origin(annotation) is not Annotated:
        return None
    base, *extras = typing.get_args(annotation)
    setting = next((e for e in extras if isinstance(e, Setting)), None)
    if setting is None:
        return None
    if typing.get_origin(base) is Literal:
        return Declared(setting, "choice", typing.get_args(base))
    kinds = {bool: "bool", int: "int", float: "number"}
    if base not in kinds:
        raise TypeError(f"Setting({setting.what!r}) annotates {base!r}; use int, float, bool or Literal[...]")
    return Declared(setting, kinds[base])


# ---- when the object is built ----
def checked(init: F) -> F:
    """Check the arguments of ``init`` (a constructor or function) against their :class:`Setting` declarations.

    Raises ``ValueError`` listing every argument out of range, e.g. ``p=1.5: probability of a flip must be a number
    in [0, 1]``. ``None`` is not checked (it means "not set" wherever a declared setting allows it).
    """
    signature = inspect.signature(init)

    @functools.cache
    def settings() -> dict[str, Declared]:
        found = {}
        for name, parameter in signature.parameters.items():
            annotation = parameter.annotation
            if isinstance(annotation, str):  # from __future__ import annotations: evaluate each one alone
                try:
                    annotation = eval(annotation, init.__globals__)  # noqa: S307 - the module's own annotation
                except Exception:  # noqa: BLE001 - a name only imported for type checking: no declaration here
                    continue
            if (d := declaration(annotation)) is not None:
                found[name] = d
        return found

    @functools.wraps(init)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        problems = [
            p
            for name, d in settings().items()
            if (value := bound.arguments.get(name)) is not None and (p := d.problem(name, value))
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return init(*args, **kwargs)

    return typing.cast(F, wrapper)


# ---- before the run: read from the source, torch not imported ----


class _Unknown(Exception):
    """A name or expression of the source that is not a constant the reader can evaluate."""


def module_file(module: str) -> Path | None:
    """The ``.py`` file of a module, found without importing it or its packages."""
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])  # a top-level name: nothing is imported
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    if len(parts) == 1:
        return Path(spec.origin) if spec.origin and spec.origin.endswith(".py") else None
    for base in spec.submodule_search_locations or []:
        path = Path(base, *parts[1:])
        for candidate in (path.with_suffix(".py"), path / "__init__.py"):
            if candidate.is_file():
                return candidate
    return None


class _Module:
    """A module's source: its top-level assignments, classes, functions and imports, evaluated on demand."""

    #: what a declaration may use besides the module's own constants: the kinds and this module's names
    BUILTINS: typing.ClassVar[dict[str, Any]] = {
        "int": int,
        "float": float,
        "bool": bool,
        "str": str,
        "None": None,
        "Annotated": Annotated,
        "Literal": Literal,
        "Setting": Setting,
        "math": math,
    }

    def __init__(self, name: str, tree: ast.Module) -> None:
        self.name = name
        self.nodes: dict[str, ast.AST] = {}
        self.imports: dict[str, tuple[str, str | None]] = {}  # local name: (module, attribute or None)
        for node in tree.body:
            if isinstance(node, ast.ClassDef | ast.FunctionDef):
                self.nodes[node.name] = node
            elif isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                self.nodes[node.targets[0].id] = node.value
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
                self.nodes[node.target.id] = node.value
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = (node.module, alias.name)
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                package = name.rsplit(".", node.level)[0]
                module = f"{package}.{node.module}" if node.module else package
                for alias in node.names:
                    self.imports[alias.asname or alias.name] = (module, alias.name)

    def lookup(self, name: str) -> tuple[_Module, ast.AST] | None:
        """The node that defines ``name`` here or in the module it is imported from."""
        if name in self.nodes:
            return self, self.nodes[name]
        if name in self.imports:
            module, attribute = self.imports[name]
            if module in ("typing", "typing_extensions", __name__) or not _may_declare(module):
                return None  # known without reading it, or a module that declares nothing (a library's)
            source = _source(module)
            if source is not None and attribute is not None:
                return source.lookup(attribute)
            if attribute is not None and (package := _source(f"{module}.{attribute}")) is not None:
                return package, ast.Module(body=[], type_ignores=[])  # a submodule, found by name only
        return None

    def value(self, node: ast.AST) -> Any:
        """Evaluate a constant expression: literals, names of constants, ``Setting(...)``, ``Annotated[...]``."""
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Tuple | ast.List):
            return tuple(self.value(e) for e in node.elts)
        if isinstance(node, ast.Dict):
            out: dict[Any, Any] = {}
            for key, value in zip(node.keys, node.values, strict=True):
                if key is None:
                    out.update(self.value(value))
                else:
                    out[self.value(key)] = self.value(value)
            return out
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return -self.value(node.operand)
        if isinstance(node, ast.BinOp):
            left, right = self.value(node.left), self.value(node.right)
            ops: dict[type, Callable[[Any, Any], Any]] = {
                ast.Add: lambda a, b: a + b,
                ast.Sub: lambda a, b: a - b,
                ast.Mult: lambda a, b: a * b,
                ast.Div: lambda a, b: a / b,
                ast.Pow: lambda a, b: a**b,
                ast.BitOr: lambda a, b: a | b,
            }
            if type(node.op) not in ops:
                raise _Unknown(ast.dump(node))
            return ops[type(node.op)](left, right)
        if isinstance(node, ast.Name):
            found = self.lookup(node.id)
            if found is not None and not isinstance(found[1], ast.ClassDef | ast.FunctionDef | ast.Module):
                return found[0].value(found[1])
            if node.id in self.BUILTINS:
                return self.BUILTINS[node.id]
            raise _Unknown(node.id)
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in ("typing", "typing_extensions") and node.attr in ("Annotated", "Literal"):
                return self.BUILTINS[node.attr]
            if node.value.id == "math" and node.attr in ("inf", "pi"):
                return getattr(math, node.attr)
            raise _Unknown(ast.dump(node))
        if isinstance(node, ast.Subscript):
            base = self.value(node.value)
            if base is Annotated or base is Literal:
                return base[self.value(node.slice)]
            raise _Unknown(ast.dump(node))
        if isinstance(node, ast.Call) and self.value(node.func) is Setting:
            args = [self.value(a) for a in node.args]
            kwargs: dict[str, Any] = {}
            for keyword in node.keywords:
                kwargs.update({keyword.arg: self.value(keyword.value)} if keyword.arg else self.value(keyword.value))
            return Setting(*args, **kwargs)
        raise _Unknown(ast.dump(node))

    def signature_settings(self, function: ast.FunctionDef) -> tuple[dict[str, Declared], bool]:
        """The declared settings among ``function``'s parameters, and whether it takes ``**kwargs``."""
        found: dict[str, Declared] = {}
        args = function.args
        for arg in [*args.posonlyargs, *args.args, *args.kwonlyargs]:
            if arg.annotation is None:
                continue
            try:
                declared = declaration(self.value(arg.annotation))
            except (_Unknown, TypeError, RecursionError):
                continue
            if declared is not None:
                found[arg.arg] = declared
        return found, args.kwarg is not None

    def parameters(self, function: ast.FunctionDef) -> tuple[list[str], bool]:
        """The keyword parameters of ``function`` (``self`` aside) and whether it takes ``**kwargs``."""
        args = function.args
        names = [a.arg for a in [*args.posonlyargs, *args.args, *args.kwonlyargs] if a.arg not in ("self", "cls")]
        return names, args.kwarg is not None

    def class_parameters(self, node: ast.ClassDef, depth: int = 0) -> list[str] | None:
        """What a class's constructor takes, through the bases it passes ``**kwargs`` on to; None when some of that
        is not readable here (a library's base class, ``*args``)."""
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        own, passes_on = self.parameters(init) if init is not None else ([], True)
        if not passes_on:
            return own
        if depth > 8 or not node.bases:
            return None if init is None or node.bases else own
        found = list(own)
        for base in node.bases:
            name = base.id if isinstance(base, ast.Name) else None
            located = self.lookup(name) if name else None
            if located is None or not isinstance(located[1], ast.ClassDef):
                return None
            inherited = located[0].class_parameters(located[1], depth + 1)
            if inherited is None:
                return None
            found += [n for n in inherited if n not in found]
        return found

    def class_settings(self, node: ast.ClassDef, depth: int = 0) -> dict[str, Declared]:
        """The declared settings of a class's constructor; an inherited one (no ``__init__`` of its own, or one that
        passes ``**kwargs`` on) is read from the base classes this reader can find."""
        init = next((n for n in node.body if isinstance(n, ast.FunctionDef) and n.name == "__init__"), None)
        own, passes_on = self.signature_settings(init) if init is not None else ({}, True)
        if not passes_on or depth > 8:
            return own
        inherited: dict[str, Declared] = {}
        for base in node.bases:
            name = base.id if isinstance(base, ast.Name) else None
            if name in self.imports:  # a library's class: what trainlab.library_settings.LIBRARY declares for it
                module, attribute = self.imports[name]
                inherited = {**library_declared(f"{module}.{attribute}"), **inherited}
            found = self.lookup(name) if name else None
            if found is not None and isinstance(found[1], ast.ClassDef):
                inherited = {**found[0].class_settings(found[1], depth + 1), **inherited}
        return {**inherited, **own}


@functools.cache
def _source(module: str) -> _Module | None:
    """The parsed source of ``module``; None when it is not found."""
    path = module_file(module)
    if path is None:
        return None
    try:
        return _Module(module, ast.parse(path.read_text()))
    except (OSError, SyntaxError, ValueError):
        return None


@functools.cache
def _may_declare(module: str) -> bool:
    """Whether an imported module is worth reading: it mentions ``Setting``, is a package (whose ``__init__``
    re-exports), or is where a class of :data:`~trainlab.library_settings.LIBRARY` lives. Others (a library's
    modules: all of Lightning's class hierarchy) are not parsed, which would only cost time."""
    path = module_file(module)
    if path is None:
        return False
    if path.name == "__init__.py":
        return True
    try:
        text = path.read_text()
    except (OSError, ValueError):
        return False
    return "Setting" in text or any(name in text for name in _library_names())


#: where the settings of library classes are declared (a module-level ``LIBRARY``), read like any other source
LIBRARY_MODULE = "trainlab.library_settings"


@functools.cache
def _library() -> dict[str, dict[str, Any]]:
    source = _source(LIBRARY_MODULE)
    return source.value(source.nodes["LIBRARY"]) if source is not None and "LIBRARY" in source.nodes else {}


@functools.cache
def _library_classes() -> frozenset[str]:
    return frozenset(key for key in _library() if not key.endswith("."))


@functools.cache
def _library_names() -> frozenset[str]:
    return frozenset(key.rsplit(".", 1)[-1] for key in _library_classes())


@functools.cache
def library_declared(target: str) -> dict[str, Declared]:
    """What :data:`trainlab.library_settings.LIBRARY` declares for the library class ``target``."""
    library = _library()
    prefixes = [p for p in library if target == p or (p.endswith(".") and target.startswith(p))]
    table = library[max(prefixes, key=len)] if prefixes else {}  # the most specific declaration
    return {key: d for key, annotation in table.items() if (d := declaration(annotation)) is not None}


def _definition(target: str) -> tuple[_Module, ast.AST] | None:
    """Where ``target`` is defined (its module's source, the class or function node); None for a library's class
    itself (nothing of its source is ours) or when it is not found."""
    if target in _library_classes():
        return None
    module, _, name = target.rpartition(".")
    source = _source(module) if module else None
    return source.lookup(name) if source is not None else None


@functools.cache
def declared(target: str) -> dict[str, Declared]:
    """The declared settings of ``target`` (``package.module.Class`` or ``.function``), read from its source with
    :mod:`ast` (nothing is imported), plus those :data:`trainlab.library_settings.LIBRARY` declares for a library's
    class (:func:`library_declared`). Empty when the source is not found.
    """
    library = library_declared(target)
    found = _definition(target)
    if found is None:
        return library
    where, node = found
    if isinstance(node, ast.ClassDef):
        return {**library, **where.class_settings(node)}
    if isinstance(node, ast.FunctionDef):
        return {**library, **where.signature_settings(node)[0]}
    return library


@functools.cache
def module_settings(module: str) -> dict[str, Declared]:
    """The settings a module declares in a top-level ``SETTINGS = {"dotted.key": Annotated[...], ...}``."""
    source = _source(module)
    if source is None or "SETTINGS" not in source.nodes:
        return {}
    table = source.value(source.nodes["SETTINGS"])
    if not isinstance(table, Mapping):
        return {}
    return {key: d for key, annotation in table.items() if (d := declaration(annotation)) is not None}


@functools.cache
def parameters(target: str) -> tuple[str, ...] | None:
    """The settings ``target`` (a class or function) takes, read from its source (nothing imported); None when they
    cannot all be read there (a library's class, ``**kwargs`` passed to one)."""
    found = _definition(target)
    if found is None:
        return None
    where, node = found
    if isinstance(node, ast.ClassDef):
        params = where.class_parameters(node)
        return None if params is None else tuple(params)
    if isinstance(node, ast.FunctionDef):
        names, takes_any = where.parameters(node)
        return None if takes_any else tuple(names)
    return None
