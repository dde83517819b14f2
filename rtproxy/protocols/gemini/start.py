"""Gemini Live admission from the first frame: the model arrives in ``setup.model``, never in the
URL (protocol/gemini-live.md §1, §3.1, §9). Sans-IO: the client's first frame and the key's
permissions in, the setup to send upstream (or why not) out.

The first frame must be ``{"setup": {…}}`` alone (a client message holds exactly one member),
with ``setup.model`` in one of the forms clients send: ``models/{id}`` (AI Studio; google-genai
adds the prefix), a bare ``{id}``, ``publishers/google/models/{id}`` (Vertex express) or
``projects/{p}/locations/{l}/publishers/google/models/{id}`` (Vertex). The id must be a model
the gateway serves (``served``) and the key may use (``allows``); ``setup.model`` is then
rewritten to the upstream's name for it (``upstream_model``: AI Studio wants ``models/{id}``,
Vertex a full resource name). Everything else in the setup is forwarded as parsed (unknown
fields kept: rebuilding a setup from an allow-list loses fields, §11.3), re-serialized, so
Google reads exactly what was judged.

A refusal is a :class:`SetupRefused`: google-genai clients see only the close code and reason
(``APIError(code, reason)`` from ``connect()``), so it carries both, in Google's manner: 1008
for a model that is unknown or not allowed, 1007 for a first frame that is not a valid setup,
1009 for one too large. Close without sending a frame first (see :mod:`.messages`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import attrs

from ...config import ModelConfig
from .messages import CLOSE_INVALID_ARGUMENT, CLOSE_POLICY, CLOSE_TOO_BIG, close_reason, error_frame
from .tokens import SetupLock

#: A setup larger than this is refused (instructions and tool declarations fit well within it;
#: google-genai itself refuses server frames over 1 MiB).
MAX_SETUP_FRAME_BYTES = 1024 * 1024
#: Characters of a client's model name a refusal repeats.
MAX_SHOWN_MODEL_CHARS = 48

#: ``status`` and HTTP-style code of a refusal's in-band form, by close code.
_STATUS = {CLOSE_INVALID_ARGUMENT: (400, "INVALID_ARGUMENT"), CLOSE_POLICY: (403, "PERMISSION_DENIED"),
           CLOSE_TOO_BIG: (400, "INVALID_ARGUMENT")}

_ID = r"([^/\s]+)"
_MODEL_FORMS = (
    re.compile(_ID),
    re.compile(r"models/" + _ID),
    re.compile(r"publishers/google/models/" + _ID),
    re.compile(r"projects/[^/\s]+/locations/[^/\s]+/publishers/google/models/" + _ID),
)


def model_id(name: str) -> str | None:
    """The model id in a ``setup.model`` (any of the accepted forms), or None."""
    for form in _MODEL_FORMS:
        match = form.fullmatch(name)
        if match is not None:
            return match.group(1)
    return None


def ai_studio_model(model: ModelConfig) -> str:
    """``models/{upstream id}``: the Gemini API's (and the offline model's) ``setup.model``. An
    upstream name configured as a full resource name is used as it is."""
    target = model.target_model
    return target if "/" in target else f"models/{target}"


def vertex_express_model(model: ModelConfig) -> str:
    """``publishers/google/models/{upstream id}``: Vertex in express mode (an API key)."""
    target = model.target_model
    return target if "/" in target else f"publishers/google/models/{target}"


def vertex_model(project: str, location: str) -> Callable[[ModelConfig], str]:
    """A builder of ``projects/{project}/locations/{location}/publishers/google/models/{id}``:
    Vertex with a project (OAuth)."""
    def build(model: ModelConfig) -> str:
        target = model.target_model
        return target if "/" in target else f"projects/{project}/locations/{location}/publishers/google/models/{target}"
    return build


def shown_model(name: Any) -> str:
    """A client's model name as a refusal repeats it: ``models/{id}``, cut short."""
    if not isinstance(name, str):
        return "(not a string)"
    ident = model_id(name)
    shown = f"models/{ident}" if ident is not None else name
    return shown if len(shown) <= MAX_SHOWN_MODEL_CHARS else shown[:MAX_SHOWN_MODEL_CHARS] + "…"


@attrs.frozen
class SetupRefused(Exception):
    """Why a setup cannot open (or, mid-session, may not be sent): close the socket with
    ``close_code`` and ``reason``."""

    close_code: int
    #: At most 123 bytes: what a close frame carries.
    reason: str = attrs.field(converter=close_reason)

    def error_frame(self) -> str:
        """The same refusal in-band (:func:`~.messages.error_frame`), for where a frame may precede
        the close (never while ``connect()`` waits for its setup's answer)."""
        http_code, status = _STATUS.get(self.close_code, (400, "INVALID_ARGUMENT"))
        return error_frame(http_code, status, self.reason)


def invalid(detail: str) -> SetupRefused:
    """1007, worded as Google words it ("Request contains an invalid argument.") plus why."""
    return SetupRefused(CLOSE_INVALID_ARGUMENT, f"Request contains an invalid argument: {detail}")


def not_found(name: Any) -> SetupRefused:
    return SetupRefused(CLOSE_POLICY, f"{shown_model(name)} is not found, or is not supported for "
                                      "bidiGenerateContent on this gateway")


def not_allowed(name: Any, credential: str = "key") -> SetupRefused:
    return SetupRefused(CLOSE_POLICY, f"this {credential} may not use {shown_model(name)}")


@attrs.frozen
class GeminiStart:
    """An admitted setup: the model it opens and the frame to send upstream in its place."""

    model: ModelConfig
    #: ``{"setup": {…}}`` with ``model`` rewritten, re-serialized (ASCII JSON).
    frame: str
    #: The model as the client named it.
    client_model: str


def parse_setup(payload: bytes | str, *, served: Callable[[str], ModelConfig | None], allows: Callable[[str], bool],
                upstream_model: Callable[[ModelConfig], str] = ai_studio_model,
                lock: SetupLock | None = None, credential: str = "key") -> GeminiStart:
    """Check the first frame; raises :class:`SetupRefused`.

    ``served(id)``: the configured model a client's model id names (None: not served as a Gemini
    model); ``allows(name)``: whether the key (or token) may use that configured model (by its
    name); ``upstream_model(model)``: the upstream's ``setup.model`` for it; ``lock``: what the
    ephemeral token the session opened with fixes of the setup (:mod:`.tokens`); ``credential``:
    what a refusal says may not use the model ("key", "ephemeral token")."""
    if len(payload) > MAX_SETUP_FRAME_BYTES:
        raise SetupRefused(CLOSE_TOO_BIG, f"the setup message is larger than {MAX_SETUP_FRAME_BYTES} bytes")
    try:
        message = json.loads(payload)
    except (ValueError, RecursionError):
        raise invalid("the first message is not JSON") from None
    if not isinstance(message, dict) or "setup" not in message:
        raise invalid("the first message must be setup")
    if len(message) != 1:
        raise invalid("setup must be the message's only member")
    setup = message["setup"]
    if not isinstance(setup, dict):
        raise invalid("setup must be an object")
    name = setup.get("model")
    if not isinstance(name, str) or not name:
        raise invalid("setup.model is required")
    ident = model_id(name)
    model = served(ident) if ident is not None else None
    if model is None:
        raise not_found(name)
    if not allows(model.name):
        raise not_allowed(name, credential)
    if lock is not None:
        return GeminiStart(model, json.dumps({"setup": {"model": upstream_model(model), **lock.apply(setup)}}), name)
    return GeminiStart(model, json.dumps({"setup": {**setup, "model": upstream_model(model)}}), name)
