"""Google's Gemini Live API (``BidiGenerateContent``), served natively: google-genai clients on the
gateway's copies of Google's paths, relayed to Gemini (AI Studio, Vertex, or the offline model).
The third protocol behind the relay's seam (protocol/gemini-live.md §9).

:data:`GEMINI` is the protocol value the relay is handed; the server also uses
:func:`~.start.parse_setup` (admission from the first frame, the ``setup``) while planning, with
one of the upstream model builders (:func:`~.start.ai_studio_model`,
:func:`~.start.vertex_express_model`, :func:`~.start.vertex_model`).

The pieces, each sans-IO:

- :mod:`.frames`: what a frame is from its bytes (``classify``, ``classify_client``,
  ``normalize_client``), both field spellings;
- :mod:`.start`: the first frame (``parse_setup``), refusals with Google's close codes;
- :mod:`.gate`: a later setup refused, the key's model ACL checked again;
- :mod:`.collector`: frames in, spend records out (:mod:`.usage` maps ``usageMetadata``,
  :mod:`.estimate` the turns it never reports);
- :mod:`.messages`: what the gateway tells a client (close reasons, the in-band error);
- :mod:`.tokens`: the ephemeral tokens google-genai mints (``auth_tokens``): the request read,
  the setup lock a token carries applied to the sessions it opens.
"""

from __future__ import annotations

from ...spend.audio_meter import b64_value_len
from ...spend.records import SessionMeta
from ..seam import ModelPolicy
from .collector import GeminiCollector
from .frames import classify, classify_client, normalize_client
from .gate import SetupGate
from .messages import error_event
from .start import (
    GeminiStart,
    SetupRefused,
    ai_studio_model,
    model_id,
    parse_setup,
    vertex_express_model,
    vertex_model,
)
from .tokens import SetupLock, TokenRefused, TokenRequest, parse_token_request, token_response
from .usage import openai_usage


class GeminiProtocol:
    """The Gemini Live API as the relay sees it."""

    name = "gemini"
    #: Google sends every server event as a binary frame of UTF-8 JSON.
    binary_events = True
    #: the module functions themselves: the relay calls them on every frame, so no wrapper call
    classify = staticmethod(classify)
    classify_client = staticmethod(classify_client)
    normalize_client = staticmethod(normalize_client)

    @staticmethod
    def new_collector(meta: SessionMeta) -> GeminiCollector:
        return GeminiCollector(meta)

    @staticmethod
    def is_turn_start(payload: bytes) -> bool:
        return False  # a turn's first frame is its audio (or the upstream's text): nothing to time it from

    @staticmethod
    def audio_len(payload: bytes) -> int:
        return b64_value_len(payload, (b'"data"',))

    @staticmethod
    def error_event(code: str, message: str, error_type: str) -> str:
        """Gemini has no error event: an object google-genai raises ``APIError`` on (see
        :mod:`.messages`); the relay closes after it, with the same message as the close reason."""
        return error_event(code, message, error_type)

    @staticmethod
    def new_gate(policy: ModelPolicy) -> SetupGate:
        return SetupGate(policy.allows, policy.session_models)


GEMINI = GeminiProtocol()

__all__ = ["GEMINI", "GeminiCollector", "GeminiProtocol", "GeminiStart", "SetupGate", "SetupLock", "SetupRefused",
           "TokenRefused", "TokenRequest", "ai_studio_model", "classify", "classify_client", "error_event", "model_id",
           "normalize_client", "openai_usage", "parse_setup", "parse_token_request", "token_response",
           "vertex_express_model", "vertex_model"]
