"""Google's ephemeral tokens (``auth_tokens``) as the gateway mints them for google-genai clients
(protocol/gemini-live.md §1.3, §9). Sans-IO: a request body in, what to mint (or why not) out;
a client's setup and the token's lock in, the setup to admit out.

google-genai's ``client.auth_tokens.create(config=…)`` POSTs to ``{base_url}/{api_version}/auth_tokens``
with the API key in ``x-goog-api-key`` and this body (every member optional; no body at all when
``config`` is None)::

    {"expireTime": "2026-01-01T10:30:00.123456+00:00",      # sessions end then
     "newSessionExpireTime": "2026-01-01T10:01:00+00:00",   # no session opens after it
     "uses": 1,
     "bidiGenerateContentSetup": {"model": "models/<id>", "generationConfig": {…}, …},
     "fieldMask": "model,generationConfig.responseModalities,systemInstruction"}

and reads back ``{"name": "auth_tokens/…", …}``; ``name`` is the credential, which makes the SDK
take the ``…BidiGenerateContentConstrained`` path. The gateway's token is its own ``ek_`` token
(:mod:`rtproxy.auth.tokens`) for the setup's model, carried as ``auth_tokens/ek_…``.

**The lock** (the SDK's documented cases): with a setup and no ``fieldMask``, the whole setup is
the token's: whatever the client's own setup says is ignored (a field the token leaves out is
locked to its default). With a ``fieldMask``, only the paths it lists are the token's (a listed
path the token leaves out is removed from the client's setup); the client sets the rest. The
model is the token's either way: a session names it, or is refused.

**Times.** ``newSessionExpireTime`` is the ``ek_`` token's expiry (default ``default_ttl_s``; never
past ``expireTime``; at most ``max_ttl_s`` ahead, cut to it otherwise: the answer says the time in
force). ``expireTime`` ends every session opened with the token (with 1008, as the gateway ends a
session at its maximum duration). ``uses`` is read and not enforced: a gateway token opens sessions
until it expires, as its ``ek_`` tokens do.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import attrs

from ...auth.admission import GEMINI_TOKEN_PREFIX
from .frames import field, snake

#: What a token's ``session`` claim holds (:meth:`SetupLock.claims`): the locked setup, without
#: its model, and the field mask (None: the whole setup is locked).
_SETUP, _MASK, _ENDS = "setup", "fieldMask", "expireTime"
#: Paths a field mask may name: dotted lowerCamel or snake_case names.
_MASK_PATH = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}(?:\.[A-Za-z][A-Za-z0-9_]{0,63}){0,7}$")
MAX_MASK_PATHS = 64
_UNDERSCORED = re.compile(r"_([a-z0-9])")


def camel(name: str) -> str:
    """``system_instruction`` → ``systemInstruction`` (a camelCase name is returned as it is)."""
    return _UNDERSCORED.sub(lambda m: m.group(1).upper(), name)


@attrs.frozen
class TokenRefused(Exception):
    """Why no token is minted: an HTTP status and Google's status name, with a message."""

    status: int
    google_status: str
    message: str

    def body(self) -> dict[str, Any]:
        """Google's REST error shape, which google-genai raises ``ClientError`` from."""
        return {"error": {"code": self.status, "message": self.message, "status": self.google_status}}


def _bad(message: str) -> TokenRefused:
    return TokenRefused(400, "INVALID_ARGUMENT", message)


@attrs.frozen
class SetupLock:
    """What a Gemini token fixes of the sessions it opens (see the module docstring)."""

    #: The token's setup, without ``model``.
    setup: dict[str, Any]
    #: The locked paths, lowerCamel and dotted; None: the whole setup.
    field_mask: tuple[str, ...] | None = None
    #: Unix time every session opened with the token ends (``expireTime``); None: no end of its own.
    session_ends_at: float | None = None

    def claims(self) -> dict[str, Any]:
        """The token's ``session`` claim."""
        out: dict[str, Any] = {_SETUP: self.setup}
        if self.field_mask is not None:
            out[_MASK] = list(self.field_mask)
        if self.session_ends_at is not None:
            out[_ENDS] = self.session_ends_at
        return out

    @classmethod
    def from_claims(cls, session: Any) -> SetupLock | None:
        """The lock a token's ``session`` claim holds; None when it holds none (a token minted
        for OpenAI clients)."""
        if not isinstance(session, dict) or not isinstance(session.get(_SETUP), dict):
            return None
        mask = session.get(_MASK)
        ends = session.get(_ENDS)
        return cls(session[_SETUP], tuple(str(p) for p in mask) if isinstance(mask, list) else None,
                   float(ends) if isinstance(ends, (int, float)) and not isinstance(ends, bool) else None)

    def apply(self, setup: dict[str, Any]) -> dict[str, Any]:
        """The setup a session opens with: the client's, with what the token locks (``model``
        is the caller's business)."""
        if self.field_mask is None:
            return {k: v for k, v in self.setup.items() if k != "model"}
        out = {k: v for k, v in setup.items() if k != "model"}
        for path in self.field_mask:
            names = path.split(".")
            if names[0] == "model":
                continue
            _put(out, names, _get(self.setup, names))
        return out


_ABSENT = object()


def _get(obj: Any, names: list[str]) -> Any:
    for name in names:
        if not isinstance(obj, dict) or (name not in obj and snake(name) not in obj):
            return _ABSENT
        obj = field(obj, name)
    return obj


def _put(obj: dict[str, Any], names: list[str], value: Any) -> None:
    """Set (or, for ``_ABSENT``, remove) ``names`` in ``obj``, both spellings of each name read,
    the lowerCamel one written; objects on the way are copied, never shared with the token."""
    head, rest = names[0], names[1:]
    current = field(obj, head)
    obj.pop(snake(head), None)
    obj.pop(head, None)
    if not rest:
        if value is not _ABSENT:
            obj[head] = value
        return
    child = dict(current) if isinstance(current, dict) else {}
    _put(child, rest, value)
    if child or isinstance(current, dict):
        obj[head] = child


@attrs.frozen
class TokenRequest:
    """An ``auth_tokens`` request, read: what to mint."""

    #: The model as the request names it (``models/{id}`` or a bare id).
    model: str
    lock: SetupLock
    #: Unix times: the ``ek_`` token's expiry, and when its sessions end (None: no end of its own).
    new_session_expires_at: int
    expires_at: int | None
    uses: int | None


def _time(body: dict[str, Any], name: str, now: float) -> int | None:
    raw = field(body, name)
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise _bad(f"{name} must be an RFC 3339 time, e.g. 2026-01-01T10:00:00Z")
    try:
        when = datetime.fromisoformat(raw.strip())
    except ValueError:
        raise _bad(f"{name} must be an RFC 3339 time, e.g. 2026-01-01T10:00:00Z") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = int(when.timestamp())
    if seconds <= now:
        raise _bad(f"{name} must be in the future")
    return seconds


def _field_mask(raw: Any) -> tuple[str, ...] | None:
    if raw is None:
        return None
    paths = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise _bad("fieldMask must be a comma-separated list of field paths")
    cleaned = [p.strip() for p in paths if p.strip()]
    if len(cleaned) > MAX_MASK_PATHS or not all(_MASK_PATH.match(p) for p in cleaned):
        raise _bad(f"fieldMask must list at most {MAX_MASK_PATHS} field paths (names joined by '.')")
    return tuple(".".join(camel(n) for n in p.split(".")) for p in cleaned)


def parse_token_request(body: Any, *, now: float, default_ttl_s: float, max_ttl_s: float) -> TokenRequest:
    """Read an ``auth_tokens`` body (None or ``{}`` for none); raises :class:`TokenRefused`."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise _bad("the body must be a JSON object")
    setup = field(body, "bidiGenerateContentSetup")
    if setup is not None and not isinstance(setup, dict):
        raise _bad("bidiGenerateContentSetup must be an object")
    model = field(setup, "model")
    if not isinstance(model, str) or not model:
        raise _bad("name the model the token opens: bidiGenerateContentSetup.model (google-genai: "
                   "config.live_connect_constraints.model); a gateway token opens one model")
    uses = field(body, "uses")
    if uses is not None and (not isinstance(uses, int) or isinstance(uses, bool) or uses < 0):
        raise _bad("uses must be a whole number, 0 or more")
    expires_at = _time(body, "expireTime", now)
    asked = _time(body, "newSessionExpireTime", now)
    new_session = asked if asked is not None else int(now + default_ttl_s)
    if expires_at is not None:
        new_session = min(new_session, expires_at)
    new_session = min(new_session, int(now + max_ttl_s))
    assert setup is not None
    lock = SetupLock({k: v for k, v in setup.items() if k != "model"}, _field_mask(field(body, "fieldMask")),
                     float(expires_at) if expires_at is not None else None)
    return TokenRequest(model, lock, new_session, expires_at, uses)


def rfc3339(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def token_response(token: str, request: TokenRequest) -> dict[str, Any]:
    """The answer google-genai reads (``types.AuthToken``): the credential in ``name``, and the
    times in force."""
    out: dict[str, Any] = {"name": GEMINI_TOKEN_PREFIX + token,
                           "newSessionExpireTime": rfc3339(request.new_session_expires_at)}
    if request.expires_at is not None:
        out["expireTime"] = rfc3339(request.expires_at)
    return out
