"""Ephemeral browser tokens (``ek_…``): short-lived, HMAC-signed by the proxy, no server state.

A token carries its claims — the parent key's name, the one model it opens, its expiry, an
optional end user and an optional session config — and an HMAC-SHA256 over them with the
proxy's signing secret. A token travels in one header line, so it is kept short: a session config
that would make it longer than :data:`MAX_INLINE_TOKEN_CHARS` is kept in the state store instead
(until the token expires) and the token carries a random reference to it (``session_ref``). Verifying needs only the secret, so every worker that shares it accepts
the tokens any of them minted. A token opens a realtime session for its model until it expires
(reuse before then is allowed, as with the provider's own ephemeral keys); it is not a key for
anything else: the REST endpoints do not accept it. Its use is billed to the parent key.

    ek_<base64url(claims JSON)>.<base64url(HMAC-SHA256(secret, "ek1." + claims))>
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

import attrs

TOKEN_PREFIX = "ek_"
_SIGNING_CONTEXT = b"ek1."
#: Default and largest lifetime of a token.
DEFAULT_TTL_S = 60
MAX_TTL_S = 2 * 60 * 60
#: No token is minted or accepted longer than this: it travels in one header line (the realtime
#: listener takes 8 KiB per line; a browser's subprotocol header names ``realtime`` beside it).
MAX_TOKEN_CHARS = 4096
#: A token with its session config inline may be this long; a larger config is stored, by reference.
MAX_INLINE_TOKEN_CHARS = 2048


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@attrs.frozen
class TokenClaims:
    key_name: str
    #: The one model the token opens; ``""``: minted without one (xAI's ``client_secrets`` body
    #: names none), it opens the realtime model the session's URL names, among its key's.
    model: str
    expires_at: int
    issued_at: int
    dialect: str = "ga"
    end_user: str | None = None
    #: Applied with ``session.update`` when the session opens (without ``model``).
    session: dict[str, Any] | None = None
    #: The name the session config is kept under in the state store (instead of ``session``).
    session_ref: str | None = None
    nonce: str = ""
    #: The first hex digits of the minting key's sha256: a token opens nothing once that secret
    #: stops being accepted (the key rotated past its grace period, revoked and made anew).
    key_digest: str = ""


class TokenError(Exception):
    """Why a token was refused; the message is safe to show (it never echoes the token)."""


class TokenSigner:
    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the token signing secret must be at least 16 bytes")
        self._secret = secret

    @classmethod
    def generate(cls) -> TokenSigner:
        return cls(secrets.token_bytes(32))

    def _sign(self, payload: str) -> str:
        return _b64(hmac.new(self._secret, _SIGNING_CONTEXT + payload.encode("ascii"), hashlib.sha256).digest())

    def mint(self, claims: TokenClaims) -> str:
        """The signed token; TokenError if it would be longer than :data:`MAX_TOKEN_CHARS`."""
        token = self.encode(claims)
        if len(token) > MAX_TOKEN_CHARS:
            raise TokenError(f"the session config is too large for a token (max {MAX_TOKEN_CHARS} characters)")
        return token

    def encode(self, claims: TokenClaims) -> str:
        """The signed token, however long (see :meth:`mint`)."""
        body = {"k": claims.key_name, "m": claims.model, "exp": claims.expires_at, "iat": claims.issued_at,
                "d": claims.dialect, "n": claims.nonce or secrets.token_urlsafe(9)}
        if claims.end_user is not None:
            body["u"] = claims.end_user
        if claims.session:
            body["s"] = claims.session
        if claims.session_ref:
            body["r"] = claims.session_ref
        if claims.key_digest:
            body["kd"] = claims.key_digest
        payload = _b64(json.dumps(body, separators=(",", ":")).encode("utf-8"))
        return f"{TOKEN_PREFIX}{payload}.{self._sign(payload)}"

    def verify(self, token: str, *, now: float) -> TokenClaims:
        """The claims of a valid, unexpired token. Raises TokenError."""
        if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_CHARS:
            raise TokenError("not an ephemeral token")
        payload, dot, signature = token[len(TOKEN_PREFIX):].rpartition(".")
        if not dot or not payload:
            raise TokenError("malformed ephemeral token")
        try:
            expected = self._sign(payload)
        except UnicodeEncodeError:
            raise TokenError("malformed ephemeral token") from None
        if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
            raise TokenError("the ephemeral token's signature is not valid")
        try:
            body = json.loads(_unb64(payload))
            claims = TokenClaims(
                key_name=str(body["k"]), model=str(body["m"]), expires_at=int(body["exp"]),
                issued_at=int(body["iat"]), dialect=str(body.get("d", "ga")), end_user=body.get("u"),
                session=body.get("s"), session_ref=body.get("r"), nonce=str(body.get("n", "")),
                key_digest=str(body.get("kd", "")),
            )
            if claims.session_ref is not None and not isinstance(claims.session_ref, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise TokenError("malformed ephemeral token") from None
        if now >= claims.expires_at:
            raise TokenError("the ephemeral token has expired; mint a new one")
        return claims
