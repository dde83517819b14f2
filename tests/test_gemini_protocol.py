"""The Gemini Live protocol, sans-IO: what a frame is from its bytes (the audio fast paths on the
shapes google-genai and Google write), the first frame's admission, the gate on later setups,
the in-band error, and ``usageMetadata`` in the records' shape."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from rtproxy.config import ModelConfig
from rtproxy.protocols import seam
from rtproxy.protocols.gemini import (
    GEMINI,
    GeminiCollector,
    SetupGate,
    SetupRefused,
    openai_usage,
    parse_setup,
)
from rtproxy.protocols.gemini import frames as gframes
from rtproxy.protocols.gemini.estimate import estimate_turn_usage
from rtproxy.protocols.gemini.messages import MAX_CLOSE_REASON_BYTES, close_reason, error_event
from rtproxy.protocols.gemini.start import (
    MAX_SETUP_FRAME_BYTES,
    ai_studio_model,
    model_id,
    vertex_express_model,
    vertex_model,
)
from rtproxy.protocols.seam import AUDIO, COLLECT, FORWARD, PARSE, ModelPolicy
from rtproxy.spend.pricing import Price, price_usage
from rtproxy.spend.records import SessionMeta

PCM = bytes(range(256)) * 12  # 3072 bytes: base64 with '+' and '/', URL-safe with '-' and '_'
B64 = base64.b64encode(PCM).decode()
B64_URLSAFE = base64.urlsafe_b64encode(PCM).decode()
assert "-" in B64_URLSAFE and "_" in B64_URLSAFE and "+" in B64 and "/" in B64


def server_audio(*, indent: int | None = 2, data: str = B64, mime: str | None = "audio/pcm;rate=24000",
                 data_first: bool = False, role: bool = False, **extra: Any) -> bytes:
    """A server audio frame as Google writes it (``indent=2``: pretty-printed, what its Live servers
    send) or compact."""
    blob: dict[str, Any] = {"data": data} if data_first else {}
    if mime is not None:
        blob["mimeType"] = mime
    blob["data"] = data
    turn: dict[str, Any] = {"parts": [{"inlineData": blob}]}
    if role:
        turn["role"] = "model"
    content: dict[str, Any] = {"modelTurn": turn, **extra.pop("content", {})}
    text = json.dumps({"serverContent": content, **extra}, indent=indent)
    return (text + "\n" if indent else text).encode()


# -- server frames -----------------------------------------------------------------------------

@pytest.mark.parametrize("frame", [
    server_audio(),  # Google: pretty-printed, two-space indent
    server_audio(indent=None),  # json.dumps
    json.dumps(json.loads(server_audio()), separators=(",", ":")).encode(),  # compact
    server_audio(role=True),  # the turn's role after its parts (read in the tail)
])
def test_server_audio_in_the_shapes_it_is_written_takes_the_prefix_fast_path(frame: bytes) -> None:
    assert frame.startswith(gframes.SERVER_AUDIO_PREFIXES)
    assert GEMINI.classify(frame) == AUDIO
    assert GEMINI.classify(bytearray(frame)) == AUDIO  # type: ignore[arg-type]  # what a leg may hand over


@pytest.mark.parametrize("frame", [
    server_audio(data_first=True),  # the mime type after the data
    server_audio(mime="audio/pcm"),
    server_audio(indent=4),
    b'\r\n{ "serverContent" :{"modelTurn":{ "role":"model", "parts":[ {"inlineData":{"mimeType":"audio/pcm;rate=24000",'
    b' "data":"' + B64.encode() + b'"} } ] } } }\r\n',
])
def test_server_audio_in_other_spacings_and_orders_is_still_audio(frame: bytes) -> None:
    assert not frame.startswith(gframes.SERVER_AUDIO_PREFIXES)
    assert GEMINI.classify(frame) == AUDIO


@pytest.mark.parametrize("frame", [
    # what rides on an audio frame is needed: its usage, a transcript, the turn's end
    server_audio(usageMetadata={"promptTokenCount": 10}),
    server_audio(content={"outputTranscription": {"text": "hi"}}),
    server_audio(content={"turnComplete": True}),
    server_audio(content={"generationComplete": True}),
    server_audio(indent=None).replace(b'}]}}', b'}, {"text": "and text"}]}}'),  # a second part
    server_audio(mime="image/png"),  # not audio
    server_audio(mime=None),  # no mime type: not proven audio
    server_audio(data='abc\\"def'),  # an escaped quote: the string goes on past it
    server_audio()[:200],  # cut short
    server_audio() + b'{"usageMetadata": {"promptTokenCount": 1}}',  # something after the object
    b'{\n  "setupComplete": {}\n}\n',
    b'{\n  "usageMetadata": {\n    "promptTokenCount": 5\n  }\n}\n',
    b'{"toolCall": {"functionCalls": [{"id": "c1", "name": "f", "args": {}}]}}',
    b"not json",
])
def test_any_other_server_frame_goes_to_the_collector(frame: bytes) -> None:
    assert GEMINI.classify(frame) == COLLECT


def test_an_audio_frame_with_the_mime_type_twice_is_not_proven() -> None:
    frame = server_audio(indent=None).replace(b'"}}]}}', b'", "mimeType": "audio/pcm"}}]}}')
    assert json.loads(frame)  # still JSON (a duplicate member)
    assert GEMINI.classify(frame) == COLLECT


# -- client frames -----------------------------------------------------------------------------

#: google-genai 3.6.1's frames, byte for byte (send_realtime_input, send_client_content, …).
SDK_AUDIO = b'{"realtime_input": {"audio": {"data": "__77___--____vv_", "mime_type": "audio/pcm;rate=16000"}}}'
SDK_FRAMES = {
    b'{"realtime_input": {"text": "hi"}}': COLLECT,
    b'{"realtime_input": {"audioStreamEnd": true}}': COLLECT,
    b'{"realtime_input": {"activityEnd": {}}}': COLLECT,
    b'{"realtime_input": {"video": {"data": "_9j_", "mime_type": "image/jpeg"}}}': FORWARD,
    b'{"realtime_input": {"mediaChunks": [{"data": "AQI=", "mime_type": "audio/pcm;rate=16000"}]}}': AUDIO,
    b'{"realtime_input": {"mediaChunks": [{"data": "AQI=", "mime_type": "image/jpeg"}]}}': FORWARD,
    b'{"client_content": {"turns": [{"parts": [{"text": "hello"}], "role": "user"}], "turnComplete": true}}': COLLECT,
    b'{"tool_response": {"functionResponses": [{"id": "fc1", "name": "get_weather", "response": {"temp": 18}}]}}':
        COLLECT,
}


@pytest.mark.parametrize("frame", [
    SDK_AUDIO,
    json.dumps({"realtime_input": {"audio": {"data": B64_URLSAFE, "mime_type": "audio/pcm;rate=16000"}}}).encode(),
    json.dumps({"realtimeInput": {"audio": {"data": B64, "mimeType": "audio/pcm;rate=16000"}}},
               separators=(",", ":")).encode(),  # browsers (JSON.stringify)
    json.dumps({"realtimeInput": {"audio": {"data": B64, "mimeType": "audio/pcm;rate=16000"}}}).encode(),
])
def test_client_audio_as_the_sdks_write_it_takes_the_prefix_fast_path(frame: bytes) -> None:
    assert frame.startswith(gframes.CLIENT_AUDIO_PREFIXES)
    assert GEMINI.classify_client(frame) == AUDIO


@pytest.mark.parametrize("frame", [
    b'{"realtimeInput":{"audio":{"mimeType":"audio/pcm;rate=16000","data":"AAAA"}}}',  # mime first
    b'{ "realtime_input" : { "audio" : { "data" : "AAAA" } } }',  # no mime type, spaced out
    b'\n{"realtimeInput":\t{"audio": {"data": "AAAA",\n "mimeType": "audio/pcm"}}}\n',
])
def test_client_audio_in_other_orders_and_spacings_is_still_proven(frame: bytes) -> None:
    assert GEMINI.classify_client(frame) == AUDIO


@pytest.mark.parametrize("frame", [
    SDK_AUDIO[:-1] + b', "setup": {"model": "models/x"}}',  # another top-level member
    SDK_AUDIO.replace(b'"}}}', b'", "setup": {}}}}'),  # another member of realtime_input
    SDK_AUDIO.replace(b'"}}}', b'", "text": "x"}}}'),  # another member of the blob
    SDK_AUDIO.replace(b'"}}}', b'", "data": "AAAA"}}}'),  # the data twice (the last wins)
    SDK_AUDIO.replace(b'{"data"', b'{"mime_type": "audio/pcm", "data"'),  # the mime type twice
    SDK_AUDIO.replace(b'"realtime_input"', b'"realtime\\u005finput"'),  # an escaped key
    SDK_AUDIO.replace(b'vv_"', b'vv_\\"'),  # an escaped quote: the data goes on
    SDK_AUDIO[:40],  # cut short
    SDK_AUDIO + b'{"setup": {"model": "models/x"}}',  # something after the object
    b'{"setup": {"model": "models/x"}}',
    *SDK_FRAMES,
])
def test_any_other_client_frame_is_parsed(frame: bytes) -> None:
    assert GEMINI.classify_client(frame) == PARSE


@pytest.mark.parametrize(("frame", "kind"), list(SDK_FRAMES.items()))
def test_a_parsed_client_frame_is_judged_on_its_parse(frame: bytes, kind: int) -> None:
    parsed = GEMINI.normalize_client(frame)
    assert parsed.kind == kind
    assert parsed.payload is not None and json.loads(parsed.payload) == json.loads(frame)


def test_a_parsed_frame_is_forwarded_as_parsed_duplicates_resolved_and_escapes_decoded() -> None:
    frame = b'{"realtime\\u005finput": {"text": "a"}, "realtime_input": {"text": "b \\u00e9"}}'
    parsed = GEMINI.normalize_client(frame)
    assert parsed.payload == '{"realtime_input":{"text":"b é"}}'.encode()
    assert parsed.kind == COLLECT


@pytest.mark.parametrize(("frame", "payload", "kind"), [
    (b"plain words", b"plain words", COLLECT),  # no object in it: Google refuses it as the gateway would
    (b'{"setup": ', None, COLLECT),  # might hold an object for a lenient parser: not forwarded
    (b"[" * 100_000, b"[" * 100_000, COLLECT),  # too deep to parse, and no object for any parser: as it is
    (b'{"x": [' + b"[" * 100_000 + b"]}", None, COLLECT),  # too deep to judge, and it may hold one
    (b'{"a": 1e400}', None, COLLECT),  # not a double: it would come back as Infinity, which is not JSON
    (b'{"a": NaN}', None, COLLECT),
    (b'{"a": -Infinity}', None, COLLECT),
    (b'[{"realtime_input": {"audio": {"data": "AA"}}}]', b'[{"realtime_input":{"audio":{"data":"AA"}}}]', COLLECT),
    # audio beside another member is no audio frame: collected (and gated)
    (b'{"realtime_input": {"audio": {"data": "AA"}}, "setup": {}}',
     b'{"realtime_input":{"audio":{"data":"AA"}},"setup":{}}', COLLECT),
    (b'{"realtime_input": {"audio": {"data": "AA"}, "text": "hi"}}',
     b'{"realtime_input":{"audio":{"data":"AA"},"text":"hi"}}', COLLECT),
])
def test_what_cannot_be_judged_is_never_forwarded(frame: bytes, payload: bytes | None, kind: int) -> None:
    parsed = GEMINI.normalize_client(frame)
    assert (parsed.payload, parsed.kind) == (payload, kind)


def test_both_spellings_are_read_and_the_later_one_wins() -> None:
    assert gframes.field({"mimeType": "a"}, "mimeType") == "a"
    assert gframes.field({"mime_type": "b"}, "mimeType") == "b"
    assert gframes.field({"mimeType": "a", "mime_type": "b"}, "mimeType") == "b"
    assert gframes.field({"mime_type": "b", "mimeType": "a"}, "mimeType") == "a"
    assert gframes.field("not an object", "mimeType") is None
    assert gframes.snake("toolCallCancellation") == "tool_call_cancellation"


# -- the first frame: setup --------------------------------------------------------------------

LIVE = ModelConfig("gemini-live", "local", "gemini-live-2.5-flash-preview")


def served(name: str) -> ModelConfig | None:
    return LIVE if name in ("gemini-live", "gemini-live-2.5-flash-preview") else None


def setup(model: Any = "models/gemini-live", *, allowed: tuple[str, ...] = ("gemini-live",), **kw: Any) -> Any:
    frame = kw.pop("frame", None) or json.dumps({"setup": {"model": model, **kw}})
    return parse_setup(frame, served=served, allows=lambda n: n in allowed)


#: google-genai 3.6.1's setup (LiveConnectConfig with instructions, voice, a tool, transcription,
#: VAD, resumption and compression), byte for byte.
SDK_SETUP = (
    '{"setup": {"model": "models/gemini-live", "generationConfig": {"responseModalities": ["AUDIO"], "speechConfig": '
    '{"voice_config": {"prebuilt_voice_config": {"voice_name": "Kore"}}}}, "systemInstruction": {"parts": [{"text": '
    '"Be brief."}], "role": "user"}, "tools": [{"functionDeclarations": [{"description": "w", "name": "get_weather", '
    '"parameters": {"properties": {"city": {"type": "STRING"}}, "type": "OBJECT"}}]}], "sessionResumption": {}, '
    '"inputAudioTranscription": {}, "outputAudioTranscription": {}, "realtimeInputConfig": '
    '{"automatic_activity_detection": {"silence_duration_ms": 500}}, "contextWindowCompression": {"sliding_window": {}}}}')


def test_the_sdks_setup_is_admitted_with_the_upstream_model_and_everything_else_kept() -> None:
    got = setup(frame=SDK_SETUP)
    assert got.model is LIVE and got.client_model == "models/gemini-live"
    sent = json.loads(got.frame)
    original = json.loads(SDK_SETUP)
    original["setup"]["model"] = "models/gemini-live-2.5-flash-preview"
    assert sent == original
    assert got.frame.isascii()  # sent as text, whatever the client wrote


@pytest.mark.parametrize("name", [
    "models/gemini-live", "gemini-live", "publishers/google/models/gemini-live",
    "projects/p-1/locations/us-central1/publishers/google/models/gemini-live",
    "models/gemini-live-2.5-flash-preview",  # the upstream's own name
])
def test_every_model_spelling_clients_send_is_admitted(name: str) -> None:
    assert setup(name).model is LIVE


@pytest.mark.parametrize(("builder", "expected"), [
    (ai_studio_model, "models/gemini-live-2.5-flash-preview"),
    (vertex_express_model, "publishers/google/models/gemini-live-2.5-flash-preview"),
    (vertex_model("p-1", "europe-west4"),
     "projects/p-1/locations/europe-west4/publishers/google/models/gemini-live-2.5-flash-preview"),
])
def test_the_model_is_rewritten_to_the_upstreams_form(builder: Any, expected: str) -> None:
    got = parse_setup(json.dumps({"setup": {"model": "gemini-live"}}), served=served, allows=lambda n: True,
                      upstream_model=builder)
    assert json.loads(got.frame)["setup"]["model"] == expected


def test_an_upstream_configured_as_a_resource_name_is_used_as_it_is() -> None:
    full = ModelConfig("g", "local", "projects/q/locations/global/publishers/google/models/gemini-3.1-flash-live")
    for builder in (ai_studio_model, vertex_express_model, vertex_model("p", "l")):
        assert builder(full) == full.target_model


@pytest.mark.parametrize(("name", "ident"), [
    ("models/a-1", "a-1"), ("a-1", "a-1"), ("publishers/google/models/a-1", "a-1"),
    ("projects/p/locations/l/publishers/google/models/a-1", "a-1"),
    ("models/", None), ("models/a/b", None), ("projects/p/models/a", None), ("publishers/x/models/a", None),
    ("tunedModels/a", None), ("a b", None), ("", None),
])
def test_a_model_id_is_read_from_the_accepted_forms_only(name: str, ident: str | None) -> None:
    assert model_id(name) == ident


@pytest.mark.parametrize(("frame", "code", "says"), [
    ("not json", 1007, "not JSON"),
    ('["setup"]', 1007, "must be setup"),
    ('{"config": {"model": "models/gemini-live"}}', 1007, "must be setup"),
    ('{"client_content": {"turns": []}}', 1007, "must be setup"),
    ('{"setup": {"model": "models/gemini-live"}, "clientContent": {}}', 1007, "only member"),
    ('{"setup": "models/gemini-live"}', 1007, "must be an object"),
    ('{"setup": {}}', 1007, "setup.model is required"),
    ('{"setup": {"model": 7}}', 1007, "setup.model is required"),
    ('{"setup": {"model": ""}}', 1007, "setup.model is required"),
    ('{"setup": {"model": "models/gemini-pro"}}', 1008, "models/gemini-pro is not found"),
    ('{"setup": {"model": "projects/p/models/gemini-live"}}', 1008, "is not found"),
    ('{"setup": {"model": "models/gemini-live"}}', 1008, "this key may not use models/gemini-live"),
])
def test_a_setup_that_cannot_open_a_session_is_refused_with_googles_close_code(frame: str, code: int,
                                                                                says: str) -> None:
    with pytest.raises(SetupRefused) as refused:
        setup(frame=frame, allowed=() if "may not" in says else ("gemini-live",))
    assert refused.value.close_code == code
    assert says in refused.value.reason
    if code == 1007:
        assert refused.value.reason.startswith("Request contains an invalid argument")


def test_a_setup_too_large_is_refused_before_it_is_parsed() -> None:
    frame = json.dumps({"setup": {"model": "models/gemini-live", "systemInstruction": "x" * MAX_SETUP_FRAME_BYTES}})
    with pytest.raises(SetupRefused) as refused:
        setup(frame=frame)
    assert refused.value.close_code == 1009
    assert setup(frame=json.dumps({"setup": {"model": "models/gemini-live", "systemInstruction": "x" * 1000}}))


def test_a_duplicated_setup_is_judged_and_forwarded_as_parsers_read_it_the_last_wins() -> None:
    sneaky = '{"setup": {"model": "models/gemini-live"}, "setup": {"model": "models/gemini-pro"}}'
    with pytest.raises(SetupRefused) as refused:
        setup(frame=sneaky)
    assert refused.value.close_code == 1008
    got = setup(frame='{"setup": {"model": "models/gemini-pro"}, "setup": {"model": "models/gemini-live"}}')
    assert json.loads(got.frame) == {"setup": {"model": "models/gemini-live-2.5-flash-preview"}}
    got = setup(frame='{"set\\u0075p": {"model": "models/gemini-live"}}')  # an escaped key is the key it spells
    assert got.model is LIVE


def test_a_refusal_fits_a_close_frame_and_repeats_only_a_short_model_name() -> None:
    with pytest.raises(SetupRefused) as refused:
        setup("models/" + "é" * 500)
    assert len(refused.value.reason.encode()) <= MAX_CLOSE_REASON_BYTES
    assert refused.value.reason.startswith("models/éééé") and "…" in refused.value.reason
    assert close_reason("short") == "short"
    assert len(close_reason("ü" * 200).encode()) <= MAX_CLOSE_REASON_BYTES


def test_a_refusal_in_band_is_what_google_genai_raises_a_client_error_on() -> None:
    refused = SetupRefused(1008, "this key may not use models/x")
    frame = json.loads(refused.error_frame())
    # the SDK reads the top-level code (without it, it fails with a TypeError); message and status
    # from the nested error, Google's REST error shape
    assert frame == {"code": 403, "error": {"code": 403, "message": "this key may not use models/x",
                                            "status": "PERMISSION_DENIED"}}
    assert json.loads(SetupRefused(1007, "bad").error_frame())["error"]["status"] == "INVALID_ARGUMENT"


# -- the gate: a later setup ---------------------------------------------------------------------

def gate(allowed: tuple[str, ...] = ("gemini-live", "gemini-flash")) -> SetupGate:
    policy = ModelPolicy(frozenset({"gemini-live", "gemini-live-2.5-flash-preview"}), lambda n: n in allowed,
                         lambda n: False, lambda n: False)
    made = GEMINI.new_gate(policy)
    assert isinstance(made, SetupGate)
    return made


def judged(frame: bytes) -> bytes:
    """The frame as the relay hands it to the gate: proven audio as it is, anything else parsed."""
    if GEMINI.classify_client(frame) == AUDIO:
        return frame
    parsed = GEMINI.normalize_client(frame)
    assert parsed.payload is not None
    return parsed.payload


@pytest.mark.parametrize(("frame", "code"), [
    (b'{"setup": {"model": "models/gemini-live"}}', 1007),  # the session's own model, again
    (b'{"setup": {"model": "gemini-flash"}}', 1007),  # another model the key may use: still once only
    (b'{"setup": {}}', 1007),
    (b'{"setup": "x"}', 1007),
    (b'{"config": {"model": "models/gemini-live"}}', 1007),
    (b'{"setup": {"model": "models/gemini-pro"}}', 1008),  # a model the key may not use: policy
    (b'{"setup": {"model": "projects/p/locations/l/publishers/google/models/gemini-pro"}}', 1008),
    (b'{"setup": {"model": 7}}', 1008),
    (b'{"setup": {"model": "projects/x"}}', 1008),
    (b'{"clientContent": {"turns": []}, "setup": {"model": "models/gemini-pro"}}', 1008),  # beside another member
    (b'{"setup": {"model": "models/gemini-live"}, "setup": {"model": "models/gemini-pro"}}', 1008),  # duplicated
    (b'{"setup": {"model": "models/gemini-pro"}, "setup": {"model": "models/gemini-live"}}', 1007),
    (b'{"set\\u0075p": {"model": "models/gemini-pro"}}', 1008),  # escaped
    (b'{"\\u0073etup": {}}', 1007),
    (b'{"realtime_input": {"text": "hi"}, "con\\u0066ig": {}}', 1007),
])
def test_every_setup_shaped_frame_is_refused_and_the_model_acl_checked_again(frame: bytes, code: int) -> None:
    g = gate()
    for payload in (frame, judged(frame)):  # raw, and as the relay hands it over
        refused = g.refusal(payload)
        assert refused is not None and refused.close_code == code
        answer = g.check(payload)
        assert answer is not None and json.loads(answer)["error"]["message"] == refused.reason
    if code == 1008:
        assert "may not use" in g.refusal(frame).reason  # type: ignore[union-attr]


@pytest.mark.parametrize("frame", [
    SDK_AUDIO,
    *SDK_FRAMES,
    b'{"clientContent": {"turns": [{"role": "user", "parts": [{"text": "\\"setup\\": {\\"model\\": \\"x\\"}"}]}]}}',
    b'{"clientContent": {"setup": {"model": "models/gemini-pro"}}}',  # not at the top level: not a setup
    b'{"toolResponse": {"functionResponses": [{"id": "a", "response": {"config": 1, "setup": 2}}]}}',
    b'{"Setup": {"model": "models/gemini-pro"}}',  # proto3 JSON names are case-sensitive
    b'[{"setup": {}}]',
    b'{"setup": ',  # not JSON: never forwarded (normalize_client), nothing to refuse here
])
def test_everything_else_passes_the_gate(frame: bytes) -> None:
    assert gate().refusal(frame) is None and gate().check(frame) is None
    assert gate().check_applied(frame) is None


def test_the_gate_parses_only_frames_whose_bytes_could_spell_a_setup(monkeypatch: pytest.MonkeyPatch) -> None:
    from rtproxy.protocols.gemini import gate as gate_module

    parsed: list[bytes] = []

    class Counting:
        @staticmethod
        def loads(payload: bytes) -> Any:
            parsed.append(payload)
            return json.loads(payload)

    monkeypatch.setattr(gate_module, "json", Counting)
    g = gate()
    for frame in SDK_FRAMES:  # no "setup", "config" or \\u escape: no key of them can spell one
        assert g.refusal(frame) is None
    assert parsed == []
    assert g.refusal(b'{"\\u0073etup": {}}') is not None
    assert g.refusal(b'{"clientContent": {"turns": [{"parts": [{"text": "a \\u00e9"}]}]}}') is None
    assert len(parsed) == 2


# -- the protocol value, the in-band error --------------------------------------------------------

def test_the_protocol_value_has_everything_the_relay_asks_of_one() -> None:
    proto: seam.ApiProtocol = GEMINI
    assert proto.name == "gemini"
    assert proto.is_turn_start(server_audio()) is False
    meta = SessionMeta("s", "k", "h", "gemini-live", "local", "gemini-live-2.5", "wss://x", True, None)
    assert isinstance(proto.new_collector(meta), GeminiCollector)


@pytest.mark.parametrize(("code", "error_type", "http", "status"), [
    ("model_not_allowed", "invalid_request_error", 403, "PERMISSION_DENIED"),
    ("budget_exceeded", "invalid_request_error", 429, "RESOURCE_EXHAUSTED"),
    ("server_shutdown", "server_error", 503, "UNAVAILABLE"),
    ("invalid_json", "invalid_request_error", 400, "INVALID_ARGUMENT"),
    ("whatever", "server_error", 503, "UNAVAILABLE"),
    ("whatever", "other", 500, "INTERNAL"),
])
def test_the_error_event_is_googles_error_shape_with_the_code_the_sdk_reads(code: str, error_type: str, http: int,
                                                                            status: str) -> None:
    frame = json.loads(GEMINI.error_event(code, "why", error_type))
    assert frame == {"code": http, "error": {"code": http, "message": "why", "status": status}}
    assert error_event(code, "why", error_type) == GEMINI.error_event(code, "why", error_type)


# -- usageMetadata → usage -------------------------------------------------------------------------

GEMINI_25 = Price(input_text=0.5, input_audio=3.0, cached_text=0.5, cached_audio=3.0, output_text=2.0,
                  output_audio=12.0)


def test_ai_studio_usage_is_split_by_modality_and_priced_at_each_rate() -> None:
    usage = openai_usage({
        "promptTokenCount": 1000, "cachedContentTokenCount": 300, "responseTokenCount": 120,
        "thoughtsTokenCount": 30, "toolUsePromptTokenCount": 20, "totalTokenCount": 1170,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": 400}, {"modality": "AUDIO", "tokenCount": 500},
                                {"modality": "VIDEO", "tokenCount": 60}, {"modality": "IMAGE", "tokenCount": 40}],
        "cacheTokensDetails": [{"modality": "TEXT", "tokenCount": 250}, {"modality": "AUDIO", "tokenCount": 50}],
        "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 100}, {"modality": "TEXT", "tokenCount": 20}],
    })
    assert usage == {
        "input_tokens": 1020, "output_tokens": 150, "total_tokens": 1170,
        "input_token_details": {"text_tokens": 420, "audio_tokens": 500, "image_tokens": 100, "cached_tokens": 300,
                                "cached_tokens_details": {"text_tokens": 250, "audio_tokens": 50, "image_tokens": 0}},
        "output_token_details": {"text_tokens": 50, "audio_tokens": 100},
    }


def test_vertex_usage_names_are_read_as_ai_studios() -> None:
    studio = {"promptTokenCount": 90, "responseTokenCount": 47, "totalTokenCount": 137,
              "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 90}],
              "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 47}]}
    vertex = {"promptTokenCount": 90, "candidatesTokenCount": 47, "totalTokenCount": 137,
              "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 90}],
              "candidatesTokensDetails": [{"modality": "AUDIO", "tokenCount": 47}]}
    snake = {"prompt_token_count": 90, "candidates_token_count": 47, "total_token_count": 137,
             "prompt_tokens_details": [{"modality": "AUDIO", "token_count": 90}],
             "candidates_tokens_details": [{"modality": "AUDIO", "token_count": 47}]}
    assert openai_usage(studio) == openai_usage(vertex) == openai_usage(snake)
    assert openai_usage(vertex)["output_token_details"] == {"text_tokens": 0, "audio_tokens": 47}


def test_native_audio_output_is_never_billed_at_the_text_rate() -> None:
    # LiteLLM PR #38457: 47 audio tokens billed as text, 2.3x under
    usage = openai_usage({"responseTokenCount": 47, "responseTokensDetails": [{"modality": "AUDIO", "tokenCount": 47}]})
    cost, breakdown = price_usage(usage, GEMINI_25)
    assert breakdown is not None and breakdown["output_audio"] == pytest.approx(47 * 12e-6)
    assert cost == pytest.approx(47 * 12e-6)


@pytest.mark.parametrize(("modality", "text", "audio"), [("AUDIO", 0, 40), ("TEXT", 40, 0), ("audio", 0, 40)])
def test_output_the_details_do_not_explain_goes_to_the_sessions_response_modality(modality: str, text: int,
                                                                                    audio: int) -> None:
    usage = openai_usage({"responseTokenCount": 40}, output_modality=modality)
    assert usage["output_token_details"] == {"text_tokens": text, "audio_tokens": audio}


def test_input_the_details_do_not_explain_is_text_and_the_cache_fills_text_first() -> None:
    usage = openai_usage({"promptTokenCount": 100, "cachedContentTokenCount": 80,
                          "promptTokensDetails": [{"modality": "AUDIO", "tokenCount": 60}]})
    assert usage["input_token_details"] == {
        "text_tokens": 40, "audio_tokens": 60, "image_tokens": 0, "cached_tokens": 80,
        "cached_tokens_details": {"text_tokens": 40, "audio_tokens": 40, "image_tokens": 0}}
    assert usage["input_tokens"] == 100 and usage["total_tokens"] == 100  # no total reported: summed


@pytest.mark.parametrize("metadata", [
    {}, {"promptTokenCount": -5}, {"promptTokenCount": True}, {"promptTokenCount": "9"},
    {"promptTokensDetails": "x"}, {"promptTokensDetails": [7, {"modality": 3, "tokenCount": 4}]},
    {"cachedContentTokenCount": 50},  # more cached than prompt: capped
])
def test_odd_usage_never_raises_and_never_counts_more_than_it_says(metadata: dict[str, Any]) -> None:
    usage = openai_usage(metadata)
    details = usage["input_token_details"]
    assert details["cached_tokens"] <= usage["input_tokens"]
    assert usage["input_tokens"] == details["text_tokens"] + details["audio_tokens"] + details["image_tokens"]


def test_an_estimate_uses_geminis_audio_rates_and_the_conversation_so_far() -> None:
    usage = estimate_turn_usage(output_text_chars=9, output_audio_b64_bytes=64_000, input_text_chars=4,
                                input_audio_b64_bytes=42_667,
                                previous={"input_token_details": {"text_tokens": 10, "audio_tokens": 5},
                                          "output_token_details": {"text_tokens": 1, "audio_tokens": 2}})
    # 64,000 b64 bytes = 48,000 PCM bytes = 1 s at 24 kHz = 25 tokens spoken; 42,667 = 1 s at 16 kHz
    # = 32 tokens heard
    assert usage["output_token_details"] == {"text_tokens": 3, "audio_tokens": 25}
    assert usage["input_token_details"]["text_tokens"] == 1 + 10 + 1
    assert usage["input_token_details"]["audio_tokens"] == 33 + 5 + 2  # 1.00002 s rounds up
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    transcript_only = estimate_turn_usage(output_transcript_chars=15)
    assert transcript_only["output_token_details"]["audio_tokens"] == 25  # 15 chars ≈ 1 s of speech


def test_the_package_exports_what_it_lists() -> None:
    from rtproxy.protocols import gemini

    assert sorted(gemini.__all__) == gemini.__all__
    assert all(getattr(gemini, name, None) is not None for name in gemini.__all__)
