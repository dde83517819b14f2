"""Ephemeral tokens to the byte: the encoding, the signature (against hashlib itself), every
bound at its edge, and each refusal's exact words."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import attrs
import pytest

from rtproxy.auth.tokens import (
    MAX_TOKEN_CHARS,
    TokenClaims,
    TokenError,
    TokenSigner,
    _b64,
    _unb64,
)

SECRET = b"0123456789abcdef"  # 16 bytes: the shortest secret allowed
CLAIMS = TokenClaims(key_name="user", model="gpt-realtime", expires_at=2_000_000_000, issued_at=1_999_999_940,
                     nonce="n1")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def test_base64url_drops_and_restores_its_padding() -> None:
    assert _b64(b"\xfb\xff") == "-_8" and _unb64("-_8") == b"\xfb\xff"
    assert _b64(b"a") == "YQ" and _unb64("YQ") == b"a"
    assert _b64(b"abc") == "YWJj" and _unb64("YWJj") == b"abc"
    assert isinstance(_b64(b"a"), str)


def test_a_secret_is_at_least_16_bytes_and_a_generated_one_is_32() -> None:
    TokenSigner(SECRET)
    with pytest.raises(ValueError, match="^the token signing secret must be at least 16 bytes$"):
        TokenSigner(SECRET[:15])
    assert len(TokenSigner.generate()._secret) == 32
    assert TokenSigner.generate()._secret != TokenSigner.generate()._secret


def test_the_token_is_its_compact_claims_and_an_hmac_over_the_context_and_them() -> None:
    token = TokenSigner(SECRET).encode(CLAIMS)
    body = {"k": "user", "m": "gpt-realtime", "exp": 2_000_000_000, "iat": 1_999_999_940, "d": "ga", "n": "n1"}
    payload = b64(json.dumps(body, separators=(",", ":")).encode())
    signature = b64(hmac.new(SECRET, b"ek1." + payload.encode(), hashlib.sha256).digest())
    assert token == f"ek_{payload}.{signature}"


def test_optional_claims_travel_only_when_set() -> None:
    signer = TokenSigner(SECRET)
    full = TokenClaims(key_name="k", model="m", expires_at=10, issued_at=5, dialect="beta", end_user="u1",
                       session={"voice": "marin"}, session_ref=None, nonce="x")
    payload = signer.encode(full)[3:].rsplit(".", 1)[0]
    assert json.loads(_unb64(payload)) == {"k": "k", "m": "m", "exp": 10, "iat": 5, "d": "beta", "n": "x", "u": "u1",
                                           "s": {"voice": "marin"}}
    by_ref = TokenClaims(key_name="k", model="m", expires_at=10, issued_at=5, session_ref="ref1", nonce="x")
    payload = signer.encode(by_ref)[3:].rsplit(".", 1)[0]
    assert json.loads(_unb64(payload)) == {"k": "k", "m": "m", "exp": 10, "iat": 5, "d": "ga", "n": "x", "r": "ref1"}
    assert signer.verify(signer.encode(full), now=6) == full
    assert signer.verify(signer.encode(by_ref), now=6) == by_ref


def test_a_token_without_a_nonce_gets_a_fresh_one_each_time() -> None:
    signer = TokenSigner(SECRET)
    claims = TokenClaims(key_name="k", model="m", expires_at=10, issued_at=5)
    first, second = signer.encode(claims), signer.encode(claims)
    assert first != second
    nonce = signer.verify(first, now=6).nonce
    assert len(nonce) == 12  # token_urlsafe(9): 9 bytes, 12 characters


def test_a_token_of_the_longest_length_is_minted_and_one_character_more_is_not() -> None:
    signer = TokenSigner(SECRET)

    def claims_of(length: int) -> TokenClaims:
        return TokenClaims(key_name="k", model="m", expires_at=10, issued_at=5, nonce="x",
                           session={"i": "a" * length})

    base = len(signer.encode(claims_of(0)))
    # each 3 characters of payload JSON add 4 of base64: find a config of exactly the bound
    fitting = next(n for n in range(MAX_TOKEN_CHARS, 0, -1) if len(signer.encode(claims_of(n))) <= MAX_TOKEN_CHARS)
    assert base < MAX_TOKEN_CHARS and len(signer.mint(claims_of(fitting))) <= MAX_TOKEN_CHARS
    exact = [n for n in range(fitting - 4, fitting + 1) if len(signer.encode(claims_of(n))) == MAX_TOKEN_CHARS]
    if exact:
        assert len(signer.mint(claims_of(exact[0]))) == MAX_TOKEN_CHARS
    with pytest.raises(TokenError, match=r"^the session config is too large for a token \(max 4096 characters\)$"):
        signer.mint(claims_of(fitting + 3))


def test_a_token_is_valid_until_the_second_it_expires() -> None:
    signer = TokenSigner(SECRET)
    token = signer.encode(CLAIMS)
    assert signer.verify(token, now=CLAIMS.expires_at - 0.001) == CLAIMS
    with pytest.raises(TokenError, match="^the ephemeral token has expired; mint a new one$"):
        signer.verify(token, now=CLAIMS.expires_at)


def sign(payload: str, secret: bytes = SECRET) -> str:
    return b64(hmac.new(secret, b"ek1." + payload.encode(), hashlib.sha256).digest())


@pytest.mark.parametrize("token, message", [
    ("sk-nope", "not an ephemeral token"),
    ("ek_" + "a" * (MAX_TOKEN_CHARS - 2), "not an ephemeral token"),
    ("ek_abc", "malformed ephemeral token"),
    ("ek_.sig", "malformed ephemeral token"),
    ("ek_é.sig", "malformed ephemeral token"),
    ("ek_abc.def", "the ephemeral token's signature is not valid"),
    ("ek_abc." + sign("abc", b"another-secret-16"), "the ephemeral token's signature is not valid"),
    ("ek_abc." + sign("abc"), "malformed ephemeral token"),  # signed, but not base64 JSON claims
    ("ek_" + b64(b'{"k":"u"}') + "." + sign(b64(b'{"k":"u"}')), "malformed ephemeral token"),  # claims missing
    ("ek_" + b64(b'{"k":"u","m":"m","exp":"x","iat":1}') + "." + sign(b64(b'{"k":"u","m":"m","exp":"x","iat":1}')),
     "malformed ephemeral token"),
    ("ek_" + b64(b'{"k":"u","m":"m","exp":9,"iat":1,"r":7}') + "."
     + sign(b64(b'{"k":"u","m":"m","exp":9,"iat":1,"r":7}')), "malformed ephemeral token"),
    ("ek_" + b64(b"[1]") + "." + sign(b64(b"[1]")), "malformed ephemeral token"),
])
def test_each_refused_token_says_exactly_why_without_echoing_it(token: str, message: str) -> None:
    with pytest.raises(TokenError) as refused:
        TokenSigner(SECRET).verify(token, now=0)
    assert str(refused.value) == message


def test_a_token_as_long_as_the_bound_is_read() -> None:
    token = "ek_" + "a" * (MAX_TOKEN_CHARS - 3)
    with pytest.raises(TokenError, match="^malformed ephemeral token$"):  # read, then found without a dot
        TokenSigner(SECRET).verify(token, now=0)


def test_claims_without_a_dialect_or_nonce_read_as_ga_and_empty() -> None:
    body = b64(b'{"k":"u","m":"m","exp":9,"iat":1}')
    claims = TokenSigner(SECRET).verify(f"ek_{body}.{sign(body)}", now=0)
    assert claims == TokenClaims(key_name="u", model="m", expires_at=9, issued_at=1, dialect="ga", nonce="")


# -- virtual keys ----------------------------------------------------------------------------------


def test_a_key_is_stored_as_its_sha256_and_shown_by_a_12_digit_prefix(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rtproxy.auth.keys import KEY_HASH_PREFIX_LEN, KeyStore, hash_key

    from .conftest import make_config

    assert hash_key("sk-é") == hashlib.sha256("sk-é".encode()).hexdigest() and KEY_HASH_PREFIX_LEN == 12
    cfg = make_config(tmp_path, keys=[
        {"name": "a", "key": "rtp-aaaaaaaaaaaaaaaa", "models": ["gpt-realtime"], "max_budget_usd": 2.5, "max_sessions": 3,
         "max_sessions_per_minute": 4, "store_prompts": False, "transcription_models": ["t"],
         "delegation_models": ["d"]},
        {"name": "b", "key_sha256": hash_key("rtp-bbbbbbbbbbbbbbbb"), "role": "admin"},
    ])
    store = KeyStore.from_config(cfg)
    a, b = list(store)
    assert (a.name, a.sha256, a.models, a.role, a.max_budget_usd, a.max_sessions, a.max_sessions_per_minute,
            a.store_prompts, a.transcription_models, a.delegation_models) == (
        "a", hash_key("rtp-aaaaaaaaaaaaaaaa"), ("gpt-realtime",), "user", 2.5, 3, 4, False, ("t",), ("d",))
    assert a.hash_prefix == hash_key("rtp-aaaaaaaaaaaaaaaa")[:12] and not a.is_admin and b.is_admin
    assert (store.lookup("rtp-aaaaaaaaaaaaaaaa"), store.lookup("rtp-bbbbbbbbbbbbbbbb"), store.lookup("rtp-cccccccccccccccc")) == (a, b, None)
    assert store.by_name("b") is b and store.by_name("c") is None
    assert store.generated == []
    assert (a.allows_model("gpt-realtime"), a.allows_model("m2"), b.allows_model("anything")) == (True, False, True)
    assert (a.allows_transcription_model("t"), a.allows_transcription_model("u")) == (True, False)
    assert (a.allows_delegation_model("d"), a.allows_delegation_model("e")) == (True, False)
    assert "rtp-aaaaaaaaaaaaaaaa" not in repr(a) and hash_key("rtp-aaaaaaaaaaaaaaaa") not in repr(a)


def test_a_presented_key_that_is_not_utf8_is_looked_up_not_crashed_on(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from rtproxy.auth.keys import KeyStore

    from .conftest import make_config

    store = KeyStore.from_config(make_config(tmp_path, keys=[{"name": "a", "key": "rtp-aaaaaaaaaaaaaaaa"}]))
    assert store.lookup("rtp-aaaaaaaaaaaaaaa\udcff") is None


def test_an_auto_key_is_generated_once_kept_0600_and_read_back(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import os
    import stat

    from rtproxy.auth.keys import KeyStore, _load_or_create_auto_key, hash_key

    from .conftest import make_config

    cfg = make_config(tmp_path, server={"state_dir": str(tmp_path / "state")},
                      keys=[{"name": "local", "key": "auto"}])
    first = KeyStore.from_config(cfg)
    (generated,) = first.generated
    assert generated.name == "local" and generated.path == tmp_path / "state" / "local.key"
    assert generated.value.startswith("rtp-") and len(generated.value) == 4 + 43
    assert generated.path.read_text() == generated.value + "\n"
    assert stat.S_IMODE(os.stat(generated.path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    assert list(first)[0].sha256 == hash_key(generated.value)
    again = KeyStore.from_config(cfg)
    assert again.generated[0].value == generated.value and generated.value not in repr(generated)
    generated.path.write_text("\n")  # emptied: a new key is not written over it (O_EXCL), the file is read
    assert _load_or_create_auto_key(tmp_path / "state", "local") == ("", generated.path)
    assert _load_or_create_auto_key(tmp_path / "state", "other")[1] == tmp_path / "state" / "other.key"


# -- found by the mutation run (2026-12-02) ---------------------------------------------------------

def test_the_encoding_keeps_a_trailing_x() -> None:
    # only padding is stripped: a payload whose base64 ends in "X" must come back whole
    assert _b64(b"\x00\x00\x17") == "AAAX" and _unb64("AAAX") == b"\x00\x00\x17"


def test_the_longest_token_under_the_limit_is_minted_and_the_next_is_not() -> None:
    # "ek_" + payload + "." + 43 signature characters, and unpadded base64 is never 1 more than a
    # multiple of 4 long: a token is never exactly MAX_TOKEN_CHARS (4096) long
    signer = TokenSigner(SECRET)
    lengths = {}
    for pad in range(2800, 3100):
        claims = attrs.evolve(CLAIMS, session={"p": "x" * pad})
        lengths.setdefault(len(signer.encode(claims)), claims)
    assert MAX_TOKEN_CHARS not in lengths
    below, over = lengths[MAX_TOKEN_CHARS - 1], lengths[MAX_TOKEN_CHARS + 1]
    assert len(signer.mint(below)) == MAX_TOKEN_CHARS - 1
    assert signer.verify(signer.mint(below), now=CLAIMS.issued_at).session == below.session
    with pytest.raises(TokenError, match=f"max {MAX_TOKEN_CHARS} characters"):
        signer.mint(over)


@pytest.mark.parametrize(("token", "message"), [
    ("ek_.x.y", "the ephemeral token's signature is not valid"),  # the signature is after the last dot
    ("ek_x.", "the ephemeral token's signature is not valid"),
    ("ek_.x", "malformed ephemeral token"),
])
def test_the_signature_is_what_follows_the_last_dot(token: str, message: str) -> None:
    with pytest.raises(TokenError) as info:
        TokenSigner(SECRET).verify(token, now=0)
    assert str(info.value) == message


def test_a_signature_with_a_lone_surrogate_is_refused_not_a_crash() -> None:
    signer = TokenSigner(SECRET)
    good = signer.mint(CLAIMS)
    with pytest.raises(TokenError) as info:
        signer.verify(good[:-1] + "\udc80", now=CLAIMS.issued_at)
    assert str(info.value) == "the ephemeral token's signature is not valid"


def test_a_key_allows_every_delegation_model_by_default() -> None:
    from rtproxy.auth.keys import VirtualKey
    key = VirtualKey("k", "0" * 64, ("*",), "user", None, None, None, None)
    assert key.allows_delegation_model("gpt-5") and key.allows_transcription_model("whisper-1")
    only = VirtualKey("k", "0" * 64, ("*",), "user", None, None, None, None, delegation_models=("gpt-5",))
    assert only.allows_delegation_model("gpt-5") and not only.allows_delegation_model("gpt-4.1")


def test_a_generated_key_is_kept_in_a_state_dir_created_with_its_parents(tmp_path: Any) -> None:
    from rtproxy.auth.keys import _load_or_create_auto_key
    state = tmp_path / "a" / "b" / "state"
    value, path = _load_or_create_auto_key(state, "ops")
    assert path == state / "ops.key" and value.startswith("rtp-") and path.read_text() == value + "\n"
    assert _load_or_create_auto_key(state, "ops") == (value, path)  # read back, not replaced
