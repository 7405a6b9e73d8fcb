"""Imports flow one way through `medcap/`, with no circle.

The graph counts every `import` and `from ... import` statement of every
module, those inside functions included: a lazy import still ties the two
modules together, since each needs the other to work. A module named by a
string (`importlib.import_module`) is no edge: that is how the registries
and the CLI load their entries without importing upward.

Layers, top to bottom: the command modules (`cli`), the trainer
(`training`, `distributed`), the tasks (`*_task`, `task`, `features`), the models
(`models/`, `decoding`), the layers (`layers/`), and below them everything
else (`data`, `text`, `evaluation`, `config`, `registry`, `errors`, ...).
A module may import its own layer or any layer below it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from medcap.registry import DATASET_MODULES, TASK_MODULES

PACKAGE = Path(__file__).resolve().parents[1] / "medcap"

#: Command modules: `medcap.cli` assembles them by name.
CLI_MODULES = ("medcap.cli", "medcap.data.cli", "medcap.evaluation.cli")
#: Upward imports that exist today, each with the work that removes it. The
#: test fails when one disappears without leaving this list, so it only shrinks.
KNOWN_UPWARD: set[tuple[str, str]] = set()


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under `package`."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (any depth)."""
    modules = module_files(package)
    root = package.name

    def known(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        targets: set[str | None] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            if isinstance(node, ast.Import):
                targets.update(known(alias.name) for alias in node.names if alias.name.split(".")[0] == root)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = name.split(".") if is_package else name.split(".")[:-1]
                    base = base[: len(base) - (node.level - 1)]
                    source = ".".join(base + ([node.module] if node.module else []))
                else:
                    source = node.module or ""
                if source.split(".")[0] != root:
                    continue
                for alias in node.names:
                    # `from pkg.data import images` imports the module pkg.data.images.
                    submodule = f"{source}.{alias.name}"
                    targets.add(submodule if submodule in modules else known(source))
        targets.discard(None)
        targets.discard(name)
        graph[name] = {t for t in targets if t is not None}
    return graph


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module, each sorted (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
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

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(cycles)


def layer(module: str) -> int:
    """0 = top (commands) .. 5 = bottom (see the module docstring)."""
    if module in CLI_MODULES:
        return 0
    if module in ("medcap.training", "medcap.distributed"):
        return 1
    if module in ("medcap.task", "medcap.features") or module.endswith("_task"):
        return 2
    if module.startswith("medcap.models.") or module == "medcap.decoding":
        return 3
    if module.startswith("medcap.layers."):
        return 4
    return 5


def upward_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {(m, t) for m, targets in graph.items() for t in targets if layer(t) < layer(m)}


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / "pkg"


def test_graph_counts_imports_inside_functions_and_relative_imports(tmp_path):
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/sub/__init__.py": "",
            "pkg/a.py": "import os\n\ndef f():\n    from pkg.sub import b\n",
            "pkg/sub/b.py": "from .. import a\nfrom pkg.sub.c import thing\n",
            "pkg/sub/c.py": "import importlib\nthing = importlib.import_module('pkg.a')\n",
        },
    )
    graph = import_graph(package)
    assert graph["pkg.a"] == {"pkg.sub.b"}
    assert graph["pkg.sub.b"] == {"pkg.a", "pkg.sub.c"}
    assert graph["pkg.sub.c"] == set()  # a module named by a string is no edge
    assert import_cycles(graph) == [["pkg.a", "pkg.sub.b"]]


def test_graph_finds_a_circle_through_a_package_import(tmp_path):
    package = _write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/data/__init__.py": "",
            "pkg/data/io.py": "from pkg.data import images\n",
            "pkg/data/images.py": "from pkg.data.io import read\n",
            "pkg/data/base.py": "from pkg.data.io import read\n",
        },
    )
    assert import_cycles(import_graph(package)) == [["pkg.data.images", "pkg.data.io"]]


def test_medcap_has_no_import_circle():
    cycles = import_cycles(import_graph(PACKAGE))
    assert cycles == [], "import circles in medcap/:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def test_imports_flow_one_way_through_the_layers():
    upward = upward_imports(import_graph(PACKAGE))
    new = sorted(upward - KNOWN_UPWARD)
    assert not new, "imports from a lower layer to a higher one:\n" + "\n".join(f"{a} -> {b}" for a, b in new)
    gone = sorted(KNOWN_UPWARD - upward)
    assert not gone, f"no longer imported upward, remove from KNOWN_UPWARD: {gone}"


#: A module longer than this says in its docstring why it is one idea.
LONG_MODULE_LINES = 600


def test_long_modules_say_why_they_are_one_idea():
    unexplained = []
    for name, path in module_files(PACKAGE).items():
        text = path.read_text(encoding="utf-8")
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if text.count("\n") > LONG_MODULE_LINES and "one idea" not in docstring.lower():
            unexplained.append(f"{name} ({text.count(chr(10))} lines)")
    assert not unexplained, "split these modules or say in their docstring why each is one idea: " + ", ".join(unexplained)


@pytest.mark.parametrize(
    ("registry", "modules"), [("DATASETS", DATASET_MODULES), ("TASKS", TASK_MODULES)]
)
def test_every_module_that_registers_is_in_its_registry_table(registry, modules):
    pattern = re.compile(rf"\b{registry}\.register\(")
    registering = {
        name
        for name, path in module_files(PACKAGE).items()
        if name != "medcap.registry" and pattern.search(path.read_text(encoding="utf-8"))
    }
    assert registering == set(modules)
