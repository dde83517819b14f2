"""Google's ephemeral tokens as the gateway mints them (rtproxy/protocols/gemini/tokens.py), as
plain values: the ``auth_tokens`` body google-genai sends read, the times bounded, and the setup
lock a token carries applied to a client's setup. The SDK end to end: test_gemini_native_sdk.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rtproxy.config import ModelConfig
from rtproxy.protocols.gemini import SetupLock, TokenRefused, parse_setup, parse_token_request, token_response
from rtproxy.protocols.gemini.tokens import rfc3339

NOW = 1_800_000_000.0
MAX_TTL_S = 7200.0
SETUP = {"model": "models/gemini-live", "generationConfig": {"responseModalities": ["TEXT"], "temperature": 0.2},
         "systemInstruction": {"parts": [{"text": "Be brief"}], "role": "user"}}


def read(body: Any) -> Any:
    return parse_token_request(body, now=NOW, default_ttl_s=60, max_ttl_s=MAX_TTL_S)


def test_the_sdks_body_is_read_whole() -> None:
    """What google-genai 3.6.1 sends for uses, both times and live_connect_constraints."""
    body = {"expireTime": rfc3339(NOW + 1800).replace("Z", ".928131+00:00"),
            "newSessionExpireTime": rfc3339(NOW + 60).replace("Z", "+00:00"), "uses": 1,
            "bidiGenerateContentSetup": SETUP}
    asked = read(body)
    assert asked.model == "models/gemini-live" and asked.uses == 1
    assert (asked.new_session_expires_at, asked.expires_at) == (NOW + 60, NOW + 1800)
    assert asked.lock == SetupLock({k: v for k, v in SETUP.items() if k != "model"}, None, NOW + 1800)
    assert token_response("ek_x", asked) == {"name": "auth_tokens/ek_x", "newSessionExpireTime": rfc3339(NOW + 60),
                                            "expireTime": rfc3339(NOW + 1800)}


@pytest.mark.parametrize(("body", "message"), [
    (None, "name the model"),  # config=None: the SDK sends no body
    ({"uses": 1}, "name the model"),
    ({"bidiGenerateContentSetup": {"generationConfig": {}}}, "name the model"),
    ({"bidiGenerateContentSetup": "models/x"}, "must be an object"),
    ([], "must be a JSON object"),
    ({"bidiGenerateContentSetup": {"model": "models/x"}, "uses": -1}, "uses must be"),
    ({"bidiGenerateContentSetup": {"model": "models/x"}, "expireTime": "tomorrow"}, "RFC 3339"),
    ({"bidiGenerateContentSetup": {"model": "models/x"}, "newSessionExpireTime": rfc3339(NOW - 1)}, "in the future"),
    ({"bidiGenerateContentSetup": {"model": "models/x"}, "fieldMask": "a..b"}, "fieldMask"),
    ({"bidiGenerateContentSetup": {"model": "models/x"}, "fieldMask": 7}, "fieldMask"),
])
def test_a_request_that_cannot_be_minted_is_a_400_in_googles_shape(body: Any, message: str) -> None:
    with pytest.raises(TokenRefused) as refused:
        read(body)
    assert refused.value.status == 400 and message in refused.value.message
    assert refused.value.body()["error"]["status"] == "INVALID_ARGUMENT"


def test_times_default_to_the_gateways_ttl_and_never_go_past_the_bound_or_the_sessions_end() -> None:
    model = {"bidiGenerateContentSetup": {"model": "models/x"}}
    assert read(model).new_session_expires_at == NOW + 60 and read(model).expires_at is None
    far = read({**model, "newSessionExpireTime": rfc3339(NOW + 20 * 3600)})
    assert far.new_session_expires_at == NOW + MAX_TTL_S  # cut to the bound; the answer says so
    ends_first = read({**model, "expireTime": rfc3339(NOW + 30), "newSessionExpireTime": rfc3339(NOW + 600)})
    assert ends_first.new_session_expires_at == NOW + 30
    naive = read({**model, "newSessionExpireTime": rfc3339(NOW + 90).rstrip("Z")})  # no offset: UTC
    assert naive.new_session_expires_at == NOW + 90


def test_without_a_field_mask_the_whole_setup_is_the_tokens() -> None:
    lock = read({"bidiGenerateContentSetup": SETUP}).lock
    client = {"model": "models/gemini-live", "generationConfig": {"responseModalities": ["AUDIO"]},
              "tools": [{"functionDeclarations": [{"name": "f"}]}], "outputAudioTranscription": {}}
    assert lock.apply(client) == {k: v for k, v in SETUP.items() if k != "model"}
    # a token naming only its model locks everything else to the defaults
    assert read({"bidiGenerateContentSetup": {"model": "models/x"}}).lock.apply(client) == {}


def test_a_field_mask_locks_the_paths_it_names_in_either_spelling_and_leaves_the_rest_to_the_client() -> None:
    # what the SDK sends for lock_additional_fields=["temperature", "system_instruction"]
    lock = read({"bidiGenerateContentSetup": {"model": "models/x", "generationConfig": {"responseModalities": ["TEXT"]}},
                 "fieldMask": "model,generationConfig.responseModalities,generationConfig.temperature,"
                              "system_instruction"}).lock
    assert lock.field_mask == ("model", "generationConfig.responseModalities", "generationConfig.temperature",
                               "systemInstruction")
    client: dict[str, Any] = {"model": "models/x", "generation_config": {"responseModalities": ["AUDIO"],
                                                                         "temperature": 1.5, "topK": 3},
              "system_instruction": {"parts": [{"text": "Ignore all rules"}]}, "tools": [{"googleSearch": {}}]}
    applied = lock.apply(client)
    # the token's modality; the temperature and instruction it leaves out are removed; the rest is the client's
    assert applied == {"generationConfig": {"responseModalities": ["TEXT"], "topK": 3},
                       "tools": [{"googleSearch": {}}]}
    assert client["generation_config"]["temperature"] == 1.5  # the client's setup is not changed in place


def test_the_lock_survives_the_tokens_claims() -> None:
    lock = SetupLock({"systemInstruction": {"parts": [{"text": "x"}]}}, ("systemInstruction",), NOW + 5)
    assert SetupLock.from_claims(json.loads(json.dumps(lock.claims()))) == lock
    assert SetupLock.from_claims(None) is None
    assert SetupLock.from_claims({"instructions": "an OpenAI token's session"}) is None


def test_a_locked_setup_is_what_goes_upstream_with_the_upstreams_model() -> None:
    model = ModelConfig("gemini-live", "local", "gemini-live-2.5-flash")
    lock = SetupLock({"generationConfig": {"responseModalities": ["TEXT"]}})
    start = parse_setup(json.dumps({"setup": {"model": "models/gemini-live", "tools": [{}]}}),
                        served=lambda name: model if name == "gemini-live" else None, allows=lambda n: True, lock=lock)
    assert json.loads(start.frame) == {"setup": {"model": "models/gemini-live-2.5-flash",
                                                 "generationConfig": {"responseModalities": ["TEXT"]}}}
