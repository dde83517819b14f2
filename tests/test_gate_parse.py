"""Model gates decide on what the provider parses: a client frame whose bytes do not prove its one
top-level type (a nested ``type`` first, an escaped type, a duplicated ``type`` key, an escaped
key spelling ``type``) is parsed, gated on its parse and forwarded re-serialized, so the provider
reads exactly what was judged; audio appends as clients write them keep their fast path and go
byte for byte. Both protocols, both listeners, against the offline model (``provider = "local"``)
and a fake upstream that records what it receives."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio
from trio_websocket import WebSocketConnection

from rtproxy.protocols import peek
from rtproxy.protocols.live import LIVE
from rtproxy.protocols.live.gate import DelegationGate
from rtproxy.protocols.peek import canonical_event, top_level_type
from rtproxy.protocols.realtime import REALTIME
from rtproxy.protocols.realtime.gate import ModelGate
from rtproxy.protocols.seam import AUDIO, COLLECT, FORWARD, PARSE

from .conftest import LIMITED_KEY, USER_KEY, RunningServer, make_config, start_server
from .fakes import FakeUpstream
from .helpers import auth_headers, events_until, send_event, server_with_fake, user_text, ws_connect

FORBIDDEN_ASR = "gpt-4o-transcribe"
ALLOWED_ASR = "whisper-1"
FORBIDDEN_BACKEND = "gpt-9-secret"
ALLOWED_BACKEND = "gpt-5.6-luna"

#: (name, frame) builders: a ``session.update`` of ``session``, written so that the cheap peek
#: (the first "type" in the head) reads something else than the provider's parser does.
ATTACKS: list[tuple[str, Callable[[str, str, str], str]]] = [
    # the first "type" is a nested object's
    ("nested_type_first", lambda audio, session, eid: f'{{"session":{session},"type":"session.update","event_id":"{eid}"}}'),
    # an escaped letter in the type
    ("escaped_type", lambda audio, session, eid: f'{{"type":"session.updat\\u0065","event_id":"{eid}","session":{session}}}'),
    # a duplicated key: parsers keep the last
    ("duplicate_type", lambda audio, session, eid:
        f'{{"type":"response.create","type":"session.update","event_id":"{eid}","session":{session}}}'),
    # a nested audio type first: it used to be counted as audio, never parsed nor gated
    ("nested_audio_type_first", lambda audio, session, eid:
        f'{{"x":{{"type":"{audio}"}},"type":"session.update","event_id":"{eid}","session":{session}}}'),
]
ATTACK_IDS = [name for name, _ in ATTACKS]

REALTIME_SESSION = json.dumps({"type": "realtime", "audio": {"input": {"transcription": {"model": FORBIDDEN_ASR}}}})
LIVE_SESSION = json.dumps({"delegation": {"type": "responses", "responses": {"model": FORBIDDEN_BACKEND}}})


# -- the strict peek -------------------------------------------------------------------------------

@pytest.mark.parametrize(("frame", "expected"), [
    # audio appends as browsers, the SDKs and the bench write them: one top-level type, proven
    (b'{"type":"input_audio_buffer.append","audio":"AA/+"}', b"input_audio_buffer.append"),
    (b'{"type": "input_audio_buffer.append", "audio": "AAAA", "event_id": "e1"}', b"input_audio_buffer.append"),
    (b'{"type":"input_audio_buffer.append","event_id":"e1","audio":"AAAA"}', b"input_audio_buffer.append"),
    (b'{"event_id":"e1","type":"input_audio_buffer.append","audio":"AAAA"}', b"input_audio_buffer.append"),
    (b'{"type":"input_audio_buffer.append","audio":"AAAA"}\n', b"input_audio_buffer.append"),
    # nested objects with no other "type" and no \u escape: proven too
    (b'{"type":"response.create","response":{"instructions":"say \\"hi\\"\\n"}}', b"response.create"),
    (b'{"type":"response.create"}', b"response.create"),
    # not provably top-level: parse it
    (b'{"session":{"type":"realtime"},"type":"session.update"}', None),
    (b'{"x":{"type":"input_audio_buffer.append"},"type":"session.update"}', None),
    (b'{"event_id":"e\\"1","type":"session.update"}', None),  # an escape in the event_id
    (b'{"event_id":"e1","n":1,"type":"response.create"}', None),  # a second member before the type
    (b'{"event_id":"type","type":"response.create"}', None),
    # the type itself escaped
    (b'{"type":"session.updat\\u0065","session":{}}', None),
    # another top-level type after it, literal or escaped
    (b'{"type":"response.create","type":"session.update"}', None),
    (b'{"type":"input_audio_buffer.append","audio":"AAAA","type":"session.update"}', None),
    (b'{"type":"input_audio_buffer.append","audio":"AAAA","typ\\u0065":"session.update"}', None),
    (b'{"type":"response.create","response":{},"typ\\u0065":"session.update"}', None),
    # a nested "type" after it: maybe harmless, but not proven
    (b'{"type":"session.update","session":{"type":"realtime"}}', None),
])
def test_the_strict_peek_vouches_for_a_type_only_when_the_bytes_prove_the_parser_reads_it(
        frame: bytes, expected: bytes | None) -> None:
    assert top_level_type(frame) == expected
    assert top_level_type(bytearray(frame)) == expected  # unmasked client data is a bytearray


def test_the_plain_members_walk_is_bounded_and_refuses_an_escaped_closing_quote() -> None:
    many = b'{"type":"a.b"' + b''.join(b',"k%d":"v"' % i for i in range(peek.MAX_PLAIN_MEMBERS + 1)) + b"}"
    assert not peek.only_plain_members(many, many.index(b'"a.b"') + 5)
    assert top_level_type(many) == b"a.b"  # then searched instead: no other "type", no \u
    escaped_end = b'{"type":"input_audio_buffer.append","audio":"AA\\"}'
    assert not peek.only_plain_members(escaped_end, escaped_end.index(b',"audio"'))


# -- the parse a frame is forwarded as ---------------------------------------------------------------

@pytest.mark.parametrize(("frame", "forwarded", "etype"), [
    (b'{"session":{"type":"realtime"},"type":"session.update"}',
     b'{"type":"session.update","session":{"type":"realtime"}}', b"session.update"),
    (b'{"type":"response.create","type":"session.update","session":{}}',
     b'{"type":"session.update","session":{}}', b"session.update"),
    (b'{"type":"session.updat\\u0065", "v": "\\u00e9\\/"}', '{"type":"session.update","v":"é/"}'.encode(),
     b"session.update"),
    (b'{"type":"x","v":"\\ud800"}', b'{"type":"x","v":"\\ud800"}', b"x"),  # a lone surrogate stays escaped
    (b'[1, 2]', b"[1,2]", None),  # JSON, not an event: forwarded as parsed, the collector counts it
    (b"not json", b"not json", None),  # not JSON, no object in it: unchanged, the provider refuses it
    (b"\xff\x00binary", b"\xff\x00binary", None),  # not even text
    (b"{not json", None, None),  # not JSON, but maybe an object to a lenient parser: not forwarded
    (b'{"type":"response.create"}{"type":"session.update"}', None, None),  # two objects in one frame
    (b'{"a":' * 5000 + b"1" + b"}" * 5000, None, None),  # JSON the gateway cannot read: not forwarded
    (b'{"type":"x","n":[' + b",".join([b"1e15"] * 1000) + b"]}", None, None),  # would grow past the bound
])
def test_a_frame_the_peek_cannot_vouch_for_is_forwarded_as_parsed(frame: bytes, forwarded: bytes | None,
                                                                 etype: bytes | None) -> None:
    parsed = canonical_event(frame)
    assert (parsed.frame, parsed.type) == (forwarded, etype)
    if parsed.frame is not None and etype is not None:
        assert top_level_type(parsed.frame.split(b",", 1)[0] + b"}") == etype  # the type comes first


@pytest.mark.parametrize("protocol, audio", [(REALTIME, "input_audio_buffer.append"),
                                             (LIVE, "session.input_audio.append")])
@pytest.mark.parametrize("attack", [build for _, build in ATTACKS], ids=ATTACK_IDS)
def test_both_protocols_parse_what_they_cannot_vouch_for_and_keep_audio_on_its_fast_path(
        protocol: Any, audio: str, attack: Callable[[str, str, str], str]) -> None:
    frame = attack(audio, '{"x":1}', "e1").encode()
    assert protocol.classify_client(frame) == PARSE
    normalized = protocol.normalize_client(frame)
    assert normalized.kind == COLLECT and normalized.payload is not None
    assert normalized.payload.startswith(b'{"type":"session.update",')
    append = f'{{"type":"{audio}","audio":"{"A" * 4000}"}}'.encode()
    assert protocol.classify_client(append) == AUDIO
    assert protocol.classify_client(append[:-2] + b'","typ\\u0065":"session.update"}') == PARSE
    assert protocol.classify_client(b'{"type":"session.close"}') in (FORWARD, COLLECT)
    assert protocol.classify_client(b"{not json") == PARSE
    assert protocol.normalize_client(b"{not json").payload is None
    assert protocol.normalize_client(b"not json").payload == b"not json"


@pytest.mark.parametrize("attack", [build for _, build in ATTACKS], ids=ATTACK_IDS)
def test_both_gates_decide_on_the_parsed_frame_whatever_its_head_says(attack: Callable[[str, str, str], str]) -> None:
    realtime = ModelGate(frozenset({"gpt-realtime"}), lambda m: m == "gpt-realtime", lambda m: m == ALLOWED_ASR)
    refusal = realtime.check(attack("input_audio_buffer.append", REALTIME_SESSION, "e9").encode())
    assert refusal is not None and json.loads(refusal)["error"]["code"] == "model_not_allowed"
    assert json.loads(refusal)["error"]["event_id"] == "e9"
    live = DelegationGate(lambda m: m == ALLOWED_BACKEND)
    refusal = live.check(attack("session.input_audio.append", LIVE_SESSION, "u9").encode())
    assert refusal is not None and json.loads(refusal)["error"]["code"] == "model_not_allowed"
    assert json.loads(refusal)["error"]["client_event_id"] == "u9"


# -- through a real gateway: the Realtime API ---------------------------------------------------------

def realtime_server_config(tmp_path: Path) -> Any:
    return make_config(tmp_path, keys=[{"name": "narrow", "key": LIMITED_KEY, "models": ["gpt-realtime"],
                                        "transcription_models": [ALLOWED_ASR]}])


async def until_marker(ws: WebSocketConnection, etype: str, marker_id: str) -> list[dict[str, Any]]:
    """Events up to the ``etype`` answering the marker event ``marker_id`` (sent after the attack)."""
    events: list[dict[str, Any]] = []
    with trio.fail_after(10):
        while True:
            event = json.loads(await ws.get_message())
            events.append(event)
            if event["type"] == etype and event.get("client_event_id", marker_id) == marker_id:
                return events


async def session_records(srv: RunningServer) -> list[dict[str, Any]]:
    with trio.fail_after(10):
        while not any(r["record"] == "session" for r in srv.records()):
            await trio.sleep(0.02)
    return srv.records()


@pytest.mark.parametrize("attack", [build for _, build in ATTACKS], ids=ATTACK_IDS)
async def test_a_realtime_session_update_disguised_from_the_peek_is_refused_and_nothing_forbidden_is_billed(
        nursery: trio.Nursery, tmp_path: Path, listener: str, attack: Callable[[str, str, str], str]) -> None:
    srv = await start_server(nursery, realtime_server_config(tmp_path))
    async with ws_connect(srv.ws_url(listener), headers=auth_headers(LIMITED_KEY)) as ws:
        await events_until(ws, "session.created")
        await ws.send_message(attack("input_audio_buffer.append", REALTIME_SESSION, "evt_attack"))
        # a marker the provider answers: everything before it was answered too
        await send_event(ws, {"type": "session.update", "session": {"type": "realtime", "output_modalities": ["text"]}})
        events = await until_marker(ws, "session.updated", "")
        errors = [e["error"] for e in events if e["type"] == "error"]
        assert [(e["code"], e["event_id"]) for e in errors] == [("model_not_allowed", "evt_attack")]
        (updated,) = [e for e in events if e["type"] == "session.updated"]  # only the marker was applied
        assert updated["session"]["audio"]["input"]["transcription"] is None
        await send_event(ws, user_text("Hello"))
        await send_event(ws, {"type": "response.create"})
        await events_until(ws, "response.done")
    records = await session_records(srv)
    assert [r["record"] for r in records] == ["response", "session"]
    assert all(r.get("transcription_model") != FORBIDDEN_ASR for r in records)
    assert FORBIDDEN_ASR not in json.dumps(records)  # not applied, not billed, not even recorded
    srv.stop.set()


# -- through a real gateway: GPT-Live -----------------------------------------------------------------

def live_server_config(tmp_path: Path) -> Any:
    return make_config(tmp_path, models=[{"name": "gpt-realtime", "provider": "local"},
                                         {"name": "gpt-live-1", "provider": "local", "api": "live"}],
                       keys=[{"name": "user", "key": USER_KEY, "models": ["gpt-live-1"],
                              "delegation_models": [ALLOWED_BACKEND]}],
                       local={"live_usage_interval_ms": 50.0})


async def live_backend_turn(ws: WebSocketConnection) -> dict[str, Any]:
    """A typed question answered by the delegated backend model: its terminal nested event."""
    await send_event(ws, {"type": "response.item.create", "item": {
        "type": "message", "role": "user", "content": [{"type": "input_text", "text": "What is 2 + 2?"}]}})
    await send_event(ws, {"type": "response.create"})
    with trio.fail_after(10):
        while True:
            event = json.loads(await ws.get_message())
            assert event["type"] != "error", event
            if event["type"] == "response.event" and event["event"]["type"] == "response.completed":
                return event["event"]  # type: ignore[no-any-return]


@pytest.mark.parametrize("attack", [build for _, build in ATTACKS], ids=ATTACK_IDS)
async def test_a_live_session_update_disguised_from_the_peek_is_refused_and_no_forbidden_delegation_is_billed(
        nursery: trio.Nursery, tmp_path: Path, listener: str, attack: Callable[[str, str, str], str]) -> None:
    srv = await start_server(nursery, live_server_config(tmp_path))
    async with ws_connect(srv.ws_url(listener, "/v1/live/sessions", ""), headers=auth_headers(USER_KEY)) as ws:
        await send_event(ws, {"type": "session.start", "session": {"model": "gpt-live-1", "delegation": {
            "type": "responses", "responses": {"model": ALLOWED_BACKEND}}}})
        started = (await events_until(ws, "session.started"))[-1]
        assert started["session"]["delegation"]["responses"]["model"] == ALLOWED_BACKEND
        await ws.send_message(attack("session.input_audio.append", LIVE_SESSION, "u_attack"))
        await send_event(ws, {"type": "session.update", "event_id": "u_marker", "session": {"delegation": {
            "type": "responses", "responses": {"instructions": "Be terse."}}}})
        events = await until_marker(ws, "session.updated", "u_marker")
        errors = [e["error"] for e in events if e["type"] == "error"]
        assert [(e["code"], e["client_event_id"]) for e in errors] == [("model_not_allowed", "u_attack")]
        (updated,) = [e for e in events if e["type"] == "session.updated"]
        assert updated["session"]["delegation"]["responses"]["model"] == ALLOWED_BACKEND
        completed = await live_backend_turn(ws)
        assert completed["response"]["model"] == ALLOWED_BACKEND
        await send_event(ws, {"type": "session.close"})
        await events_until(ws, "session.closed")
    records = await session_records(srv)
    billed = [r for r in records if r["record"] == "response"]
    assert billed and {r["response_model"] for r in billed} == {ALLOWED_BACKEND}
    assert FORBIDDEN_BACKEND not in json.dumps(records)
    srv.stop.set()


# -- what the provider receives -------------------------------------------------------------------------

async def upstream_received(ws: WebSocketConnection, fake: FakeUpstream, marker: int) -> list[Any]:
    """What the fake upstream received once it echoed the ``{"type":"ping","n":marker}`` sent last."""
    await ws.send_message(f'{{"type":"ping","n":{marker}}}')
    with trio.fail_after(10):
        while json.loads(await ws.get_message()).get("n") != marker:
            pass
    return fake.received


async def test_an_allowed_frame_the_peek_misreads_reaches_the_provider_as_parsed_and_audio_byte_for_byte(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    srv = await server_with_fake(nursery, tmp_path, fake_upstream,
                                 keys=[{"name": "narrow", "key": LIMITED_KEY, "models": ["fake"],
                                        "transcription_models": [ALLOWED_ASR]}])
    allowed = json.dumps({"type": "realtime", "audio": {"input": {"transcription": {"model": ALLOWED_ASR}}}})
    disguised = f'{{"type":"response.create", "type":"session.updat\\u0065","event_id":"e1","session":{allowed}}}'
    pcm = base64.b64encode(bytes(range(256)) * 30).decode()  # '+' and '/' among them
    appends = [f'{{"type":"input_audio_buffer.append","audio":"{pcm}"}}',
               json.dumps({"type": "input_audio_buffer.append", "audio": pcm, "event_id": "a2"}),
               f'{{"type":"input_audio_buffer.append","event_id":"a3","audio":"{pcm}"}}']
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(LIMITED_KEY)) as ws:
        await ws.get_message()  # session.created
        await ws.send_message(disguised)
        for append in appends:
            await ws.send_message(append)
        received = await upstream_received(ws, fake_upstream, 1)
    canonical = json.dumps({"type": "session.update", "event_id": "e1", "session": json.loads(allowed)},
                           separators=(",", ":"))
    assert received[:4] == [canonical, *appends]


async def test_json_the_gateway_cannot_read_is_answered_never_forwarded_and_binary_json_is_judged_too(
        nursery: trio.Nursery, tmp_path: Path, fake_upstream: FakeUpstream, listener: str) -> None:
    srv = await server_with_fake(nursery, tmp_path, fake_upstream,
                                 keys=[{"name": "narrow", "key": LIMITED_KEY, "models": ["fake"],
                                        "transcription_models": [ALLOWED_ASR]}])
    too_deep = '{"type":"session.update","session":' + REALTIME_SESSION[:-1] + ',"x":' + "[" * 5000 + "]" * 5000 + "}}"
    async with ws_connect(srv.ws_url(listener, query="model=fake"), headers=auth_headers(LIMITED_KEY)) as ws:
        await ws.get_message()
        await ws.send_message(too_deep)
        refusal = json.loads(await ws.get_message())
        assert refusal["type"] == "error" and refusal["error"]["code"] == "invalid_json"
        # a binary frame a provider may parse as an event is gated as a text one is
        await ws.send_message(f'{{"type":"session.update","event_id":"b1","session":{REALTIME_SESSION}}}'.encode())
        refusal = json.loads(await ws.get_message())
        assert (refusal["error"]["code"], refusal["error"]["event_id"]) == ("model_not_allowed", "b1")
        received = await upstream_received(ws, fake_upstream, 2)
    assert [json.loads(m).get("type") for m in received] == ["ping"]
