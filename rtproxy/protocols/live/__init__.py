"""OpenAI's GPT-Live API (``/v1/live/sessions``): the second protocol behind the relay's seam.

:data:`LIVE` is the protocol value the relay is handed; the server also uses
:func:`~.start.parse_start` (admission from the first frame) while planning; where a session
goes is its provider's (rtproxy/providers/).
"""

from __future__ import annotations

from ...spend.audio_meter import b64_value_len
from ...spend.records import SessionMeta
from ..seam import ModelPolicy
from .collector import LiveCollector
from .events import classify, classify_client, normalize_client
from .gate import DelegationGate
from .messages import error_event
from .start import LiveStart, StartRefused, parse_start

#: Where an audio frame's blob is (``session.input_audio.append``, ``session.output_audio.delta``).
AUDIO_FIELDS = (b'"audio"', b'"delta"')


class LiveProtocol:
    name = "live"
    binary_events = False
    classify = staticmethod(classify)
    classify_client = staticmethod(classify_client)
    normalize_client = staticmethod(normalize_client)

    @staticmethod
    def new_collector(meta: SessionMeta) -> LiveCollector:
        return LiveCollector(meta)

    @staticmethod
    def is_turn_start(payload: bytes) -> bool:
        return False  # GPT-Live's audio flows without turns (silence included): not timed

    @staticmethod
    def audio_len(payload: bytes) -> int:
        return b64_value_len(payload, AUDIO_FIELDS)

    @staticmethod
    def error_event(code: str, message: str, error_type: str) -> str:
        return error_event(code, message, error_type)

    @staticmethod
    def new_gate(policy: ModelPolicy) -> DelegationGate:
        return DelegationGate(policy.allows_delegation)


LIVE = LiveProtocol()

__all__ = ["LIVE", "LiveCollector", "LiveProtocol", "LiveStart", "StartRefused", "classify",
           "error_event", "parse_start"]
