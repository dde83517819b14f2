"""Prometheus metrics (prometheus-client), from what the gateway already knows.

Most figures come from the spend records as they are written (:meth:`Metrics.record`): responses,
tokens by modality, seconds, spend in USD, sessions ended — so ``/metrics`` and the spend log
never disagree. The relay adds what no record holds, counted per session and added when the
session ends or every housekeeping tick, never per frame: frames and bytes relayed each way, the
upstream connect time, the time from ``response.created`` to its first audio.

``rtproxy serve --workers N`` sets ``PROMETHEUS_MULTIPROC_DIR`` (under ``[server].state_dir``)
before the workers start: each writes its figures there, and any worker's ``/metrics`` reports
the sum (prometheus-client's multiprocess mode), so a scrape is whole whichever worker answers.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from ..spend.pricing import token_split

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: Upper bounds of the latency histograms, in seconds.
CONNECT_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
FIRST_AUDIO_BUCKETS_S = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0)
__all__ = ["CONTENT_TYPE_LATEST", "MULTIPROC_ENV", "Metrics"]


#: A label value longer than this is cut (a model name a client chose must not grow the registry's lines).
MAX_LABEL_CHARS = 120


def label(value: Any) -> str:
    """A label value the text format can carry: what UTF-8 cannot encode (a lone surrogate a
    client sent) replaced, and clipped to :data:`MAX_LABEL_CHARS`."""
    text = str(value or "")[:MAX_LABEL_CHARS]
    if text.isascii():
        return text
    return text.encode("utf-8", "replace").decode("utf-8")


def multiprocess() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


class Metrics:
    def __init__(self) -> None:
        # one process: a registry of this gateway's own (tests run several in one process);
        # several: metrics write to the shared directory, and a scrape collects them all
        self.registry: CollectorRegistry | None = None if multiprocess() else CollectorRegistry()
        reg = self.registry
        self.sessions_open = Gauge("rtproxy_sessions_open", "Sessions open now", ["listener", "api", "model"],
                                   registry=reg, multiprocess_mode="livesum")
        self.sessions_ended = Counter("rtproxy_sessions_ended", "Sessions ended", ["status", "closed_by", "api"],
                                      registry=reg)
        self.responses = Counter("rtproxy_responses", "Responses billed", ["status", "model"], registry=reg)
        self.tokens = Counter("rtproxy_tokens", "Tokens billed", ["key", "model", "modality"], registry=reg)
        self.audio_seconds = Counter("rtproxy_audio_seconds", "Seconds billed (GPT-Live, duration transcription)",
                                     ["key", "model"], registry=reg)
        self.spend = Counter("rtproxy_spend_usd", "Spend in USD", ["key", "model"], registry=reg)
        self.frames = Counter("rtproxy_frames", "Frames relayed", ["direction"], registry=reg)
        self.bytes = Counter("rtproxy_bytes", "Payload bytes relayed", ["direction"], registry=reg)
        self.connect = Histogram("rtproxy_upstream_connect_seconds", "Upstream connect and handshake time",
                                 ["provider"], buckets=CONNECT_BUCKETS_S, registry=reg)
        self.first_audio = Histogram("rtproxy_time_to_first_audio_seconds",
                                     "From response.created to its first audio relayed to the client", ["model"],
                                     buckets=FIRST_AUDIO_BUCKETS_S, registry=reg)
        self.spend_log_failures = Counter("rtproxy_spend_log_write_failures", "Spend-log writes that failed",
                                          registry=reg)
        self.spend_log_unwritable = Counter("rtproxy_spend_log_unwritable_records",
                                            "Spend records that could not be serialised (charged, not written)",
                                            registry=reg)
        self.state_store_errors = Counter("rtproxy_state_store_errors", "State-store calls that failed",
                                          registry=reg)
        # the ledger's shipper (one process per spend log ships: the others report nothing)
        self.ledger_lag_seconds = Gauge("rtproxy_ledger_lag_seconds",
                                        "How long the ledger has been behind the spend log (0: caught up)",
                                        registry=reg, multiprocess_mode="livemax")
        self.ledger_lag_records = Gauge("rtproxy_ledger_lag_records", "Spend records not in the ledger yet",
                                        registry=reg, multiprocess_mode="livemax")
        self.budget_spend = Gauge("rtproxy_budget_period_spend_usd",
                                  "Spend in the current budget period of keys and teams with a soft budget",
                                  ["holder", "name"], registry=reg, multiprocess_mode="livemax")
        self.soft_budget_exceeded = Gauge("rtproxy_soft_budget_exceeded",
                                          "1 when a key's or team's spend in its period reached its soft budget",
                                          ["holder", "name"], registry=reg, multiprocess_mode="livemax")
        self.ledger_lag_bytes = Gauge("rtproxy_ledger_lag_bytes", "Spend-log bytes not shipped yet",
                                      registry=reg, multiprocess_mode="livemax")
        self.ledger_shipped = Counter("rtproxy_ledger_shipped_records", "Spend records written to the ledger",
                                      registry=reg)
        self.ledger_failures = Counter("rtproxy_ledger_failures", "Ledger calls of the shipper that failed",
                                       registry=reg)
        self._ledger_seen = (0, 0)

    def exposition(self) -> bytes:
        """The text format, whole across worker processes."""
        if self.registry is not None:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess as mp

        registry = CollectorRegistry()
        mp.MultiProcessCollector(registry)
        return generate_latest(registry)

    # -- from the records ----------------------------------------------------------------------

    def record(self, r: dict[str, Any]) -> None:
        """Count what one spend record says (called as it is written)."""
        kind, key, model = r.get("record"), label(r.get("key_name")), label(r.get("model"))
        cost = r.get("cost_usd")
        if kind in ("response", "transcription", "usage") and isinstance(cost, (int, float)) \
                and not isinstance(cost, bool) and cost > 0:
            self.spend.labels(key, model).inc(cost)
        if kind == "response":
            model_of_tokens = label(r.get("response_model") or model)
            self.responses.labels(label(r.get("status")), model_of_tokens).inc()
            self._tokens(key, model_of_tokens, r.get("usage"))
        elif kind == "transcription":
            usage = r.get("usage") or {}
            name = label(r.get("transcription_model") or model)
            if usage.get("type") == "duration":
                self._seconds(key, name, usage.get("seconds"))
            else:
                self._tokens(key, name, usage)
        elif kind == "usage":
            self._seconds(key, model, r.get("seconds_added"))
        elif kind == "session":
            close = r.get("close") or {}
            self.sessions_ended.labels(label(r.get("status")), label(close.get("by")),
                                       label(r.get("api") or "realtime")).inc()

    def _tokens(self, key: str, model: str, usage: Any) -> None:
        if not isinstance(usage, dict):
            return
        if "input_token_details" in usage or "output_token_details" in usage or usage.get("type") == "tokens":
            split = token_split(usage)
        else:  # a Responses API usage (a GPT-Live delegated response)
            def tokens(d: Any, name: str) -> int:
                v = d.get(name) if isinstance(d, dict) else None
                return v if isinstance(v, int) and not isinstance(v, bool) and v > 0 else 0

            total_in, out = tokens(usage, "input_tokens"), tokens(usage, "output_tokens")
            cached = min(tokens(usage.get("input_tokens_details"), "cached_tokens"), total_in)
            split = {"input_text": total_in - cached, "cached_text": cached, "output_text": out}
        for modality, count in split.items():
            if count > 0:
                self.tokens.labels(key, model, modality).inc(count)

    def _seconds(self, key: str, model: str, seconds: Any) -> None:
        if isinstance(seconds, (int, float)) and not isinstance(seconds, bool) and seconds > 0:
            self.audio_seconds.labels(key, model).inc(seconds)

    def ledger(self, status: dict[str, Any]) -> None:
        """The shipper's figures (``Shipper.status()``), at each scrape."""
        lag = status.get("lag") or {}
        if status.get("shipping"):
            self.ledger_lag_seconds.set(lag.get("seconds") or 0)
            self.ledger_lag_records.set(lag.get("records") or 0)
            self.ledger_lag_bytes.set(lag.get("bytes") or 0)
        shipped, failures = int(status.get("shipped") or 0), int(status.get("failures") or 0)
        if shipped > self._ledger_seen[0]:
            self.ledger_shipped.inc(shipped - self._ledger_seen[0])
        if failures > self._ledger_seen[1]:
            self.ledger_failures.inc(failures - self._ledger_seen[1])
        self._ledger_seen = (max(shipped, self._ledger_seen[0]), max(failures, self._ledger_seen[1]))

    # -- from the relay ------------------------------------------------------------------------

    def relayed(self, frames: tuple[int, int], payload_bytes: tuple[int, int]) -> None:
        """Frames and bytes relayed since the last call: client→upstream, upstream→client."""
        for i, direction in enumerate(("client_to_upstream", "upstream_to_client")):
            if frames[i]:
                self.frames.labels(direction).inc(frames[i])
            if payload_bytes[i]:
                self.bytes.labels(direction).inc(payload_bytes[i])
