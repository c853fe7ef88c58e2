"""The code's layout rules, checked on the source itself: no import cycle inside the package, and no module
(tests and benchmarks included) reaching for another module's private (``_underscored``) names."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "fewpick"


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT / "src").with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_only(node: ast.AST, parents: dict) -> bool:
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return True
    return False


def imports_of(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names, line) of every import in ``path``, at the top or inside functions (``TYPE_CHECKING``
    blocks left out: they do not run)."""
    tree = ast.parse(path.read_text())
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    here = module_name(path) if path.is_relative_to(PACKAGE) else ""
    out = []
    for node in ast.walk(tree):
        if _type_checking_only(node, parents):
            continue
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # relative: resolve against this module's package
                base = here.split(".")[: len(here.split(".")) - node.level + (path.name == "__init__.py")]
                module = ".".join([*base, module] if module else base)
            out.append((module, [a.name for a in node.names], node.lineno))
    return out


def package_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for name, path in modules.items():
        for module, names, _ in imports_of(path):
            if not module.startswith("fewpick"):
                continue
            targets = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules] or [module]
            graph[name].update(t for t in targets if t in modules and t != name)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_inside_the_package():
    assert find_cycle(package_graph()) is None, " -> ".join(find_cycle(package_graph()) or [])


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def _sources() -> list[Path]:
    return sorted(p for d in ("src", "tests", "bench", "scripts") for p in (ROOT / d).rglob("*.py"))


def private_uses(path: Path) -> list[str]:
    """Private names of fewpick modules that ``path`` imports or reaches as ``module._name``."""
    found = []
    aliases: dict[str, str] = {}
    for module, names, line in imports_of(path):
        if not module.startswith("fewpick"):
            continue
        if any(part.startswith("_") and not part.startswith("__") for part in module.split(".")):
            found.append(f"{path.relative_to(ROOT)}:{line}: imports private module {module}")
        for n in names:
            if n.startswith("_") and not n.startswith("__"):
                found.append(f"{path.relative_to(ROOT)}:{line}: imports {module}.{n}")
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("fewpick"):
            aliases.update({a.asname or a.name: f"{node.module}.{a.name}" for a in node.names})
        elif isinstance(node, ast.Import):
            aliases.update({a.asname or a.name: a.name for a in node.names if a.name.startswith("fewpick")})
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(f"{path.relative_to(ROOT)}:{node.lineno}: uses {aliases[node.value.id]}.{node.attr}")
    return found


@pytest.mark.parametrize("path", _sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_private_name_is_used_across_modules(path):
    assert private_uses(path) == []


def test_the_private_name_check_finds_one(tmp_path):
    probe = ROOT / "tests" / "_probe_private_use.py"
    probe.write_text("from fewpick.pickers import base as b\nfrom fewpick.io.picks import _x\nb._hidden()\n")
    try:
        found = private_uses(probe)
    finally:
        probe.unlink()
    assert len(found) == 2 and "_x" in found[0] and "_hidden" in found[1]
