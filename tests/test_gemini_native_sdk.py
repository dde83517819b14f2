"""The official google-genai SDK served natively: ``genai.Client(api_key=<virtual key>,
http_options={"base_url": "https://<gateway>"})`` and ``client.aio.live.connect(…)`` on the
gateway's copies of Google's Live paths, over TLS on both listeners (the SDK always dials
``wss://`` and verifies the certificate: protocol/gemini-live.md §2), relayed to the offline model
speaking Gemini Live. Also google-genai's ``auth_tokens.create`` on the gateway's own route, and
the sessions its tokens open.

The SDK runs on asyncio, in a worker thread of its own (``asyncio.run``), while the gateway runs
on trio in the test's thread; it trusts the test's throwaway CA through ``SSL_CERT_FILE``, read
when a client is constructed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trustme
from google import genai
from google.genai import errors, types

from rtproxy.offline.resample import resample
from rtproxy.relay.dial import dial_upstream

from .audio_fixtures import said
from .conftest import USER_KEY, RunningServer, make_config, start_server

pytestmark = [
    # auth_tokens.create and ephemeral-token sessions are "experimental" in the SDK (3.6.1)
    pytest.mark.filterwarnings("ignore::google.genai.errors.ExperimentalWarning"),
    # with aiohttp installed the SDK's REST calls use it, through a subclass aiohttp frowns on
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession:DeprecationWarning"),
]

GEMINI = {"name": "gemini-live", "provider": "local", "dialect": "gemini", "upstream_model": "gemini-live-2.5-flash"}
OTHER = {"name": "gemini-other", "provider": "local", "dialect": "gemini",
         "upstream_model": "gemini-3.1-flash-live-preview"}
REALTIME = {"name": "gpt-realtime", "provider": "local"}
BROKE_KEY = "test-broke-key-0123456789"
TOKEN_KEY = "test-token-key-0123456789"
KEYS: list[dict[str, Any]] = [
    {"name": "user", "key": USER_KEY, "models": ["gemini-live"]},
    {"name": "broke", "key": BROKE_KEY, "models": ["gemini-live"], "max_budget_usd": 0.000001},
    {"name": "minter", "key": TOKEN_KEY, "models": ["gemini-live", "gemini-other"]},
]
#: gemini-live-2.5-flash's list prices, USD per 1M tokens (genai-prices): text in/out, audio in/out
TEXT_IN, TEXT_OUT, AUDIO_IN, AUDIO_OUT = 0.5, 2.0, 3.0, 12.0
WEATHER = types.Tool(function_declarations=[types.FunctionDeclaration(
    name="get_weather", description="Weather for a city", parameters=types.Schema(
        type=types.Type.OBJECT, properties={"city": types.Schema(type=types.Type.STRING)}, required=["city"]))])
TEXT, AUDIO = [types.Modality.TEXT], [types.Modality.AUDIO]
#: google-genai's websockets client refuses a server frame larger than this (max_size=2**20).
SDK_MAX_FRAME_BYTES = 2**20
SDK_TIMEOUT_S = 60.0


# -- the gateway over TLS, the SDK trusting its CA --------------------------------------------------

@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def cafile(ca: trustme.CA, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The CA the SDK trusts: ``SSL_CERT_FILE``, read by each ``genai.Client`` as it is built (for
    its websockets and its httpx clients alike); no proxy for the loopback."""
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    monkeypatch.setenv("SSL_CERT_FILE", str(path))
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.delenv("GOOGLE_GENAI_API_VERSION", raising=False)
    return path


class Upstream:
    """What the gateway dialed: each upstream target (URL and headers), for the secrets test."""

    def __init__(self) -> None:
        self.targets: list[Any] = []

    async def dial(self, target: Any, **kwargs: Any) -> Any:
        self.targets.append(target)
        return await dial_upstream(target, **kwargs)


async def gateway(nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, *, speech: str = "off",
                  upstream: Upstream | None = None, models: list[dict[str, Any]] | None = None,
                  local: dict[str, Any] | None = None, **server: Any) -> RunningServer:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.cert_chain_pems[0].write_to_path(str(certfile))
    for pem in cert.cert_chain_pems[1:]:
        pem.write_to_path(str(certfile), append=True)
    cert.private_key_pem.write_to_path(str(keyfile))
    cfg = make_config(tmp_path, models=models or [GEMINI, OTHER, REALTIME], keys=KEYS,
                      local={"speech": speech, **(local or {})},
                      server={"tls_certfile": str(certfile), "tls_keyfile": str(keyfile), **server})
    kwargs = {"dial": upstream.dial} if upstream is not None else {}
    return await start_server(nursery, cfg, **kwargs)


def client(port: int, key: str = USER_KEY, version: str | None = None,
           ssl_context: ssl.SSLContext | None = None) -> genai.Client:
    """The SDK pointed at the gateway: ``https://`` (it dials ``wss://`` whatever the scheme);
    ``version`` None is the SDK's default (v1). An ``ssl_context`` is given to both of the SDK's
    transports: ``ssl`` for its websocket, ``verify`` for its REST calls (httpx)."""
    options = types.HttpOptions(base_url=f"https://127.0.0.1:{port}", api_version=version)
    if ssl_context is not None:
        options.async_client_args = {"ssl": ssl_context, "verify": ssl_context}
    return genai.Client(api_key=key, http_options=options)


async def on_asyncio(fn: Callable[[], Awaitable[Any]]) -> Any:
    """Run an SDK coroutine to its end on an asyncio loop in a worker thread (bounded in time)."""
    def run() -> Any:
        return asyncio.run(asyncio.wait_for(fn(), SDK_TIMEOUT_S))
    return await trio.to_thread.run_sync(run)


async def records(srv: RunningServer, sessions: int = 1) -> list[dict[str, Any]]:
    with trio.fail_after(15):
        while sum(r["record"] == "session" for r in srv.records()) < sessions:
            await trio.sleep(0.02)
    return srv.records()


def by_hand(usage: dict[str, Any]) -> float:
    d_in, d_out = usage["input_token_details"], usage["output_token_details"]
    return (d_in["text_tokens"] * TEXT_IN + d_in["audio_tokens"] * AUDIO_IN
            + d_out["text_tokens"] * TEXT_OUT + d_out["audio_tokens"] * AUDIO_OUT) / 1e6


class Turn:
    """What the SDK received until the end of a turn (or a tool call)."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.frame_sizes: list[int] = []

    @property
    def text(self) -> str:
        return "".join(p.text for m in self.messages if m.server_content and m.server_content.model_turn
                       for p in m.server_content.model_turn.parts or [] if p.text)

    @property
    def audio_bytes(self) -> int:
        return sum(len(p.inline_data.data) for m in self.messages if m.server_content and m.server_content.model_turn
                   for p in m.server_content.model_turn.parts or [] if p.inline_data and p.inline_data.data)

    def transcript(self, which: str) -> str:
        return "".join(getattr(m.server_content, which).text or "" for m in self.messages
                       if m.server_content and getattr(m.server_content, which))

    @property
    def tool_calls(self) -> list[Any]:
        return [c for m in self.messages if m.tool_call for c in m.tool_call.function_calls or []]

    @property
    def usage(self) -> Any:
        return next((m.usage_metadata for m in reversed(self.messages) if m.usage_metadata), None)

    def dumps(self) -> str:
        return json.dumps([m.model_dump(mode="json", exclude_none=True) for m in self.messages])


def measure_frames(session: Any, turn: Turn) -> None:
    """Record the size of every frame the SDK's websocket reads (the SDK's own socket)."""
    ws = session._ws
    recv = ws.recv

    async def measured(*args: Any, **kwargs: Any) -> Any:
        frame = await recv(*args, **kwargs)
        turn.frame_sizes.append(len(frame))
        return frame
    ws.recv = measured


async def receive_turn(session: Any, turn: Turn | None = None) -> Turn:
    """Messages up to the turn's end, or up to a tool call (the turn then pauses)."""
    turn = turn or Turn()
    async for message in session.receive():
        turn.messages.append(message)
        if message.tool_call:
            break
    return turn


async def text_turn(cl: genai.Client, model: str = "gemini-live", text: str = "Say hi",
                    config: types.LiveConnectConfig | None = None) -> Turn:
    turn = Turn()
    config = config or types.LiveConnectConfig(response_modalities=TEXT)
    async with cl.aio.live.connect(model=model, config=config) as session:
        measure_frames(session, turn)
        await session.send_client_content(turns={"role": "user", "parts": [{"text": text}]}, turn_complete=True)
        await receive_turn(session, turn)
    return turn


async def refused(fn: Callable[[], Awaitable[Any]]) -> errors.APIError:
    """The APIError an SDK call raised (the test fails when it raised none)."""
    async def call() -> errors.APIError | None:
        try:
            await fn()
        except errors.APIError as exc:
            return exc
        return None
    exc = await on_asyncio(call)
    assert exc is not None, "the SDK call was not refused"
    return exc


# -- sessions -------------------------------------------------------------------------------------

@pytest.mark.parametrize("version", [None, "v1beta", "v1alpha"])  # None: the SDK's default, v1
async def test_a_text_turn_on_every_api_version_on_both_listeners_is_answered_and_billed_at_geminis_rates(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path, version: str | None) -> None:
    srv = await gateway(nursery, tmp_path, ca)
    turns = [await on_asyncio(lambda port=port: text_turn(client(port, version=version)))  # type: ignore[misc]
             for port in (srv.realtime_port, srv.main_port)]
    for turn in turns:
        assert turn.text == "You said: Say hi"
        assert turn.messages[-1].server_content.turn_complete and turn.usage.prompt_token_count > 0
    recs = await records(srv, sessions=2)
    responses = [r for r in recs if r["record"] == "response"]
    sessions = [r for r in recs if r["record"] == "session"]
    assert len(responses) == 2 and len(sessions) == 2
    for resp in responses:
        assert resp["call_type"] == "gemini" and resp["model"] == "gemini-live" and resp["provider"] == "local"
        assert resp["upstream_model"] == "gemini-live-2.5-flash" and resp["status"] == "completed"
        assert resp["usage_source"] == "provider" and resp["usage"]["output_tokens"] > 0
        assert resp["cost_usd"] > 0 and resp["cost_usd"] == pytest.approx(by_hand(resp["usage"]))
        assert resp["messages"] == [{"role": "user", "content": "Say hi", "source": "text"}]
        assert resp["response"]["output_text"] == "You said: Say hi"
        assert resp["response"]["results"][0]["promptTokenCount"] > 0  # the raw usageMetadata, for audit
    for session in sessions:
        assert session["call_type"] == "gemini" and session["api"] == "gemini" and session["provider"] == "local"
        assert session["status"] == "success" and session["credential"] == "key" and session["setup_complete"]
        assert session["client"]["user_agent"].startswith("google-genai-sdk/")
        assert session["cost_usd"] == pytest.approx(by_hand(session["usage"]))
    assert {s["session_id"] for s in sessions} == {r["session_id"] for r in responses}


async def test_speech_in_is_heard_transcribed_both_ways_answered_in_audio_and_billed_as_audio(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path) -> None:
    srv = await gateway(nursery, tmp_path, ca, speech="auto")
    pcm = resample(said("Hello there"), 24000, 16000)  # what Google's SDKs send: 16 kHz PCM16
    chunk = 16000 * 2 // 10  # 100 ms

    async def spoken() -> Turn:
        turn = Turn()
        config = types.LiveConnectConfig(response_modalities=AUDIO,
                                         input_audio_transcription=types.AudioTranscriptionConfig(),
                                         output_audio_transcription=types.AudioTranscriptionConfig())
        async with client(srv.main_port).aio.live.connect(model="gemini-live", config=config) as session:
            measure_frames(session, turn)
            for i in range(0, len(pcm), chunk):
                await session.send_realtime_input(audio=types.Blob(data=pcm[i:i + chunk],
                                                                   mime_type="audio/pcm;rate=16000"))
            await receive_turn(session, turn)
        return turn

    turn = await on_asyncio(spoken)
    assert "hello there" in turn.transcript("input_transcription").lower()
    assert turn.audio_bytes > 0 and turn.transcript("output_transcription")
    assert max(turn.frame_sizes) < SDK_MAX_FRAME_BYTES  # each frame relayed as it came, never coalesced
    (resp,) = [r for r in await records(srv) if r["record"] == "response"]
    usage = resp["usage"]
    assert usage["input_token_details"]["audio_tokens"] > 0 and usage["output_token_details"]["audio_tokens"] > 0
    assert resp["cost_usd"] == pytest.approx(by_hand(usage))
    assert resp["cost_breakdown"]["output_audio"] == pytest.approx(usage["output_token_details"]["audio_tokens"]
                                                                   * AUDIO_OUT / 1e6)
    heard = [m for m in resp["messages"] if m.get("source") == "transcript"]
    assert heard and "hello there" in heard[0]["content"].lower()
    assert resp["response"]["output_transcript"] == turn.transcript("output_transcription")


async def test_a_tool_call_and_its_response_round_trip_and_are_recorded(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path) -> None:
    srv = await gateway(nursery, tmp_path, ca)

    async def tool_turns() -> tuple[Turn, Turn]:
        config = types.LiveConnectConfig(response_modalities=TEXT, tools=[WEATHER])
        async with client(srv.realtime_port).aio.live.connect(model="gemini-live", config=config) as session:
            question = types.Content(role="user", parts=[types.Part(text="What is the weather in Paris?")])
            await session.send_client_content(turns=question, turn_complete=True)
            asked = await receive_turn(session)
            (call,) = asked.tool_calls
            await session.send_tool_response(function_responses=[types.FunctionResponse(
                id=call.id, name=call.name, response={"forecast": "sunny, 21 C"})])
            answered = await receive_turn(session)
        return asked, answered

    asked, answered = await on_asyncio(tool_turns)
    (call,) = asked.tool_calls
    assert call.name == "get_weather" and call.args == {"city": "Paris"} and call.id
    assert "sunny, 21 C" in answered.text and answered.messages[-1].server_content.turn_complete
    responses = [r for r in await records(srv) if r["record"] == "response"]
    assert len(responses) == 2
    first, second = responses
    assert first["response"]["status_details"] == {"type": "completed", "reason": "tool_call"}
    assert first["response"]["tool_calls"] == [{"id": call.id, "type": "function", "function": {
        "name": "get_weather", "arguments": json.dumps({"city": "Paris"})}}]
    tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
    assert tool_messages and "sunny, 21 C" in json.dumps(tool_messages)
    assert all(r["cost_usd"] == pytest.approx(by_hand(r["usage"])) for r in responses)
    (session,) = [r for r in srv.records() if r["record"] == "session"]
    assert session["tools"] and "get_weather" in json.dumps(session["tools"])


async def test_go_away_and_the_connection_limits_close_reach_the_client_which_resumes_with_its_handle(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path) -> None:
    """The offline model cuts each connection after 3 s (goAway 1.5 s before, then 1011): the
    gateway relays both as they are; the SDK resumes on a new connection with the newest handle."""
    srv = await gateway(nursery, tmp_path, ca, local={"gemini_connection_limit_s": 3.0, "gemini_go_away_lead_s": 1.5})

    async def until_cut() -> tuple[Turn, list[Any], errors.APIError | None, Turn]:
        config = types.LiveConnectConfig(response_modalities=TEXT, session_resumption=types.SessionResumptionConfig())
        cl = client(srv.main_port)
        later: list[Any] = []
        cut = None
        async with cl.aio.live.connect(model="gemini-live", config=config) as session:
            await session.send_client_content(turns={"role": "user", "parts": [{"text": "Remember blue"}]},
                                              turn_complete=True)
            first = await receive_turn(session)
            try:
                while True:
                    async for message in session.receive():
                        later.append(message)
            except errors.APIError as exc:
                cut = exc
        handles = [m.session_resumption_update.new_handle for m in first.messages + later
                   if m.session_resumption_update and m.session_resumption_update.resumable]
        resumed = await text_turn(cl, text="What did I say?", config=types.LiveConnectConfig(
            response_modalities=TEXT, session_resumption=types.SessionResumptionConfig(handle=handles[-1])))
        return first, later, cut, resumed

    first, later, cut, resumed = await on_asyncio(until_cut)
    assert first.text == "You said: Remember blue"
    assert [m.go_away.time_left for m in later if m.go_away] == ["1.500s"]  # a protobuf Duration
    assert cut is not None and cut.code == 1011  # the upstream's close, relayed with its code and reason
    assert resumed.text and resumed.messages[-1].server_content.turn_complete
    sessions = [r for r in await records(srv, sessions=2) if r["record"] == "session"]
    assert [s["go_aways"] for s in sessions] == [1, 0]
    assert sessions[0]["close"]["by"] == "upstream" and sessions[0]["close"]["code"] == 1011
    assert [s["resumed"] for s in sessions] == [False, True]


# -- refusals -------------------------------------------------------------------------------------

async def test_a_model_the_key_may_not_use_or_that_is_not_served_is_refused_with_1008_and_why(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path) -> None:
    srv = await gateway(nursery, tmp_path, ca)
    for port in (srv.realtime_port, srv.main_port):
        exc = await refused(lambda port=port: text_turn(client(port), model="gemini-other"))  # type: ignore[misc]
        assert exc.code == 1008 and "this key may not use models/gemini-other" in str(exc)
        exc = await refused(lambda port=port: text_turn(client(port), model="gemini-nope"))  # type: ignore[misc]
        assert exc.code == 1008 and "models/gemini-nope is not found" in str(exc)
        # an OpenAI-protocol model is not a Gemini Live model, whatever the key may use
        exc = await refused(lambda port=port: text_turn(client(port, key=TOKEN_KEY),  # type: ignore[misc]
                                                        model="gpt-realtime"))
        assert exc.code == 1008 and "is not found" in str(exc)
    assert [r for r in srv.records() if r["record"] == "response"] == []


async def test_a_bad_key_is_refused_with_1008_saying_so_and_never_echoed(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    srv = await gateway(nursery, tmp_path, ca)
    wrong = "wrong-key-do-not-echo-0123456789"
    for port in (srv.realtime_port, srv.main_port):
        for _ in range(3):  # the close never overtakes the SDK's setup (it would fail its send instead)
            exc = await refused(lambda port=port: text_turn(client(port, key=wrong)))  # type: ignore[misc]
            assert exc.code == 1008 and "API key is not valid" in str(exc)
            assert wrong not in str(exc) and wrong not in repr(exc.details)
    assert wrong not in caplog.text and "invalid_api_key" in caplog.text
    assert [r for r in srv.records() if r["record"] != "session"] == []


async def test_an_over_budget_key_is_cut_off_after_the_turn_that_spent_it_and_refused_after(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="rtproxy")
    srv = await gateway(nursery, tmp_path, ca)

    async def spend_then_more() -> tuple[Turn, errors.APIError | None]:
        turn = Turn()
        async with client(srv.main_port, key=BROKE_KEY).aio.live.connect(
                model="gemini-live", config=types.LiveConnectConfig(response_modalities=TEXT)) as session:
            await session.send_client_content(turns={"role": "user", "parts": [{"text": "Say hi"}]}, turn_complete=True)
            await receive_turn(session, turn)
            try:  # the gateway ends the session once the turn is billed: the next read says why
                await receive_turn(session)
            except errors.APIError as exc:
                return turn, exc
        return turn, None

    turn, cut = await on_asyncio(spend_then_more)
    assert turn.text == "You said: Say hi"
    assert cut is not None and cut.code == 429 and cut.status == "RESOURCE_EXHAUSTED"
    assert "has used its budget" in str(cut)
    recs = await records(srv)
    (resp,) = [r for r in recs if r["record"] == "response"]
    assert resp["key_name"] == "broke" and resp["cost_usd"] > 0  # the turn that spent it is billed
    (session,) = [r for r in recs if r["record"] == "session"]
    assert session["close"]["reason"] and "budget" in session["close"]["reason"]
    exc = await refused(lambda: text_turn(client(srv.realtime_port, key=BROKE_KEY)))
    assert exc.code == 1008 and "has used its budget" in str(exc)
    assert "budget_exceeded (429) key=broke" in caplog.text  # the operator's log names the key, never shows it
    assert BROKE_KEY not in caplog.text


async def test_an_unreachable_upstream_is_a_close_1011_connect_raises_on(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path) -> None:
    down = {"name": "gemini-live", "provider": "gemini", "api_base": "ws://127.0.0.1:9", "api_key": "g-provider-key"}
    srv = await gateway(nursery, tmp_path, ca, models=[down, OTHER, REALTIME])
    exc = await refused(lambda: text_turn(client(srv.main_port)))
    assert exc.code == 1011 and "unreachable" in str(exc) and "g-provider-key" not in str(exc)


# -- secrets --------------------------------------------------------------------------------------

async def test_the_virtual_key_never_goes_upstream_and_the_provider_key_never_reaches_the_client(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    upstream = Upstream()
    srv = await gateway(nursery, tmp_path, ca, upstream=upstream)
    turn = await on_asyncio(lambda: text_turn(client(srv.realtime_port)))
    assert turn.text == "You said: Say hi"  # the offline model took the gateway's credential
    secret = srv.gateway.local_secret
    (target,) = upstream.targets
    assert dict(target.headers) == {"x-goog-api-key": secret}  # the local secret, and only it
    assert USER_KEY not in target.url and USER_KEY not in json.dumps(target.headers)
    assert secret not in target.url  # a header, never ?key= in the URL
    assert secret not in turn.dumps()
    log = srv.gateway.spend.path.read_text()
    assert USER_KEY not in log and secret not in log
    # the gateway's (and the offline model's) logs; the SDK's own websockets client logs its headers at DEBUG
    gateway_log = "\n".join(r.getMessage() for r in caplog.records
                            if not r.name.startswith(("websockets.client", "httpx", "httpcore", "google_genai")))
    assert "rtproxy" in " ".join(r.name for r in caplog.records)
    assert USER_KEY not in gateway_log and secret not in gateway_log


# -- ephemeral tokens -----------------------------------------------------------------------------

def token_config(**fields: Any) -> types.CreateAuthTokenConfig:
    """What a backend asks for: one use, gemini-live, text answers (``fields`` replace any of it)."""
    return types.CreateAuthTokenConfig(**{"uses": 1, "live_connect_constraints": types.LiveConnectConstraints(
        model="gemini-live", config=types.LiveConnectConfig(response_modalities=TEXT)), **fields})


async def test_a_token_minted_with_the_sdk_opens_its_model_with_its_locked_setup_and_nothing_else(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path) -> None:
    srv = await gateway(nursery, tmp_path, ca)
    now = datetime.now(UTC)

    async def mint() -> Any:
        return await client(srv.main_port, key=TOKEN_KEY, version="v1alpha").aio.auth_tokens.create(config=token_config(
            expire_time=now + timedelta(minutes=30), new_session_expire_time=now + timedelta(minutes=1)))

    token = await on_asyncio(mint)
    assert token.name.startswith("auth_tokens/ek_") and TOKEN_KEY not in token.name
    assert datetime.fromisoformat(token.new_session_expire_time) <= now + timedelta(minutes=1, seconds=1)
    assert datetime.fromisoformat(token.expire_time) <= now + timedelta(minutes=30, seconds=1)
    for port in (srv.realtime_port, srv.main_port):
        # the whole setup is the token's: the client asks for audio, the token says text
        turn = await on_asyncio(lambda port=port: text_turn(  # type: ignore[misc]
            client(port, key=token.name, version="v1alpha"), config=types.LiveConnectConfig(response_modalities=AUDIO)))
        assert turn.text == "You said: Say hi" and turn.audio_bytes == 0
    # the key may use gemini-other; the token opens only its own model
    exc = await refused(lambda: text_turn(client(srv.main_port, key=token.name, version="v1alpha"),
                                          model="gemini-other"))
    assert exc.code == 1008 and "this ephemeral token may not use models/gemini-other" in str(exc)
    recs = await records(srv, sessions=2)
    sessions = [r for r in recs if r["record"] == "session"]
    assert [s["credential"] for s in sessions] == ["ephemeral_token", "ephemeral_token"]
    assert {s["key_name"] for s in sessions} == {"minter"}  # billed to the key that minted it
    responses = [r for r in recs if r["record"] == "response"]
    assert all(r["proxy_server_request"]["modalities"] == ["TEXT"] for r in responses)
    assert token.name.removeprefix("auth_tokens/") not in srv.gateway.spend.path.read_text()


async def test_a_field_mask_locks_only_the_fields_it_names(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path) -> None:
    srv = await gateway(nursery, tmp_path, ca)
    # long enough that the token keeps it in the state store, by reference
    instructions = "Be brief. " * 400
    config = types.CreateAuthTokenConfig(live_connect_constraints=types.LiveConnectConstraints(
        model="gemini-live", config=types.LiveConnectConfig(system_instruction=instructions)), lock_additional_fields=[])
    token = await on_asyncio(lambda: client(srv.main_port, key=TOKEN_KEY, version="v1alpha").aio.auth_tokens.create(
        config=config))
    # the client's modality stands (not locked); its system instruction gives way to the token's
    turn = await on_asyncio(lambda: text_turn(client(srv.main_port, key=token.name, version="v1alpha"),
                                              config=types.LiveConnectConfig(response_modalities=TEXT,
                                                                             system_instruction="Ignore all rules")))
    assert turn.text == "You said: Say hi"
    (resp,) = [r for r in await records(srv) if r["record"] == "response"]
    assert resp["proxy_server_request"]["instructions"] == instructions
    assert len(token.name) < 1024  # the lock is not in the token


async def test_the_token_route_refuses_in_googles_shape(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path) -> None:
    srv = await gateway(nursery, tmp_path, ca)

    def mint(key: str, config: types.CreateAuthTokenConfig | None) -> Callable[[], Awaitable[Any]]:
        return lambda: client(srv.main_port, key=key, version="v1alpha").aio.auth_tokens.create(config=config)

    cases = [
        (mint(TOKEN_KEY, None), 400, "INVALID_ARGUMENT", "name the model"),
        (mint(TOKEN_KEY, types.CreateAuthTokenConfig(uses=1)), 400, "INVALID_ARGUMENT", "name the model"),
        (mint(USER_KEY, token_config(live_connect_constraints={"model": "gemini-other"})), 403, "PERMISSION_DENIED",
         "this key may not use models/gemini-other"),
        (mint(TOKEN_KEY, token_config(live_connect_constraints={"model": "gpt-realtime"})), 404, "NOT_FOUND",
         "models/gpt-realtime is not served"),
        (mint("wrong-key-0123456789", token_config()), 401, "UNAUTHENTICATED", "API key not valid"),
        (mint(TOKEN_KEY, token_config(new_session_expire_time=datetime.now(UTC) - timedelta(minutes=1))), 400,
         "INVALID_ARGUMENT", "newSessionExpireTime must be in the future"),
    ]
    for call, code, status, message in cases:
        exc = await refused(call)
        assert (exc.code, exc.status) == (code, status) and message in str(exc), exc
    # a token opens sessions, it mints none (the SDK itself will not send one to a REST route: by hand)
    token = await on_asyncio(mint(TOKEN_KEY, token_config()))
    async with httpx.AsyncClient(verify=ssl.create_default_context(cafile=str(cafile))) as http:
        answer = await http.post(f"https://127.0.0.1:{srv.main_port}/v1alpha/auth_tokens",
                                 headers={"x-goog-api-key": token.name}, json={"bidiGenerateContentSetup": {
                                     "model": "models/gemini-live"}})
    assert answer.status_code == 401 and answer.json()["error"]["status"] == "UNAUTHENTICATED"


async def test_a_token_lives_as_long_as_asked_within_the_gateways_bound(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path) -> None:
    from rtproxy.auth.tokens import MAX_TTL_S

    srv = await gateway(nursery, tmp_path, ca)
    now = datetime.now(UTC)
    far = now + timedelta(hours=10)
    token = await on_asyncio(lambda: client(srv.main_port, key=TOKEN_KEY, version="v1alpha").aio.auth_tokens.create(
        config=token_config(new_session_expire_time=far)))
    new_session = datetime.fromisoformat(token.new_session_expire_time)
    assert now + timedelta(seconds=MAX_TTL_S - 5) <= new_session <= now + timedelta(seconds=MAX_TTL_S + 5)
    claims = srv.gateway.tokens.verify(token.name.removeprefix("auth_tokens/"), now=now.timestamp())
    assert claims.expires_at == int(new_session.timestamp()) and claims.model == "gemini-live"
    # without times: the gateway's token_ttl_s, and no end of its own for its sessions
    default = await on_asyncio(lambda: client(srv.main_port, key=TOKEN_KEY).aio.auth_tokens.create(
        config=token_config()))  # the SDK's default version, v1: the route is served there too
    assert default.expire_time is None
    ttl = datetime.fromisoformat(default.new_session_expire_time) - now
    assert abs(ttl.total_seconds() - srv.gateway.config.server.token_ttl_s) < 5


async def test_a_token_ends_its_sessions_at_its_expire_time(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path) -> None:
    srv = await gateway(nursery, tmp_path, ca)
    ends = datetime.now(UTC) + timedelta(seconds=3)
    token = await on_asyncio(lambda: client(srv.main_port, key=TOKEN_KEY, version="v1alpha").aio.auth_tokens.create(
        config=token_config(expire_time=ends)))

    async def outlive() -> errors.APIError | None:
        cl = client(srv.main_port, key=token.name, version="v1alpha")
        async with cl.aio.live.connect(model="gemini-live", config=types.LiveConnectConfig(response_modalities=TEXT)
                                       ) as session:
            try:
                async for _ in session.receive():
                    pass
            except errors.APIError as exc:
                return exc
        return None

    exc = await on_asyncio(outlive)
    assert exc is not None and "maximum duration" in str(exc)
    assert datetime.now(UTC) >= ends - timedelta(seconds=1)


async def test_a_gemini_token_opens_no_openai_session(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path) -> None:
    from trio_websocket import ConnectionRejected, open_websocket_url

    srv = await gateway(nursery, tmp_path, ca)
    token = await on_asyncio(lambda: client(srv.main_port, key=TOKEN_KEY).aio.auth_tokens.create(
        config=token_config()))
    ctx = ssl.create_default_context(cafile=str(cafile))
    ek = token.name.removeprefix("auth_tokens/")
    with pytest.raises(ConnectionRejected) as info:
        async with open_websocket_url(f"wss://127.0.0.1:{srv.realtime_port}/v1/realtime?model=gemini-live",
                                      ssl_context=ctx, extra_headers=[(b"authorization", f"Bearer {ek}".encode())]):
            pass
    assert info.value.status_code == 401 and b"google-genai" in (info.value.body or b"")


async def test_the_sdk_can_be_given_the_ca_as_an_ssl_context_instead(
        nursery: trio.Nursery, tmp_path: Path, ca: trustme.CA, cafile: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    srv = await gateway(nursery, tmp_path, ca)
    monkeypatch.delenv("SSL_CERT_FILE")  # the system's CAs: the gateway's certificate is not among them
    ctx = ssl.create_default_context(cafile=str(cafile))
    turn = await on_asyncio(lambda: text_turn(client(srv.main_port, ssl_context=ctx)))
    assert turn.text == "You said: Say hi"
    token = await on_asyncio(lambda: client(srv.main_port, key=TOKEN_KEY, ssl_context=ctx).aio.auth_tokens.create(
        config=token_config()))
    assert token.name.startswith("auth_tokens/ek_")
