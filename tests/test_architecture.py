"""The package's shape, from its imports: no cycles, and each layer imports only lower ones.

Every import counts, at module level, inside functions and under ``TYPE_CHECKING`` alike: a
cycle hidden from the interpreter is still a cycle in the design.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rtproxy"

#: Lowest first. A module may import from its own layer and lower ones, never from a higher one.
LAYERS: tuple[frozenset[str], ...] = (
    # pure values every layer may use: errors, budget periods
    frozenset({"errors", "periods"}),
    frozenset({"config"}),
    frozenset({"auth"}),
    frozenset({"spend"}),
    frozenset({"state"}),
    # the spend ledger: the database the spend log is shipped to, and its queries
    frozenset({"ledger"}),
    frozenset({"protocols"}),
    # provider modules (URLs, credentials, wire protocol) and the sans-IO translators between protocols
    frozenset({"providers", "translate"}),
    frozenset({"relay"}),
    frozenset({"offline"}),
    frozenset({"server"}),
    # entry points: the package's public surface, hypercorn's app path and its settings,
    # python -m rtproxy
    frozenset({"__init__", "app", "__main__", "hypercorn_conf"}),
)
#: The relay knows a protocol only through the seam: nothing protocol-specific below it.
RELAY_MAY_USE_FROM_PROTOCOLS = frozenset({"rtproxy.protocols.seam"})


def _modules(package: Path) -> dict[str, Path]:
    mods = {}
    for path in package.rglob("*.py"):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if is_pkg else name.split(".")[:-1]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - (node.level - 1)]
                target = ".".join(base + (node.module.split(".") if node.module else []))
            else:
                target = node.module or ""
            candidates = [target] + [f"{target}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            candidates = [a.name for a in node.names]
        else:
            continue
        for c in candidates:
            # the most specific known module; a package's own __init__ from inside it is not an edge
            while c and c not in known:
                c = c.rpartition(".")[0]
            if c and c != name and not name.startswith(c + "."):
                found.add(c)
    return found


def _graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    mods = _modules(package)
    known = set(mods)
    return {m: _imports(m, p, known) for m, p in mods.items()}


def _unit(module: str) -> str:
    """The architectural unit of a module: its subpackage, or its own name at the top."""
    parts = module.split(".")
    if module == "rtproxy":
        return "__init__"
    return parts[1]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _layer(unit: str) -> int:
    for i, names in enumerate(LAYERS):
        if unit in names:
            return i
    raise AssertionError(f"rtproxy/{unit} is in no layer: add it to LAYERS in {__file__}")


def test_no_import_cycles_between_modules() -> None:
    assert _cycles(_graph()) == []


def test_no_import_cycles_between_subpackages() -> None:
    units: dict[str, set[str]] = {}
    for m, deps in _graph().items():
        units.setdefault(_unit(m), set()).update(_unit(d) for d in deps if _unit(d) != _unit(m))
    assert _cycles(units) == []


def test_every_import_goes_to_the_same_or_a_lower_layer() -> None:
    upward = sorted(
        f"{m} imports {d}"
        for m, deps in _graph().items()
        for d in deps
        if _layer(_unit(d)) > _layer(_unit(m))
    )
    assert upward == []


def test_relay_knows_protocols_only_through_the_seam() -> None:
    leaks = sorted(
        f"{m} imports {d}"
        for m, deps in _graph().items() if m.startswith("rtproxy.relay")
        for d in deps if d.startswith("rtproxy.protocols") and d not in RELAY_MAY_USE_FROM_PROTOCOLS
    )
    assert leaks == []


def test_the_tree_shows_the_architecture() -> None:
    """Subpackages carry the code; only the foundations (config, errors, budget periods) and entry
    points sit at the top."""
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert top == ["__init__", "__main__", "app", "config", "errors", "hypercorn_conf", "periods"]
    for unit in ("auth", "spend", "state", "ledger", "protocols", "relay", "server", "offline"):
        assert (PACKAGE / unit / "__init__.py").is_file(), unit


def test_the_checks_report_an_upward_import_and_a_hidden_cycle(tmp_path: Path) -> None:
    """The checks themselves, on a small tree with one upward import (inside a function) and a
    cycle hidden under TYPE_CHECKING."""
    pkg = tmp_path / "rtproxy"
    for sub in ("relay", "server"):
        (pkg / sub).mkdir(parents=True)
        (pkg / sub / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "relay" / "session.py").write_text("def f():\n    from ..server.gateway import Gateway\n")
    (pkg / "server" / "gateway.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..relay import session\n")
    graph = _graph(pkg)
    assert graph["rtproxy.relay.session"] == {"rtproxy.server.gateway"}
    assert _cycles(graph) == [["rtproxy.relay.session", "rtproxy.server.gateway"]]
    assert _layer(_unit("rtproxy.server.gateway")) > _layer(_unit("rtproxy.relay.session"))
