"""The shape of the house, read from the code with `ast` (nothing is imported or run).

- The product (pitcrew/, functions/, function_app.py) never imports the development tooling
  (pitcrew_dev/): it is not deployed (.funcignore). The one exception is `pitcrew dev` and
  `pitcrew send` (pitcrew/cli/dev.py), which import it inside their functions, when they run.
- pitcrew/ never imports azure.functions: triggers live in functions/.
- No import circles among module-level imports in pitcrew/ and pitcrew_dev/ (imports inside
  functions are deliberate: lazy SDK imports, the dev commands).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = [ROOT / "pitcrew", ROOT / "functions", ROOT / "function_app.py"]
# Where pitcrew_dev may be named, and only inside a function body.
LAZY_DEV_IMPORTS_ALLOWED = {"pitcrew.cli.dev"}


@dataclass(frozen=True)
class Import:
    module: str  # the importing module, dotted
    target: str  # what it imports: a module, or module.name for `from module import name`
    line: int
    in_function: bool


def python_files(paths: Iterable[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_file():
            yield path
        else:
            yield from sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.resolve().relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, *([node.module] if node.module else [])])


def imports(path: Path) -> Iterator[Import]:
    """Every import statement of one file (`import_module("x")` calls with a literal too)."""
    module = module_name(path)
    tree = ast.parse(path.read_text(), filename=str(path))

    def visit(node: ast.AST, in_function: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(
                child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
            )
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(module, alias.name, child.lineno, in_function)
            elif isinstance(child, ast.ImportFrom):
                source = _absolute(child, module, path.name == "__init__.py")
                for alias in child.names:
                    yield Import(module, f"{source}.{alias.name}", child.lineno, in_function)
            elif (
                isinstance(child, ast.Call)
                and isinstance(child.func, ast.Name | ast.Attribute)
                and (getattr(child.func, "id", None) or getattr(child.func, "attr", None))
                in {"import_module", "__import__"}
                and child.args
                and isinstance(child.args[0], ast.Constant)
                and isinstance(child.args[0].value, str)
            ):
                yield Import(module, child.args[0].value, child.lineno, in_function)
            yield from visit(child, nested)

    yield from visit(tree, False)


def _names(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def dev_tooling_imports(paths: Iterable[Path]) -> list[str]:
    """Imports of pitcrew_dev in `paths`, except lazy ones where they are allowed."""
    found = []
    for path in python_files(paths):
        for imp in imports(path):
            if not _names(imp.target, "pitcrew_dev"):
                continue
            if imp.in_function and imp.module in LAZY_DEV_IMPORTS_ALLOWED:
                continue
            where = "in a function" if imp.in_function else "at module level"
            found.append(f"{path.relative_to(ROOT)}:{imp.line}: {imp.target} ({where})")
    return found


def functions_imports(paths: Iterable[Path]) -> list[str]:
    """Imports of azure.functions (anywhere in a file, lazy or not)."""
    return [
        f"{path.relative_to(ROOT)}:{imp.line}: {imp.target}"
        for path in python_files(paths)
        for imp in imports(path)
        if _names(imp.target, "azure.functions")
    ]


# Imports inside functions are allowed only where they keep the Azure SDKs (and the other heavy
# clients) out of start-up: the triggers in functions/, which load pitcrew on their first call,
# and the adapters over the SDKs (runtime builds the SDK clients; auth loads PyJWT only for a
# token). The command line (pitcrew.cli) loads what a command needs when it runs.
LAZY_PLACES = ("pitcrew.azure", "pitcrew.runtime", "pitcrew.auth")
# requests and urllib3: the transport azure-core sends through (pitcrew.runtime sizes its pool).
LAZY_TARGETS = ("azure", "httpx", "jwt", "requests", "urllib3", "pitcrew.endpoint_credential")


def lazy_imports(paths: Iterable[Path]) -> list[str]:
    """Imports inside functions other than: pitcrew by a trigger in functions/, an SDK (or
    another heavy client) by an adapter in LAZY_PLACES; pitcrew.cli is not judged here."""
    found = []
    for path in python_files(paths):
        for imp in imports(path):
            if not imp.in_function or _names(imp.module, "pitcrew.cli"):
                continue
            if _names(imp.module, "functions"):
                allowed = _names(imp.target, "pitcrew")
            else:
                allowed = any(_names(imp.module, p) for p in LAZY_PLACES) and any(
                    _names(imp.target, t) for t in LAZY_TARGETS)
            if not allowed:
                found.append(f"{path.relative_to(ROOT)}:{imp.line}: {imp.target}")
    return found


def import_cycles(paths: Iterable[Path], *, lazy: bool = False) -> list[list[str]]:
    """The import circles among the modules under `paths`: module-level imports only (those
    under `if TYPE_CHECKING:` count: they are structure too), imports inside functions as well
    with `lazy`; each circle as its sorted module names, the circles sorted. [] for none."""
    files = list(python_files(paths))
    known = {module_name(p) for p in files}
    graph: dict[str, set[str]] = {name: set() for name in known}
    for path in files:
        for imp in imports(path):
            if imp.in_function and not lazy:
                continue
            # `from package import module` names the module; `from module import name` the module.
            target = imp.target
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target and target != imp.module:
                graph[imp.module].add(target)
    return _strongly_connected(graph)


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative; the components with more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            advanced = False
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    advanced = True
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            if advanced:
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    cycles.append(sorted(component))
    return sorted(cycles)


# ---------------------------------------------------------------------------------------- tests


def test_the_product_never_imports_the_development_tooling() -> None:
    assert dev_tooling_imports(PRODUCT) == []


def test_the_engine_never_imports_azure_functions() -> None:
    assert functions_imports([ROOT / "pitcrew"]) == []


def test_no_import_circles() -> None:
    assert import_cycles([ROOT / "pitcrew", ROOT / "pitcrew_dev"]) == []


def test_the_engine_has_no_circles_even_lazily() -> None:
    # No import inside a function dodges a circle: pitcrew.bootstrap wires, areas never
    # import each other back.
    assert import_cycles([ROOT / "pitcrew", ROOT / "functions"], lazy=True) == []


def test_only_the_adapters_use_the_azure_sdks() -> None:
    # The engine depends on ports; pitcrew/azure implements them (runtime builds the clients,
    # endpoint_credential is the local endpoint's credential, the CLI signs in operators).
    adapters = ("pitcrew.azure", "pitcrew.runtime", "pitcrew.endpoint_credential", "pitcrew.cli")
    found = [
        f"{path.relative_to(ROOT)}:{imp.line}: {imp.target}"
        for path in python_files([ROOT / "pitcrew"])
        for imp in imports(path)
        if _names(imp.target, "azure") and not any(_names(imp.module, a) for a in adapters)
    ]
    assert found == []


def test_lazy_imports_only_where_they_buy_cold_start() -> None:
    assert lazy_imports([ROOT / "pitcrew", ROOT / "functions"]) == []


def test_the_cli_and_the_development_tooling_have_no_circles_even_lazily() -> None:
    # Area commands import pitcrew.cli.client, never pitcrew.cli.main; the console prints the
    # host, the host never calls the console (serve() does).
    assert import_cycles([ROOT / "pitcrew" / "cli", ROOT / "pitcrew_dev"], lazy=True) == []


def test_the_development_tooling_is_never_deployed() -> None:
    ignored = (ROOT / ".funcignore").read_text().split()
    assert "pitcrew_dev/" in ignored
    # The operator CLI (typer, rich: dev requirements only) is not deployed either; nothing
    # else of the product package may be left out.
    assert [line for line in ignored if line.startswith("pitcrew/")] == ["pitcrew/cli/"]


def test_the_deployed_app_never_imports_the_cli() -> None:
    import ast

    offenders = []
    for path in [*(ROOT / "pitcrew").rglob("*.py"), *(ROOT / "functions").rglob("*.py"),
                 ROOT / "function_app.py"]:
        if (ROOT / "pitcrew" / "cli") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = (
                [a.name for a in node.names] if isinstance(node, ast.Import)
                else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            )
            if any(n == "pitcrew.cli" or n.startswith("pitcrew.cli.") for n in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert offenders == []


def test_the_dev_install_holds_both_packages_and_the_entry_point() -> None:
    import importlib
    import tomllib

    from setuptools import find_packages

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    include = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = set(find_packages(str(ROOT), include=include))
    assert {"pitcrew", "pitcrew.cli", "pitcrew_dev", "pitcrew_dev.azure_endpoint"} <= packages
    assert not {p for p in packages if p.startswith(("tests", "functions", "bench"))}
    module, _, function = project["project"]["scripts"]["pitcrew"].partition(":")
    assert callable(getattr(importlib.import_module(module), function))


# The checks themselves, on small trees they must judge right.


def _tree(tmp: Path, files: dict[str, str]) -> list[Path]:
    for name, text in files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return sorted({tmp / name.split("/")[0] for name in files})


def test_the_checks_find_what_they_look_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(f"{__name__}.ROOT", tmp_path)
    paths = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\ndef g():\n    from pkg import c\n",
        "pkg/b.py": "import typing\nif typing.TYPE_CHECKING:\n    from pkg.a import X\n",
        "pkg/c.py": "def f():\n    from pkg import a\n",
        "pkg/d.py": "from . import e\nimport azure.functions as func\n",
        "pkg/e.py": "from .d import thing\n",
        "pkg/cli/__init__.py": "",
        "pkg/cli/dev.py": "import pitcrew_dev.host\ndef f():\n    from pitcrew_dev import send\n",
        "pkg/lazy.py": "import importlib\ndef f():\n    importlib.import_module('pitcrew_dev.x')\n",
    })
    assert import_cycles(paths) == [["pkg.a", "pkg.b"], ["pkg.d", "pkg.e"]]
    assert import_cycles(paths, lazy=True) == [["pkg.a", "pkg.b", "pkg.c"], ["pkg.d", "pkg.e"]]
    assert functions_imports(paths) == ["pkg/d.py:2: azure.functions"]
    monkeypatch.setattr(f"{__name__}.LAZY_DEV_IMPORTS_ALLOWED", {"pkg.cli.dev"})
    assert dev_tooling_imports(paths) == [
        "pkg/cli/dev.py:1: pitcrew_dev.host (at module level)",
        "pkg/lazy.py:3: pitcrew_dev.x (in a function)",
    ]
