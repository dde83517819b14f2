"""Every code snippet in the documentation runs as written (docs/testing.md, "The documentation's
snippets").

The fenced blocks of ``README.md`` and ``docs/*.md`` are collected by their info string:

- ``python``: run with this venv's Python, ``sh``/``bash``/``shell``: with ``bash -euo
  pipefail``; each against a live gateway on the shipped ``config.toml`` (the offline model, free
  ports), from a scratch directory laid out as the repository is after ``make run``
  (``config.toml``, ``.rtproxy/local-admin.key``, ``logs/spend.jsonl``, ``.venv``), with
  ``RTPROXY_URL``, ``RTPROXY_WS`` and ``RTPROXY_KEY`` set; each must exit 0;
- ``toml``: parsed by the config parser (every ``env:NAME`` set), so every example is valid;
- ``js``/``javascript``: browser code, syntax-checked with ``node --check`` when node is here.

A block that cannot run here is marked by ``<!-- not run: <why> -->`` on the line before its
fence (blank lines between are allowed); a marked block is still syntax-checked where a checker
exists (Python's compiler, ``bash -n``, ``node --check``). Relative links between the documents,
and their ``#anchors``, must resolve.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

import attrs
import pytest
import trio

from rtproxy.config import load_config, parse_config

from .conftest import RunningServer, start_server
from .helpers import auth_headers, text_turn, ws_connect

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON = Path(sys.executable)
#: One snippet's run must end within this.
SNIPPET_TIMEOUT_S = 20.0

RUNNERS = {"python": "python", "py": "python", "sh": "sh", "bash": "sh", "shell": "sh",
           "toml": "toml", "js": "js", "javascript": "js", "mjs": "js"}
_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<why>\S.*?)\s*-->$")


@attrs.frozen
class Snippet:
    file: Path
    line: int  # of the opening fence, 1-based
    kind: str  # python, sh, toml, js
    code: str
    #: Why it is not run (the marker's text), or None: it runs.
    not_run: str | None

    @property
    def id(self) -> str:
        return f"{self.file.relative_to(ROOT)}:{self.line}:{self.kind}"


def snippets(path: Path) -> list[Snippet]:
    """The fenced blocks of one Markdown file whose info string names a language we run or check."""
    lines = path.read_text("utf-8").splitlines()
    found: list[Snippet] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, info = m["fence"], m["info"].strip().split(" ")[0].lower()
        body, j = [], i + 1
        while j < len(lines) and not re.match(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$", lines[j]):
            body.append(lines[j])
            j += 1
        kind = RUNNERS.get(info)
        if kind is not None:
            k = i - 1
            while k >= 0 and not lines[k].strip():
                k -= 1
            marker = _NOT_RUN.match(lines[k].strip()) if k >= 0 else None
            found.append(Snippet(path, i + 1, kind, "\n".join(body) + "\n", marker["why"] if marker else None))
        i = j + 1
    return found


ALL = [s for doc in DOCS for s in snippets(doc)]
RUNNABLE = [s for s in ALL if s.kind in ("python", "sh") and s.not_run is None]


def test_the_docs_have_runnable_snippets() -> None:
    """The collector finds what the README's tour runs (a broken fence parser would pass vacuously)."""
    readme = [s for s in RUNNABLE if s.file.name == "README.md"]
    assert {s.kind for s in readme} == {"python", "sh"}, [s.id for s in readme]


# -- a scratch copy of the repository after `make run`, and a gateway serving it ------------------

def site(tmp: Path) -> Path:
    """``config.toml`` (the shipped one on free ports, speech off for speed), ``.venv``."""
    data = tomllib.loads((ROOT / "config.toml").read_text("utf-8"))
    data["server"].update(port=0, realtime_port=0, close_timeout_s=1.0, shutdown_grace_s=3.0)
    data.setdefault("local", {}).update(port=0, stream_delay_ms=1.0, speech="off", live_usage_interval_ms=200.0)
    (tmp / "config.toml").write_text(_toml(data), "utf-8")
    (tmp / ".venv").symlink_to(PYTHON.parent.parent, target_is_directory=True)
    return tmp


def _toml(data: dict[str, Any]) -> str:
    """A small TOML writer for the shipped config's shapes (tables, arrays of tables, scalars)."""
    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(type(v))

    out: list[str] = []
    for name, section in data.items():
        for table in section if isinstance(section, list) else [section]:
            out.append(f"[[{name}]]" if isinstance(section, list) else f"[{name}]")
            out += [f"{k} = {value(v)}" for k, v in table.items()]
            out.append("")
    return "\n".join(out)


async def serve_site(nursery: trio.Nursery, tmp: Path) -> tuple[RunningServer, dict[str, str]]:
    """The gateway serving :func:`site`, and the environment the snippets read."""
    cfg = load_config(site(tmp) / "config.toml")
    server = await start_server(nursery, cfg)
    key = (tmp / ".rtproxy" / "local-admin.key").read_text().strip()
    env = {"RTPROXY_URL": server.http, "RTPROXY_WS": f"ws://127.0.0.1:{server.realtime_port}/v1",
           "RTPROXY_KEY": key, "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    return server, env


async def run_snippet(snippet: Snippet, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """(exit status, the end of its output); -1 when it did not finish in time."""
    if snippet.kind == "python":
        script = cwd / "snippet.py"
        script.write_text(snippet.code, "utf-8")
        argv = [str(PYTHON), str(script)]
    else:
        argv = ["bash", "-euo", "pipefail", "-c", snippet.code]
    with trio.move_on_after(SNIPPET_TIMEOUT_S) as scope:
        done = await trio.run_process(argv, cwd=cwd, env={**os.environ, **env}, check=False,
                                      capture_stdout=True, capture_stderr=True)
    if scope.cancelled_caught:
        return -1, f"did not finish within {SNIPPET_TIMEOUT_S:g} s"
    return done.returncode, (done.stdout + done.stderr).decode(errors="replace")[-3000:]


@pytest.mark.parametrize("snippet", RUNNABLE, ids=lambda s: s.id)
async def test_a_python_or_shell_snippet_runs_as_written_against_a_live_gateway(
        nursery: trio.Nursery, tmp_path: Path, snippet: Snippet) -> None:
    server, env = await serve_site(nursery, tmp_path)
    if snippet.kind == "sh":  # something in the spend log for the snippets that read it: a text turn
        async with ws_connect(server.ws_url("realtime"), headers=auth_headers(env["RTPROXY_KEY"])) as ws:
            await text_turn(ws, "tell me a joke")
    code, out = await run_snippet(snippet, tmp_path, env)
    assert code == 0, f"{snippet.id} exited {code}:\n{snippet.code}\n--- output ---\n{out}"
    server.stop.set()


# -- blocks that are checked, not run -------------------------------------------------------------

@pytest.mark.parametrize("snippet", [s for s in ALL if s.kind == "toml"], ids=lambda s: s.id)
def test_a_toml_snippet_is_a_valid_config(snippet: Snippet, tmp_path: Path) -> None:
    data = tomllib.loads(snippet.code)
    # a fragment of a table (``gemini_setup = {…}`` alone) is checked as TOML only
    if not set(data) <= {"server", "spend_log", "local", "state", "models", "keys"}:
        return
    names = set(re.findall(r'"env:([A-Za-z_][A-Za-z0-9_]*)"', snippet.code))
    parse_config(data, source=snippet.id, base_dir=tmp_path, environ={n: "x" * 32 for n in names})


@pytest.mark.parametrize("snippet", [s for s in ALL if s.kind != "toml" and s.not_run is not None],
                         ids=lambda s: s.id)
async def test_a_snippet_not_run_still_parses(snippet: Snippet, tmp_path: Path) -> None:
    if snippet.kind == "python":
        compile(snippet.code, snippet.id, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)  # fragments may await
        return
    if snippet.kind == "sh":
        argv = ["bash", "-n", "-c", snippet.code]
    else:
        node = shutil.which("node")
        if node is None:
            pytest.skip("node is not installed")
        module = tmp_path / "snippet.mjs"
        module.write_text(snippet.code, "utf-8")
        argv = [node, "--check", str(module)]
    done = await trio.run_process(argv, check=False, capture_stdout=True, capture_stderr=True)
    assert done.returncode == 0, f"{snippet.id}:\n{snippet.code}\n{done.stderr.decode()}"


def test_every_js_snippet_is_marked_as_browser_code() -> None:
    unmarked = [s.id for s in ALL if s.kind == "js" and s.not_run is None]
    assert not unmarked, f"JavaScript blocks run in a browser: mark them <!-- not run: … -->: {unmarked}"


# -- links ------------------------------------------------------------------------------------------

_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")


def prose(path: Path) -> str:
    """A Markdown file without its fenced blocks (a ``#`` comment in a block is no heading)."""
    return re.sub(r"^```.*?^```", "", path.read_text("utf-8"), flags=re.DOTALL | re.MULTILINE)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for a file's headings: lower case, punctuation dropped, spaces to hyphens."""
    return {re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#{1,6}\s+(.+?)\s*$", prose(path), re.MULTILINE)}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_relative_link_and_anchor_resolves(doc: Path) -> None:
    broken = []
    for m in _LINK.finditer(prose(doc)):
        target = m["target"]
        if re.match(r"^[a-z]+:", target):  # http:, https:, mailto:
            continue
        file, _, anchor = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists() or (anchor and path.suffix == ".md" and anchor not in anchors(path)):
            broken.append(target)
    assert not broken, f"{doc.relative_to(ROOT)}: links that lead nowhere: {broken}"
