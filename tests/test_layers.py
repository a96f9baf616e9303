"""The import layering of the code, read from its source: what may import what.

    web/      the HTTP and WebSocket edge; imported only by the composition root
    tracker/  the service: ingest, live, storage, devcity; tracker/app/ composes it all
    alerts/   alarm, patrol and incident rules
    geofence/ grids, H3 index, patrol coverage
    protocols/ the shared vocabulary and the device protocols: imports nothing of ours

The rules are the architecture: a failure names each import that breaks one.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("protocols", "geofence", "alerts", "tracker", "web")
COMPOSITION_ROOT = "tracker.app"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports() -> dict[str, set[str]]:
    """Every project module and the project modules it imports (anywhere in its body,
    function-level and TYPE_CHECKING imports included)."""
    graph: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = _module_name(path)
            is_package = path.name == "__init__.py"
            found: set[str] = set()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
                if isinstance(node, ast.Import):
                    found.update(alias.name for alias in node.names)
                elif isinstance(node, ast.ImportFrom):
                    if node.level:
                        base = name.split(".") if is_package else name.split(".")[:-1]
                        base = base[: len(base) - (node.level - 1)]
                        target = ".".join(base + ([node.module] if node.module else []))
                    else:
                        target = node.module or ""
                    found.add(target)
                    found.update(f"{target}.{alias.name}" for alias in node.names)
            graph[name] = {t for t in found if t.split(".")[0] in PACKAGES}
    return graph


GRAPH = _imports()


def _top(module: str) -> str:
    return module.split(".")[0]


def _unit(module: str) -> str:
    """The unit the no-cycle rule is about: a top-level package, or a sub-package of tracker/."""
    if module == "tracker.__main__":
        return COMPOSITION_ROOT  # ``python -m tracker`` is the CLI's entry point
    parts = module.split(".")
    if parts[0] == "tracker" and len(parts) > 1 and (REPO / "tracker" / parts[1]).is_dir():
        return ".".join(parts[:2])
    return parts[0]


def _edges(source_pred, target_pred) -> list[str]:
    return sorted(f"{src} imports {dst}" for src, targets in GRAPH.items() if source_pred(src)
                  for dst in targets if target_pred(dst))


def test_the_graph_was_read():
    assert "protocols.model" in GRAPH and "tracker.ingest.pipeline" in GRAPH
    assert "protocols.model" in GRAPH["tracker.ingest.pipeline"]


def test_protocols_import_nothing_of_the_project_outside_protocols():
    assert _edges(lambda m: _top(m) == "protocols", lambda d: _top(d) != "protocols") == []


def test_geofence_and_alerts_import_only_protocols_and_each_others_public_modules():
    def bad(dst: str) -> bool:
        top = _top(dst)
        if top in ("protocols",):
            return False
        if top in ("geofence", "alerts"):
            return any(part.startswith("_") for part in dst.split(".")[1:])
        return True

    def own_private_ok(src: str, dst: str) -> bool:
        return _top(src) == _top(dst)

    offenders = [e for e in _edges(lambda m: _top(m) in ("geofence", "alerts"), bad)
                 if not own_private_ok(*e.split(" imports "))]
    assert offenders == []


def test_only_the_composition_root_imports_web():
    outside_root = _edges(lambda m: not m.startswith(COMPOSITION_ROOT) and _top(m) != "web",
                          lambda d: _top(d) == "web")
    assert outside_root == []


def test_web_imports_nothing_of_the_service():
    assert _edges(lambda m: _top(m) == "web", lambda d: _top(d) == "tracker") == []


def test_no_import_cycles_between_packages():
    units: dict[str, set[str]] = defaultdict(set)
    for src, targets in GRAPH.items():
        for dst in targets:
            if _unit(src) != _unit(dst):
                units[_unit(src)].add(_unit(dst))
    cycles = []

    def visit(node: str, path: list[str]) -> None:
        for nxt in sorted(units.get(node, ())):
            if nxt in path:
                cycles.append(" -> ".join([*path[path.index(nxt):], nxt]))
            elif len(path) < 12:
                visit(nxt, [*path, nxt])

    for start in sorted(units):
        visit(start, [start])
    assert sorted(set(cycles)) == []
