"""The OpenAI Realtime API (GA and beta dialects, OpenAI and Azure upstreams).

:data:`REALTIME` is the protocol value the relay is handed (:class:`~rtproxy.protocols.seam.ApiProtocol`);
the server also uses :func:`token_session_update` while planning (where a session goes is its
provider's: rtproxy/providers/).
"""

from __future__ import annotations

from ...spend.audio_meter import b64_value_len
from ...spend.records import SessionMeta
from ..peek import peek_type
from ..seam import ModelPolicy
from .collector import Collector
from .events import classify, classify_client, is_collected, normalize_client
from .gate import ModelGate
from .messages import error_event, token_session_update

#: Where an audio frame's blob is: ``input_audio_buffer.append``'s ``audio``, a delta's ``delta``.
AUDIO_FIELDS = (b'"audio"', b'"delta"')


class RealtimeProtocol:
    """The Realtime API as the relay sees it."""

    name = "realtime"
    binary_events = False

    #: the module functions themselves: the relay calls them on every frame, so no wrapper call
    classify = staticmethod(classify)
    classify_client = staticmethod(classify_client)
    normalize_client = staticmethod(normalize_client)

    @staticmethod
    def new_collector(meta: SessionMeta) -> Collector:
        return Collector(meta)

    @staticmethod
    def is_turn_start(payload: bytes) -> bool:
        return peek_type(payload) == b"response.created"

    @staticmethod
    def audio_len(payload: bytes) -> int:
        return b64_value_len(payload, AUDIO_FIELDS)

    @staticmethod
    def error_event(code: str, message: str, error_type: str) -> str:
        return error_event(code, message, error_type)

    @staticmethod
    def new_gate(policy: ModelPolicy) -> ModelGate:
        return ModelGate(policy.session_models, policy.allows, policy.allows_transcription)


REALTIME = RealtimeProtocol()

__all__ = ["REALTIME", "Collector", "RealtimeProtocol", "classify", "error_event", "is_collected",
           "token_session_update"]
