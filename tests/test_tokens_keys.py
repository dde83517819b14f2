"""Ephemeral tokens and virtual keys, as values: what a token carries and refuses, how keys are found."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from rtproxy.auth.keys import KEY_HASH_PREFIX_LEN, KeyStore, hash_key
from rtproxy.auth.tokens import (MAX_TOKEN_CHARS, TOKEN_PREFIX, TokenClaims, TokenError, TokenSigner)
from rtproxy.config import parse_config

SECRET = b"a-token-signing-secret-0123"
CLAIMS = TokenClaims("k", "gpt-realtime", expires_at=2_000_000_000, issued_at=1_000, dialect="beta",
                     end_user="visitor-1", session={"instructions": "hi"}, nonce="n0")


def test_a_token_round_trips_every_claim() -> None:
    token = TokenSigner(SECRET).mint(CLAIMS)
    assert token.startswith(TOKEN_PREFIX)
    assert TokenSigner(SECRET).verify(token, now=1_999_999_999) == CLAIMS


def test_a_token_carries_a_session_reference_instead_of_the_config() -> None:
    claims = TokenClaims("k", "m", expires_at=2_000_000_000, issued_at=1, session_ref="ref-123")
    got = TokenSigner(SECRET).verify(TokenSigner(SECRET).mint(claims), now=2)
    assert got.session_ref == "ref-123" and got.session is None


def test_a_token_expires_at_its_second() -> None:
    token = TokenSigner(SECRET).mint(CLAIMS)
    TokenSigner(SECRET).verify(token, now=1_999_999_999.9)
    with pytest.raises(TokenError, match="expired"):
        TokenSigner(SECRET).verify(token, now=2_000_000_000)


def test_a_token_signed_with_another_secret_is_refused() -> None:
    token = TokenSigner(SECRET).mint(CLAIMS)
    with pytest.raises(TokenError, match="signature"):
        TokenSigner(b"another-secret-0123456789").verify(token, now=0)


def _forge(payload: dict, signer: TokenSigner | None = None) -> str:  # type: ignore[type-arg]
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).rstrip(b"=").decode()
    sig = (signer or TokenSigner(SECRET))._sign(body)
    return f"{TOKEN_PREFIX}{body}.{sig}"


@pytest.mark.parametrize("token", [
    "ek_", "ek_.", "ek_abc", "ek_abc.", "sk_abc.def", "ek_" + "a" * (MAX_TOKEN_CHARS + 1),
    "ek_é.x",
])
def test_malformed_tokens_are_refused_without_echoing_them(token: str) -> None:
    with pytest.raises(TokenError) as info:
        TokenSigner(SECRET).verify(token, now=0)
    assert token[3:] not in str(info.value) or len(token) <= 4


@pytest.mark.parametrize("payload", [
    {"m": "x", "exp": 9, "iat": 1},                       # no key
    {"k": "k", "exp": 9, "iat": 1},                       # no model
    {"k": "k", "m": "x", "exp": "soon", "iat": 1},        # not a time
    {"k": "k", "m": "x", "exp": 2_000_000_000, "iat": 1, "r": 5},  # a reference that is no string
])
def test_a_signed_token_with_bad_claims_is_refused(payload: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(TokenError, match="malformed"):
        TokenSigner(SECRET).verify(_forge(payload), now=0)


def test_tokens_longer_than_a_header_line_allows_are_not_minted() -> None:
    big = TokenClaims("k", "m", expires_at=2_000_000_000, issued_at=1, session={"instructions": "x" * MAX_TOKEN_CHARS})
    with pytest.raises(TokenError, match="too large"):
        TokenSigner(SECRET).mint(big)
    assert len(TokenSigner(SECRET).encode(big)) > MAX_TOKEN_CHARS  # encode alone does not check


def test_a_signing_secret_is_at_least_16_bytes() -> None:
    with pytest.raises(ValueError):
        TokenSigner(b"short")
    assert TokenSigner.generate().mint(CLAIMS) != TokenSigner.generate().mint(CLAIMS)


def test_every_token_gets_its_own_nonce() -> None:
    claims = TokenClaims("k", "m", expires_at=2_000_000_000, issued_at=1)
    signer = TokenSigner(SECRET)
    a, b = signer.mint(claims), signer.mint(claims)
    assert a != b and signer.verify(a, now=2).nonce != signer.verify(b, now=2).nonce


# -- keys ---------------------------------------------------------------------------------------

def keystore(tmp_path: Path, *keys: dict) -> KeyStore:  # type: ignore[type-arg]
    cfg = parse_config({"models": [{"name": "m", "provider": "local"}, {"name": "n", "provider": "local"}],
                        "keys": list(keys)}, base_dir=tmp_path)
    return KeyStore.from_config(cfg)


def test_keys_are_found_by_their_value_and_known_only_by_their_hash(tmp_path: Path) -> None:
    store = keystore(tmp_path, {"name": "a", "key": "key-a-0123456789abcdef", "models": ["m"]},
                     {"name": "b", "key_sha256": hash_key("key-b-0123456789abcdef"), "role": "admin"})
    a, b = store.lookup("key-a-0123456789abcdef"), store.lookup("key-b-0123456789abcdef")
    assert a is not None and b is not None and (a.name, b.name) == ("a", "b")
    assert store.lookup("key-c-0123456789abcdef") is None and store.lookup("") is None
    assert a.sha256 == hash_key("key-a-0123456789abcdef") and a.hash_prefix == a.sha256[:KEY_HASH_PREFIX_LEN]
    assert len(a.hash_prefix) == 12 and "key-a" not in repr(a)
    assert not a.is_admin and b.is_admin
    assert a.allows_model("m") and not a.allows_model("n") and b.allows_model("n")
    assert store.by_name("b") is b and store.by_name("nope") is None
    assert [k.name for k in store] == ["a", "b"]


def test_hash_key_is_the_hex_sha256() -> None:
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_an_auto_key_is_generated_once_kept_0600_and_reused(tmp_path: Path) -> None:
    first = keystore(tmp_path, {"name": "dev", "key": "auto"})
    [gen] = first.generated
    assert gen.value.startswith("rtp-") and len(gen.value) > 40
    assert stat.S_IMODE(gen.path.stat().st_mode) == 0o600
    assert first.lookup(gen.value) is not None
    again = keystore(tmp_path, {"name": "dev", "key": "auto"})
    assert again.generated[0].value == gen.value
