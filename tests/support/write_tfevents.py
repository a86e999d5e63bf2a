"""Appends TF1 scalar events to a TensorBoard event file, with the standard
library only (TFRecord framing, masked CRC-32C, the Event/Summary protobuf
fields TensorBoard's writers use), for tests whose trial pods have no
tensorboardX: `python3 write_tfevents.py FILE TAG=VALUE ...` writes one
event per pair, steps from 1. Real files from tensorboardX are read in
tests/python/test_tfevent.py."""

import struct
import sys
import time

_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked(data: bytes) -> int:
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def field(number: int, wire: int, payload: bytes) -> bytes:
    return varint(number << 3 | wire) + payload


def event(step: int, tag: str, value: float) -> bytes:
    tag_bytes = tag.encode()
    summary_value = field(1, 2, varint(len(tag_bytes)) + tag_bytes) + field(2, 5, struct.pack("<f", value))
    summary = field(1, 2, varint(len(summary_value)) + summary_value)
    return (
        field(1, 1, struct.pack("<d", time.time()))
        + field(2, 0, varint(step))
        + field(5, 2, varint(len(summary)) + summary)
    )


def record(data: bytes) -> bytes:
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked(length)) + data + struct.pack("<I", masked(data))


if __name__ == "__main__":
    path, pairs = sys.argv[1], sys.argv[2:]
    with open(path, "ab") as out:
        for step, pair in enumerate(pairs, start=1):
            tag, value = pair.split("=", 1)
            out.write(record(event(step, tag, float(value))))
