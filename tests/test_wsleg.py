"""The WebSocket leg over in-memory streams: the fast decode path agrees with the protocol."""

from __future__ import annotations

import os
from typing import Any

import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.frames import Close, Frame, Opcode
from websockets.protocol import CLIENT, SERVER, Protocol

from rtproxy.relay.transport import decode_data_frames, encode_data_frames
from rtproxy.relay.wsleg import LegClosed, WebSocketLeg

from .helpers import examples

MAX = 4096


def frame_bytes(frame: Frame, *, mask: bool) -> bytes:
    return frame.serialize(mask=mask)


def _utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def expected(frames: list[Frame], masked: bool) -> tuple[list[tuple[bool, bytes]], int | None]:
    """What a correct receiver yields: messages up to the first error, and the close code.
    A server-side leg (``masked``) also fails a text message that is not UTF-8 with 1007."""
    out: list[tuple[bool, bytes]] = []
    frag: list[bytes] | None = None
    frag_text = False
    size = 0
    for f in frames:
        if f.opcode in (Opcode.TEXT, Opcode.BINARY):
            # the size limit is checked while reading the header, before the fragmentation rule
            if len(f.data) > MAX - (size if frag is not None else 0):
                return out, 1009
            if frag is not None:
                return out, 1002
            size = len(f.data)
            if f.fin:
                if masked and f.opcode is Opcode.TEXT and not _utf8(f.data):
                    return out, 1007
                out.append((f.opcode is Opcode.TEXT, f.data))
            else:
                frag, frag_text = [f.data], f.opcode is Opcode.TEXT
        elif f.opcode is Opcode.CONT:
            if frag is None:
                return out, 1002
            size += len(f.data)
            if size > MAX:
                return out, 1009
            frag.append(f.data)
            if f.fin:
                message = b"".join(frag)
                if masked and frag_text and not _utf8(message):
                    return out, 1007
                out.append((frag_text, message))
                frag = None
        elif f.opcode is Opcode.CLOSE:
            return out, 1000
    return out, None


data_frame = st.builds(
    lambda text, data, fin: Frame(Opcode.TEXT if text else Opcode.BINARY, data, fin=fin),
    st.booleans(), st.binary(max_size=300) | st.binary(min_size=5000, max_size=5000), st.booleans())
cont_frame = st.builds(lambda data, fin: Frame(Opcode.CONT, data, fin=fin), st.binary(max_size=200), st.booleans())
ping_frame = st.builds(lambda data: Frame(Opcode.PING, data), st.binary(max_size=20))
stream_of_frames = st.lists(st.one_of(data_frame, data_frame, cont_frame, ping_frame), max_size=25)


@settings(max_examples=examples(150), deadline=None)
@given(frames=stream_of_frames, cuts=st.lists(st.integers(min_value=1, max_value=600), max_size=30),
       masked=st.booleans())
def test_fast_path_and_protocol_agree_on_any_frame_stream(frames: list[Frame], cuts: list[int], masked: bool) -> None:
    # masked=True: a server leg receiving client frames; False: a client leg receiving server frames
    wire = b"".join(frame_bytes(f, mask=masked) for f in frames) + frame_bytes(
        Frame(Opcode.CLOSE, Close(1000, "bye").serialize()), mask=masked)
    want, want_code = expected(frames + [Frame(Opcode.CLOSE, b"")], masked)
    got, code = relay_through_a_leg(wire, cuts, masked)
    assert got == want
    assert code == want_code


def relay_through_a_leg(wire: bytes, cuts: list[int], masked: bool) -> tuple[list[tuple[bool, bytes]], int]:
    """Feed ``wire`` to a leg in pieces of ``cuts`` bytes: the messages it yields, and its close code.
    ``masked``: a server leg receiving client frames; else a client leg receiving server frames."""
    got: list[tuple[bool, bytes]] = []

    async def main() -> int:
        ours, theirs = trio.testing.memory_stream_pair()
        leg = WebSocketLeg(ours, Protocol(SERVER if masked else CLIENT, max_size=MAX), close_timeout_s=0.1)

        async def feed() -> None:
            at = 0
            for cut in cuts + [len(wire)]:
                if at >= len(wire):
                    break
                await theirs.send_all(wire[at:at + cut])
                at += cut

        async def drain_echoes() -> None:
            while await theirs.receive_some(65536):
                pass

        async with trio.open_nursery() as n:
            n.start_soon(feed)
            n.start_soon(drain_echoes)
            while True:
                try:
                    got.extend((t, bytes(p)) for t, p in await leg.receive())
                except LegClosed as exc:
                    n.cancel_scope.cancel()
                    return exc.code
        raise AssertionError("unreachable")

    return got, trio.run(main)


def test_decode_stops_at_control_frames_and_partial_frames() -> None:
    a = frame_bytes(Frame(Opcode.TEXT, b"hello"), mask=True)
    ping = frame_bytes(Frame(Opcode.PING, b"p"), mask=True)
    out: list[tuple[bool, bytes]] = []
    assert decode_data_frames(a + a + ping + a, masked=True, max_size=None, out=out) == 2 * len(a)
    assert out == [(True, b"hello"), (True, b"hello")]
    out.clear()
    assert decode_data_frames(a[:-1], masked=True, max_size=None, out=out) == 0 and out == []
    assert decode_data_frames(a, masked=False, max_size=None, out=out) == 0  # wrong masking: not ours
    assert decode_data_frames(a, masked=True, max_size=3, out=out) == 0  # too big: the protocol says 1009


def test_encoded_frames_parse_as_the_protocol_expects() -> None:
    messages = [(True, b"x" * n) for n in (0, 1, 125, 126, 65535, 65536, 70000)] + [(False, os.urandom(300))]
    for mask, side in ((True, SERVER), (False, CLIENT)):
        parts: list[bytes] = []
        encode_data_frames(messages, mask=mask, out=parts)
        proto = Protocol(side, max_size=None)
        proto.receive_data(b"".join(parts))
        frames = proto.events_received()
        assert [(f.opcode is Opcode.TEXT, f.data) for f in frames] == messages
        assert proto.parser_exc is None


async def test_a_pong_is_sent_before_data_queued_behind_it() -> None:
    ours, theirs = trio.testing.memory_stream_pair()
    leg = WebSocketLeg(ours, Protocol(SERVER, max_size=MAX), close_timeout_s=0.1)  # past the handshake
    await theirs.send_all(frame_bytes(Frame(Opcode.PING, b"hi"), mask=True)
                          + frame_bytes(Frame(Opcode.TEXT, b"data"), mask=True))
    with trio.fail_after(5):
        assert await leg.receive() == [(True, b"data")]
        await leg.send([(True, b"reply")])
        received = b""
        while len(received) < 4 + 7:  # pong (2 + 2) + text (2 + 5)
            received += await theirs.receive_some(65536)
    client = Protocol(CLIENT, max_size=None)
    client.receive_data(received)
    frames = client.events_received()
    assert [(f.opcode, f.data) for f in frames] == [(Opcode.PONG, b"hi"), (Opcode.TEXT, b"reply")]


# -- hostile frames, checked against websockets' own parser --------------------------------------

def raw_frame(first: int, payload: bytes, *, mask: bool, length: int | None = None) -> bytes:
    """A frame built by hand: any first byte (RSV bits, reserved opcodes, FIN on control frames)."""
    n = len(payload) if length is None else length
    m = 0x80 if mask else 0
    if n < 126:
        head = bytes([first, m | n])
    elif n < 65536:
        head = bytes([first, m | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([first, m | 127]) + n.to_bytes(8, "big")
    if mask:
        key = os.urandom(4)
        return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return head + payload


#: A frame spec: (kind, payload, fin/extra). Built into bytes for the side under test.
hostile = st.one_of(
    st.tuples(st.just("data"), st.binary(max_size=300), st.booleans()),
    st.tuples(st.just("data"), st.binary(max_size=300), st.booleans()),
    st.tuples(st.just("cont"), st.binary(max_size=200), st.booleans()),
    st.tuples(st.just("big"), st.sampled_from([200, 70_000]), st.booleans()),  # 16- and 64-bit lengths
    st.tuples(st.just("rsv"), st.binary(max_size=20), st.sampled_from([0x40, 0x20, 0x10])),
    st.tuples(st.just("opcode"), st.binary(max_size=20), st.sampled_from([3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF])),
    st.tuples(st.just("wrong_mask"), st.binary(max_size=20), st.booleans()),
    st.tuples(st.just("control_fragment"), st.binary(max_size=20), st.sampled_from([0x9, 0xA])),
    st.tuples(st.just("control_too_big"), st.binary(min_size=126, max_size=200), st.sampled_from([0x9, 0xA])),
    st.tuples(st.just("ping"), st.binary(max_size=20), st.booleans()),
)


def build(spec: tuple[str, Any, Any], masked: bool) -> bytes:
    kind, payload, extra = spec
    if kind == "data":
        return Frame(Opcode.TEXT if extra else Opcode.BINARY, payload, fin=len(payload) % 3 != 0).serialize(mask=masked)
    if kind == "cont":
        return Frame(Opcode.CONT, payload, fin=extra).serialize(mask=masked)
    if kind == "big":
        return raw_frame(0x82, b"\x00" * payload, mask=masked)
    if kind == "rsv":
        return raw_frame(0x80 | extra | 0x1, payload, mask=masked)
    if kind == "opcode":
        return raw_frame(0x80 | extra, payload, mask=masked)
    if kind == "wrong_mask":
        return raw_frame(0x82, payload, mask=not masked)
    if kind == "control_fragment":
        return raw_frame(extra, payload, mask=masked)  # FIN clear on a ping/pong
    if kind == "control_too_big":
        return raw_frame(0x80 | extra, payload, mask=masked)
    return Frame(Opcode.PING, payload).serialize(mask=masked)


def reference(wire: bytes, masked: bool) -> tuple[list[tuple[bool, bytes]], int | None]:
    """What websockets' own parser makes of ``wire``: the messages, then the close code (and,
    on the server side, RFC 6455's UTF-8 rule for text, which the sans-IO parser leaves to us)."""
    from websockets.exceptions import PayloadTooBig, ProtocolError

    proto = Protocol(SERVER if masked else CLIENT, max_size=MAX)
    proto.receive_data(wire)
    out: list[tuple[bool, bytes]] = []
    frag: list[bytes] | None = None
    frag_text = False
    for ev in proto.events_received():
        if ev.opcode in (Opcode.TEXT, Opcode.BINARY):
            if ev.fin:
                out.append((ev.opcode is Opcode.TEXT, ev.data))
            else:
                frag, frag_text = [ev.data], ev.opcode is Opcode.TEXT
        elif ev.opcode is Opcode.CONT and frag is not None:
            frag.append(ev.data)
            if ev.fin:
                out.append((frag_text, b"".join(frag)))
                frag = None
    if masked:
        for i, (is_text, payload) in enumerate(out):
            if is_text and not _utf8(payload):
                return out[:i], 1007
    if proto.close_rcvd is not None:
        # the peer's close ends it with the peer's code (even mid-message, where websockets
        # answers 1002: the leg reports what the peer said, the protocol answers for us)
        return out, proto.close_rcvd.code
    exc = proto.parser_exc
    if isinstance(exc, PayloadTooBig):
        return out, 1009
    if isinstance(exc, ProtocolError):
        return out, 1002
    return out, None


@settings(max_examples=examples(300), deadline=None)
@given(specs=st.lists(hostile, max_size=20), cuts=st.lists(st.integers(min_value=1, max_value=700), max_size=30),
       masked=st.booleans())
def test_hostile_frame_streams_end_as_websockets_own_parser_says(specs: list[tuple[str, Any, Any]], cuts: list[int],
                                                                masked: bool) -> None:
    wire = b"".join(build(s, masked) for s in specs) + Frame(Opcode.CLOSE, Close(1000, "bye").serialize()).serialize(
        mask=masked)
    want, want_code = reference(wire, masked)
    got, code = relay_through_a_leg(wire, cuts, masked)
    assert got == want
    assert code == want_code


async def test_the_send_lock_hands_over_in_order_and_a_cancelled_waiter_never_holds_it() -> None:
    from rtproxy.relay.wsleg import SendLock

    lock = SendLock()
    assert lock.acquire_nowait()
    assert not lock.acquire_nowait()
    got: list[str] = []
    cancelled = trio.CancelScope()

    async def writer(name: str, scope: trio.CancelScope | None = None) -> None:
        with scope or trio.CancelScope():
            await lock.acquire()
            got.append(name)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(writer, "first")
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(writer, "cancelled", cancelled)
        await trio.testing.wait_all_tasks_blocked()
        nursery.start_soon(writer, "second")
        await trio.testing.wait_all_tasks_blocked()
        cancelled.cancel()  # gives up waiting: leaves the queue
        await trio.testing.wait_all_tasks_blocked()
        assert got == []
        lock.release()  # handed over to "first": still held
        await trio.testing.wait_all_tasks_blocked()
        assert got == ["first"] and not lock.acquire_nowait()
        lock.release()  # to "second", not to the one that gave up
        await trio.testing.wait_all_tasks_blocked()
        assert got == ["first", "second"] and not lock.acquire_nowait()
    lock.release()
    assert lock.acquire_nowait()  # free again
