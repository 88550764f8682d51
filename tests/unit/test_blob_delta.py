"""The blob store's line-delta codec: any base and target round-trip byte for byte, and a
one-line edit of a 100 KB file costs a few dozen bytes."""

from __future__ import annotations

import random
import zlib

from coolcoding.services.blobstore import apply_delta, encode, make_delta


def test_round_trip_on_random_edits() -> None:
    rnd = random.Random(4)
    alphabet = [b"a\n", b"b\n", b"\n", b"xyz", b"\r\n", b"\x00\xff", b"long line " * 5 + b"\n"]
    for _ in range(500):
        base = b"".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 60)))
        new = bytearray(base)
        for _ in range(rnd.randint(0, 5)):
            pos = rnd.randint(0, len(new))
            if rnd.random() < 0.5 and new:
                del new[pos : pos + rnd.randint(1, 10)]
            else:
                new[pos:pos] = rnd.choice(alphabet)
        assert apply_delta(base, make_delta(base, bytes(new))) == bytes(new)


def test_one_line_edit_of_100kb_is_small() -> None:
    rnd = random.Random(1)
    lines = [f"line {i} {rnd.random()}\n".encode() for i in range(4000)]
    base = b"".join(lines)
    lines[2000] = b"changed\n"
    new = b"".join(lines)
    assert len(base) > 100_000
    delta = make_delta(base, new)
    assert apply_delta(base, delta) == new
    assert len(zlib.compress(delta)) < 100
    enc = encode(new, ("h", base))
    assert enc.encoding == "delta" and enc.base_hash == "h"


def test_unrelated_or_binary_content_is_stored_whole() -> None:
    rnd = random.Random(2)
    noise = bytes(rnd.getrandbits(8) for _ in range(5000))
    assert encode(noise, ("h", b"other\n" * 100)).encoding == "raw"
    assert encode(b"text\n" * 1000).encoding == "zlib"
