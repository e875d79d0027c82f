"""The package's structure rules, read from its source (docs/architecture.md explains them).

- Only ``_context`` (their owner) and the measured hot paths (``asgi``, ``wsgi``, ``logging``)
  import the run frame's names; every other module reads the run with ``current_run_id()`` or
  a named helper of ``_context``.
- A leading underscore means "this module only": no module imports another's underscore name,
  or reads one as an attribute of a module it imported.
- Each name is importable from one place: a private module's ``__all__`` lists only what it
  defines, never what it imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import agent_run_id._context as context_module

PACKAGE = Path(context_module.__file__).parent
# The frame and what builds or holds it.
FRAME_NAMES = frozenset(
    {
        "current",
        "Frame",
        "new_frame",
        "RUN",
        "OWNER",
        "PREVIOUS",
        "FINISHERS",
        "TOKEN",
        "LOG_FIELDS",
    }
)
FRAME_USERS = frozenset({"agent_run_id._context", "agent_run_id.asgi", "agent_run_id.wsgi"}) | {
    "agent_run_id.logging",
    "agent_run_id._wsgi_body",  # wsgi's response body, split off it: the same hot path
    "agent_run_id.testing",  # resets the current run: no frame read, only the variable set
}


def _parse() -> dict[str, ast.Module]:
    trees = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        trees[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return trees


MODULES = _parse()


def modules() -> Iterator[tuple[str, ast.Module]]:
    yield from MODULES.items()


def resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute name of the module an ``import from`` statement of ``module`` names."""
    if node.level == 0:
        return node.module or ""
    package = module.split(".")
    is_package = (PACKAGE.parent / Path(*package) / "__init__.py").exists()
    base = package if is_package else package[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, node.module] if node.module else base)


def imports(tree: ast.Module, module: str) -> Iterator[tuple[str, str, int]]:
    """Each ``(module imported from, name, line)`` of the package's own imports."""
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = resolve(module, node)
            if source.startswith("agent_run_id"):
                for alias in node.names:
                    yield source, alias.name, node.lineno


def test_only_the_owner_and_the_hot_paths_import_the_frame() -> None:
    found = [
        f"{module}:{line} imports {name} from {source}"
        for module, tree in modules()
        if module not in FRAME_USERS
        for source, name, line in imports(tree, module)
        if source == "agent_run_id._context" and name in FRAME_NAMES
    ]
    assert found == [], "use current_run_id() or a named helper of _context"


def test_no_module_imports_another_modules_underscore_name() -> None:
    found = []
    for module, tree in modules():
        for source, name, line in imports(tree, module):
            is_module = f"{source}.{name}" in MODULES  # a private module itself: fine
            if name.startswith("_") and not is_module and name != "__version__":
                found.append(f"{module}:{line} imports {name} from {source}")
        modules_imported = {
            alias.asname or alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and resolve(module, node).startswith("agent_run_id")
            for alias in node.names
            if f"{resolve(module, node)}.{alias.name}" in MODULES
        }
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules_imported
                and node.attr.startswith("_")
            ):
                found.append(f"{module}:{node.lineno} reads {node.value.id}.{node.attr}")
    assert found == [], "make the name plain in its home module, or keep it in that module"


def defined_names(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
            names.update(
                e.id
                for t in node.targets
                if isinstance(t, ast.Tuple)
                for e in t.elts
                if isinstance(e, ast.Name)
            )
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names.add(node.target.id)
        elif isinstance(node, ast.If | ast.Try):  # optional imports and TYPE_CHECKING blocks
            for inner in ast.walk(node):
                if isinstance(inner, ast.FunctionDef | ast.ClassDef):
                    names.add(inner.name)
                elif isinstance(inner, ast.Assign):
                    names.update(t.id for t in inner.targets if isinstance(t, ast.Name))
    return names


def declared_all(tree: ast.Module) -> list[str]:
    for node in tree.body:
        if (
            isinstance(node, ast.Assign)
            and any(isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets)
            and isinstance(node.value, ast.List | ast.Tuple)
        ):
            return [e.value for e in node.value.elts if isinstance(e, ast.Constant)]
    return []


@pytest.mark.parametrize("module", [m for m, _ in modules() if m.split(".")[-1].startswith("_")])
def test_a_private_modules_all_lists_only_what_it_defines(module: str) -> None:
    tree = MODULES[module]
    foreign = sorted(set(declared_all(tree)) - defined_names(tree))
    assert foreign == [], f"{module} re-exports {foreign}: import them from their home"


def test_the_package_has_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for module, tree in modules():
        edges = graph.setdefault(module, set())
        for node in tree.body:  # module level only: imports inside functions run later
            if isinstance(node, ast.ImportFrom):
                source = resolve(module, node)
                if source.startswith("agent_run_id") and source != module:
                    for alias in node.names:
                        child = f"{source}.{alias.name}"
                        edges.add(child if child in MODULES else source)

    def visit(module: str, path: list[str]) -> list[str] | None:
        if module in path:
            return [*path[path.index(module) :], module]
        for child in sorted(graph.get(module, ())):
            if child == module or (child == "agent_run_id" and module.startswith("agent_run_id.")):
                continue
            cycle = visit(child, [*path, module])
            if cycle:
                return cycle
        return None

    cycles = [cycle for module in graph if (cycle := visit(module, []))]
    assert cycles == []
