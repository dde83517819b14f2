"""The fast frame codec at every length boundary, against the websockets library's own frames:
what it encodes, what it decodes, and exactly where it stops."""

from __future__ import annotations

import struct

import pytest
from websockets.frames import Frame, Opcode

from rtproxy.relay import transport
from rtproxy.relay.transport import MASK_POOL_BYTES, decode_data_frames, encode_data_frames

LENGTHS = [0, 1, 125, 126, 127, 65535, 65536, 70000]


def websockets_frame(is_text: bool, payload: bytes) -> bytes:
    return Frame(Opcode.TEXT if is_text else Opcode.BINARY, payload).serialize(mask=False, extensions=[])


@pytest.mark.parametrize("length", LENGTHS)
@pytest.mark.parametrize("is_text", [True, False])
def test_an_unmasked_frame_is_the_bytes_websockets_writes(length: int, is_text: bool) -> None:
    payload = bytes(i % 251 for i in range(length))
    out: list[bytes] = []
    encode_data_frames([(is_text, payload)], mask=False, out=out)
    assert b"".join(out) == websockets_frame(is_text, payload)
    decoded: list[tuple[bool, bytes]] = []
    assert decode_data_frames(b"".join(out), masked=False, max_size=None, out=decoded) == len(b"".join(out))
    assert decoded == [(is_text, payload)]


@pytest.mark.parametrize("length", LENGTHS)
def test_a_masked_frame_has_the_mask_bit_a_4_byte_key_and_the_payload_masked_by_it(length: int) -> None:
    payload = bytes(i % 7 for i in range(length))
    out: list[bytes] = []
    encode_data_frames([(True, payload)], mask=True, out=out)
    wire = b"".join(out)
    head = {0: 2, 1: 2, 125: 2, 126: 4, 127: 4, 65535: 4}.get(length, 10)
    assert wire[0] == 0x81 and wire[1] & 0x80
    key = wire[head:head + 4]
    assert bytes(b ^ key[i % 4] for i, b in enumerate(wire[head + 4:])) == payload
    assert len(wire) == head + 4 + length
    decoded: list[tuple[bool, bytes]] = []
    assert decode_data_frames(wire, masked=True, max_size=None, out=decoded) == len(wire)
    assert decoded == [(True, payload)]


def test_mask_keys_come_from_a_pool_refilled_when_spent() -> None:
    keys = transport._MaskKeys()
    drawn = [keys.next() for _ in range(MASK_POOL_BYTES // 4)]
    assert all(len(k) == 4 for k in drawn) and keys._at == MASK_POOL_BYTES
    pool = keys._pool
    assert b"".join(drawn) == pool
    assert len(keys.next()) == 4 and keys._pool is not pool and keys._at == 4


def frames(*messages: tuple[bool, bytes]) -> bytes:
    return b"".join(websockets_frame(t, p) for t, p in messages)


@pytest.mark.parametrize("data, consumed, decoded", [
    (b"", 0, []),
    (b"\x81", 0, []),  # half a header
    (frames((True, b"hi"))[:-1], 0, []),  # the payload not all there
    (frames((True, b"hi"), (False, b"\x00")), 7, [(True, b"hi"), (False, b"\x00")]),
    (frames((True, b"hi")) + b"\x89\x00", 4, [(True, b"hi")]),  # a ping: left to the protocol
    (frames((True, b"hi")) + b"\x01\x01a", 4, [(True, b"hi")]),  # a fragment
    (b"\xc1\x01a", 0, []),  # RSV1 set
    (b"\x81\x7e\x00", 0, []),  # a 16-bit length, cut
    (b"\x81\x7f\x00\x00\x00\x00\x00\x00\x00", 0, []),  # a 64-bit length, cut
    (b"\x81\x7e\x00\x7e" + b"a" * 125, 0, []),  # 126 bytes announced, 125 there
    (b"\x81\x7e\x00\x7e" + b"a" * 126, 130, [(True, b"a" * 126)]),
])
def test_decoding_stops_exactly_where_the_fast_path_ends(data: bytes, consumed: int,
                                                        decoded: list[tuple[bool, bytes]]) -> None:
    out: list[tuple[bool, bytes]] = []
    assert decode_data_frames(data, masked=False, max_size=None, out=out) == consumed
    assert out == decoded


def test_a_frame_over_the_size_bound_is_left_to_the_protocol_and_one_at_it_is_taken() -> None:
    at, over = frames((True, b"a" * 10)), frames((True, b"a" * 11))
    out: list[tuple[bool, bytes]] = []
    assert decode_data_frames(at, masked=False, max_size=10, out=out) == len(at) and out == [(True, b"a" * 10)]
    assert decode_data_frames(over, masked=False, max_size=10, out=[]) == 0
    big = b"\x82\x7f" + struct.pack("!Q", 70000) + bytes(70000)
    assert decode_data_frames(big, masked=False, max_size=69999, out=[]) == 0
    assert decode_data_frames(big, masked=False, max_size=70000, out=[]) == len(big)


def test_the_wrong_masking_is_left_to_the_protocol_either_way() -> None:
    out: list[bytes] = []
    encode_data_frames([(True, b"hi")], mask=True, out=out)
    assert decode_data_frames(b"".join(out), masked=False, max_size=None, out=[]) == 0
    assert decode_data_frames(frames((True, b"hi")), masked=True, max_size=None, out=[]) == 0
    masked = b"".join(out)
    assert decode_data_frames(masked[:-1], masked=True, max_size=None, out=[]) == 0  # payload cut
    assert decode_data_frames(masked[:5], masked=True, max_size=None, out=[]) == 0  # key cut


@pytest.mark.parametrize(("data", "used", "messages"), [
    # found by the mutation run (2026-12-02): an extended length that ends the buffer exactly
    (b"\x81\x7e\x00\x00", 4, [(True, b"")]),
    (b"\x82\x7f" + bytes(8), 10, [(False, b"")]),
    (b"\x81\x7e\x00", 0, []),  # one byte of the 16-bit length short
    (b"\x81\x7f" + bytes(7), 0, []),  # one byte of the 64-bit length short
])
def test_an_extended_length_is_read_when_its_bytes_are_all_there(data: bytes, used: int,
                                                                   messages: list[tuple[bool, bytes]]) -> None:
    out: list[tuple[bool, bytes]] = []
    assert decode_data_frames(data, masked=False, max_size=None, out=out) == used
    assert out == messages
