"""What a key may have billed and hold (issue #26, items 5, 6, 14): transcription and delegation
models follow the key's models unless given; a WebRTC call and its own sideband are one session;
stored token session configs are bounded per key."""

from __future__ import annotations

from pathlib import Path

import httpx
import trio

from rtproxy.config import parse_config

from .conftest import USER_KEY, make_config, start_server
from .helpers import auth_headers, events_until, send_event, ws_connect
from .test_webrtc import call, held


def _key(tmp_path: Path, **fields: object):  # type: ignore[no-untyped-def]
    from rtproxy.auth.keys import KeyStore

    cfg = parse_config({"models": [{"name": "gpt-realtime", "provider": "local"}],
                        "keys": [{"name": "k", "key": USER_KEY, **fields}]},
                       source="t.toml", base_dir=tmp_path, environ={})
    key = KeyStore.from_config(cfg).lookup(USER_KEY)
    assert key is not None
    return key


def test_transcription_and_delegation_models_follow_the_keys_models_unless_given(tmp_path: Path) -> None:
    limited = _key(tmp_path, models=["gpt-realtime"])
    assert not limited.allows_transcription_model("gpt-4o-transcribe")
    assert not limited.allows_delegation_model("gpt-5")
    assert limited.allows_transcription_model("gpt-realtime")  # as its models say
    anything = _key(tmp_path)  # models = ["*"]
    assert anything.allows_transcription_model("gpt-4o-transcribe") and anything.allows_delegation_model("gpt-5")
    explicit = _key(tmp_path, models=["gpt-realtime"], transcription_models=["*"], delegation_models=["gpt-5"])
    assert explicit.allows_transcription_model("whisper-1") and explicit.allows_delegation_model("gpt-5")
    assert not explicit.allows_delegation_model("gpt-5.6-luna")


async def test_a_key_limited_to_one_model_cannot_make_its_session_transcribe_with_another(
        nursery: trio.Nursery, tmp_path: Path, listener: str) -> None:
    srv = await start_server(nursery, make_config(tmp_path, keys=[
        {"name": "user", "key": USER_KEY, "models": ["gpt-realtime"]}]))
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        await send_event(ws, {"type": "session.update", "session": {
            "type": "realtime", "audio": {"input": {"transcription": {"model": "gpt-4o-transcribe"}}}}})
        events = await events_until(ws, "error")
        assert events[-1]["error"]["code"] == "model_not_allowed"


async def test_a_calls_own_sideband_is_not_a_second_session(nursery: trio.Nursery, tmp_path: Path,
                                                             listener: str) -> None:
    srv = await start_server(nursery, make_config(tmp_path, keys=[
        {"name": "user", "key": USER_KEY, "models": ["gpt-realtime"], "max_sessions": 1}]))
    out = await call(srv, "offer")
    location = out["location"]
    call_id = location.rsplit("/", 1)[1]
    assert await held(srv) == 1  # the call
    async with ws_connect(srv.ws_url(listener, query=f"call_id={call_id}"), headers=auth_headers(USER_KEY)) as ws:
        await events_until(ws, "session.created")
        assert await held(srv) == 1  # still one session, watched twice
    async with httpx.AsyncClient() as http:
        r = await http.post(f"{srv.http}{location}/hangup", headers=auth_headers(USER_KEY))
        assert r.status_code == 200


async def test_stored_token_session_configs_are_bounded_per_key(nursery: trio.Nursery, tmp_path: Path) -> None:
    srv = await start_server(nursery, make_config(tmp_path, state={"max_token_sessions_per_key": 3,
                                                                   "max_token_session_bytes_per_key": 64 * 1024}))
    big = "Answer briefly. " * 1000  # ~16 KB: too large to travel inside the token, so it is stored
    async with httpx.AsyncClient() as http:
        async def mint(instructions: str) -> httpx.Response:
            return await http.post(f"{srv.http}/v1/realtime/client_secrets", headers=auth_headers(USER_KEY),
                                   json={"session": {"type": "realtime", "model": "gpt-realtime",
                                                     "instructions": instructions}})
        statuses = [(await mint(big)).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]
        refused = (await mint(big)).json()["error"]
        assert refused["code"] == "token_quota_exceeded" and "3" in refused["message"]
        small = await mint("Be brief.")  # travels inside the token: nothing stored
        assert small.status_code == 200
    srv2_dir = tmp_path / "bytes"
    srv2_dir.mkdir()
    srv2 = await start_server(nursery, make_config(srv2_dir, state={"max_token_session_bytes_per_key": 40 * 1024}))
    async with httpx.AsyncClient() as http:
        statuses = []
        for _ in range(3):
            r = await http.post(f"{srv2.http}/v1/realtime/client_secrets", headers=auth_headers(USER_KEY),
                                json={"session": {"type": "realtime", "model": "gpt-realtime", "instructions": big}})
            statuses.append(r.status_code)
        assert statuses == [200, 200, 429]  # 16 KB + 16 KB fit in 40 KiB, a third does not
