"""A Vertex AI model through a running gateway (issue #27): the gateway gets an OAuth token from a
fake token endpoint at start-up, and an OpenAI Realtime client's session is translated to Gemini
Live on a fake Vertex endpoint that accepts only that token and the full Vertex model name; the
turn is priced at Vertex's rates. Credentials that cannot be had stop the start-up with one line."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio

from rtproxy.config import Config
from rtproxy.server.gateway import Gateway
from rtproxy.server.startup import startup_failure

from .conftest import USER_KEY, make_config, start_server
from .fake_google import (
    FakeTokenEndpoint,
    ServiceAccount,
    fake_token_endpoint,
    serve_fake_vertex_live,
    write_service_account,
)
from .helpers import auth_headers, events_until, send_event, user_text, ws_connect

BIN = Path(sys.executable).parent
RESOURCE = "projects/proj/locations/us-central1/publishers/google/models/gemini-live-2.5-flash"
#: gemini-live-2.5-flash on Vertex, USD per 1M text tokens (genai-prices, google-vertex): in, out
TEXT_IN, TEXT_OUT = 0.5, 2.0


@pytest.fixture
def endpoint() -> Iterator[FakeTokenEndpoint]:
    with fake_token_endpoint() as fake:
        yield fake
    assert fake.rejected == []


@pytest.fixture
def account(tmp_path: Path, endpoint: FakeTokenEndpoint) -> ServiceAccount:
    sa = write_service_account(tmp_path / "vertex-sa.json", endpoint.url)
    endpoint.accept(sa)
    return sa


def vertex_config(tmp_path: Path, credentials_file: str, api_base: str = "http://127.0.0.1:9") -> Config:
    return make_config(tmp_path, models=[
        {"name": "gpt-realtime", "provider": "local"},
        {"name": "vertex-live", "provider": "vertex", "upstream_model": "gemini-live-2.5-flash",
         "project": "proj", "location": "us-central1", "credentials_file": credentials_file, "api_base": api_base},
    ], keys=[{"name": "user", "key": USER_KEY}])


async def records(srv: Any) -> list[dict[str, Any]]:
    with trio.fail_after(15):
        while not any(r["record"] == "session" for r in srv.records()):
            await trio.sleep(0.05)
    return srv.records()  # type: ignore[no-any-return]


async def test_an_openai_realtime_session_on_a_vertex_model_is_translated_and_priced(
        nursery: trio.Nursery, tmp_path: Path, endpoint: FakeTokenEndpoint, account: ServiceAccount,
        listener: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    fake = await nursery.start(serve_fake_vertex_live)
    fake.setup_model = RESOURCE
    srv = await start_server(nursery, vertex_config(tmp_path, account.path.name, api_base=fake.url))
    (token,) = endpoint.issued  # fetched at start-up, before the gateway listened
    fake.token = token

    async with ws_connect(srv.ws_url(listener, query="model=vertex-live"), headers=auth_headers(USER_KEY)) as ws:
        created = (await events_until(ws, "session.created"))[-1]
        assert created["session"]["model"] == "vertex-live"
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
        await events_until(ws, "session.updated")
        await send_event(ws, user_text("Say hi"))
        await send_event(ws, {"type": "response.create"})
        events = await events_until(ws, "response.done")
    assert fake.problems == []
    assert fake.connections and all(setup["setup"]["model"] == RESOURCE for _, _, setup in fake.connections)
    texts = "".join(e.get("delta", "") for e in events if e["type"] == "response.output_text.delta")
    assert texts == "hi"
    done = events[-1]["response"]
    assert done["status"] == "completed"
    assert done["usage"]["input_tokens"] == 3 and done["usage"]["output_tokens"] == 2  # candidatesTokenCount
    assert done["usage"]["total_tokens"] == 5

    recs = await records(srv)
    (resp,) = [r for r in recs if r["record"] == "response"]
    (session,) = [r for r in recs if r["record"] == "session"]
    assert resp["provider"] == "vertex" and resp["model"] == "vertex-live" and resp["status"] == "completed"
    assert resp["cost_usd"] == pytest.approx((3 * TEXT_IN + 2 * TEXT_OUT) / 1e6)
    assert session["status"] == "success"
    # the token is in no record and no log line
    spend_log = srv.gateway.spend.path.read_text()
    assert token not in spend_log and "ya29." not in spend_log
    assert not [r for r in caplog.records if token in r.getMessage() or "ya29." in r.getMessage()]
    srv.stop.set()


async def start_failure(config: Config) -> str | None:
    gateway = Gateway(config)
    with pytest.raises(BaseException) as caught:
        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                await nursery.start(gateway.run)
                nursery.cancel_scope.cancel()
    return startup_failure(caught.value)


async def test_a_refused_or_missing_credential_stops_the_start_up_with_one_clear_line(
        tmp_path: Path, endpoint: FakeTokenEndpoint, account: ServiceAccount) -> None:
    endpoint.fail = 400
    line = await start_failure(vertex_config(tmp_path, account.path.name))
    assert line == (f"cannot get a Vertex AI access token for model 'vertex-live' (service account file "
                    f"{account.path}): RefreshError: invalid_grant: Invalid JWT Signature.")

    line = await start_failure(vertex_config(tmp_path, "missing.json"))
    assert line == (f"cannot get a Vertex AI access token for model 'vertex-live' (service account file "
                    f"{tmp_path / 'missing.json'}): {tmp_path / 'missing.json'}: No such file or directory")


def test_rtproxy_serve_with_a_missing_credentials_file_exits_2_with_one_line(tmp_path: Path) -> None:
    cfg = tmp_path / "config.toml"
    cfg.write_text(textwrap.dedent("""
        [server]
        host = "127.0.0.1"
        port = 0
        realtime_port = -1
        [spend_log]
        path = "spend.jsonl"
        [[models]]
        name = "vertex-live"
        provider = "vertex"
        upstream_model = "gemini-live-2.5-flash"
        project = "proj"
        location = "us-central1"
        credentials_file = "secrets/vertex-sa.json"
        [[keys]]
        name = "user"
        key = "env:TEST_USER_KEY"
    """))
    env = {**os.environ, "TEST_USER_KEY": USER_KEY, "RTPROXY_LOG_LEVEL": "WARNING"}
    out = subprocess.run([str(BIN / "rtproxy"), "serve", "--config", str(cfg)], capture_output=True, text=True,
                         env=env, timeout=60, check=False)
    assert out.returncode == 2 and out.stdout == ""
    (line,) = [line for line in out.stderr.splitlines() if line.strip()]
    missing = tmp_path / "secrets" / "vertex-sa.json"
    assert line == (f"rtproxy: cannot get a Vertex AI access token for model 'vertex-live' (service account file "
                    f"{missing}): {missing}: No such file or directory")
