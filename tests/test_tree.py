"""The tree keeps its architecture (docs/architecture.md): every dependency pinned, the chat free
of any server, no import cycle between the site's modules, and browser modules of a readable
size."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("accounts", "chatsite", "rooms")
SERVERS = ("daphne", "twisted", "autobahn", "txaio", "chatsite")


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path) -> set[str]:
    """The modules `name` imports, at any depth of its code (relative imports resolved)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, base] if base else parent)
            out.add(base)
            out.update(f"{base}.{alias.name}" for alias in node.names)
    return out


def test_every_requirement_is_pinned() -> None:
    for name in ("requirements.txt", "requirements-dev.txt"):
        for line in (ROOT / name).read_text().splitlines():
            line = line.split("#")[0].strip()
            if line and not line.startswith("-r"):
                assert re.fullmatch(r"[A-Za-z0-9_.\-\[\]]+==[\w.]+", line), f"{name}: {line}"


def test_the_chat_imports_no_server() -> None:
    for name, path in _modules().items():
        if not name.startswith("rooms"):
            continue
        servers = sorted(i for i in _imports(name, path) if i.split(".")[0] in SERVERS)
        assert servers == [], f"{name} imports {servers}"


def test_no_module_of_the_site_imports_itself_through_others() -> None:
    modules = _modules()
    graph = {
        name: {i for i in _imports(name, path) if i in modules and i != name}
        for name, path in modules.items()
    }
    cycles = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                cycles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    assert cycles == []


def test_no_module_of_the_browser_client_passes_500_lines() -> None:
    sizes = {p.name: len(p.read_text().splitlines()) for p in (ROOT / "static/js").glob("*.js")}
    assert {name: n for name, n in sizes.items() if n > 500} == {}
