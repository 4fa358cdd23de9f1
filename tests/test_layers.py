"""Dependencies point inward (REDESIGN.md §4, Steps 2 and 5; issue 17).

The cloud (cloud_api/) knows nothing of the portal (web), the edge (edge_agent), the
benchmarks (bench) or the device protocols (firmware_bridges): the composition root
`erp/` is the one place that imports them side by side. The wire contract (contract/)
is shared by the edge and the cloud, so it imports neither of them, nor the database.
Import-linter style: every module is parsed with `ast`, so an import inside a function
(the kind that hid the old arrows) counts as much as one at the top.
"""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

FORBIDDEN = {
    "cloud_api": {"web", "edge_agent", "bench", "firmware_bridges", "erp"},
    "contract": {
        "cloud_api",
        "edge_agent",
        "web",
        "bench",
        "firmware_bridges",
        "erp",
        "sqlalchemy",
        "sqlmodel",
    },
}


def imported_modules(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in the tree; relative imports stay
    inside their own package and are skipped."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module


def forbidden_imports(package: str, forbidden: set[str]) -> list[str]:
    found = []
    for path in sorted((ROOT / package).rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, module in imported_modules(tree):
            if module.split(".")[0] in forbidden:
                found.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_imports_nothing_outside_its_layer(package: str) -> None:
    assert list((ROOT / package).rglob("*.py")), f"{package}/ has no modules: wrong root?"
    assert forbidden_imports(package, FORBIDDEN[package]) == []


def test_the_check_sees_imports_inside_functions() -> None:
    """The walker must catch a lazy import, the way `create_app` once mounted web/."""
    tree = ast.parse("def create_app():\n    from web.app import mount\n    import bench.ingest\n")
    assert list(imported_modules(tree)) == [(2, "web.app"), (3, "bench.ingest")]


def test_the_edge_uses_the_contract_not_the_cloud() -> None:
    """The edge shares the wire contract and nothing else of the cloud's."""
    assert forbidden_imports("edge_agent", {"cloud_api", "web", "erp"}) == []
    edge_envelope = ast.parse((ROOT / "edge_agent/outbox/envelope.py").read_text())
    assert "contract" in {module for _, module in imported_modules(edge_envelope)}
