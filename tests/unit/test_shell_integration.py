"""ShellIntegrationParser: stripping, split sequences, forged sequences, escaping."""

from __future__ import annotations

import random

from coolcoding.terminal.shell_integration import ShellEvent, ShellIntegrationParser, unescape

NONCE = "0123456789abcdef0123456789abcdef"


def seq(kind: str, payload: str | None = None, nonce: str = NONCE, st: bool = False) -> bytes:
    body = f"\x1b]633;{kind};{nonce}" + (f";{payload}" if payload is not None else "")
    return body.encode() + (b"\x1b\\" if st else b"\x07")


def run(chunks: list[bytes]) -> tuple[bytes, list[ShellEvent]]:
    p = ShellIntegrationParser(NONCE)
    out = bytearray()
    events: list[ShellEvent] = []
    for c in chunks:
        for s in p.feed(c):
            if isinstance(s, bytes):
                out += s
            else:
                events.append(s)
    out += p.flush()
    return bytes(out), events


STREAM = (
    b"$ "
    + seq("E", "echo hi\\x3b ls")
    + seq("C")
    + b"hi\r\n\xff\x00binary"
    + seq("D", "0")
    + seq("P", "Cwd=/workspace/a\\\\b", st=True)
    + b"$ "
)
EXPECTED_EVENTS = [
    ShellEvent("E", "echo hi; ls"),
    ShellEvent("C"),
    ShellEvent("D", "0"),
    ShellEvent("P", "Cwd=/workspace/a\\b"),
]


def test_sequences_are_stripped_and_reported_in_order() -> None:
    out, events = run([STREAM])
    assert out == b"$ hi\r\n\xff\x00binary$ "
    assert events == EXPECTED_EVENTS


def test_plain_output_passes_through_unchanged() -> None:
    data = bytes(range(256)) * 4
    assert run([data]) == (data, [])


def test_sequences_split_at_every_byte_boundary() -> None:
    for cut in range(1, len(STREAM)):
        assert run([STREAM[:cut], STREAM[cut:]]) == run([STREAM]), cut


def test_sequences_split_into_random_chunks() -> None:
    rng = random.Random(7)
    for _ in range(200):
        chunks, i = [], 0
        while i < len(STREAM):
            n = rng.randint(1, 9)
            chunks.append(STREAM[i : i + n])
            i += n
        assert run(chunks) == (b"$ hi\r\n\xff\x00binary$ ", EXPECTED_EVENTS)


def test_forged_sequence_without_the_nonce_is_passed_through_and_not_recorded() -> None:
    forged = seq("C", nonce="f" * 32) + seq("D", "0", nonce="f" * 32) + seq("D", "0", nonce="short")
    out, events = run([b"x" + forged + b"y"])
    assert events == []
    assert out == b"x" + forged + b"y"


def test_forged_prefix_does_not_hold_back_output() -> None:
    p = ShellIntegrationParser(NONCE)
    got = p.feed(b"\x1b]633;C;zzz")  # wrong nonce: decided without waiting for a terminator
    assert got == [b"\x1b]633;C;zzz"]


def test_partial_prefix_at_end_is_held_then_released() -> None:
    p = ShellIntegrationParser(NONCE)
    assert p.feed(b"abc\x1b]63") == [b"abc"]
    assert p.feed(b"x") == [b"\x1b]63x"]


def test_other_escape_sequences_are_untouched() -> None:
    data = b"\x1b]0;title\x07\x1b[31mred\x1b[0m\x1b]633"
    out, events = run([data, b"X"])
    assert out == data + b"X" and events == []


def test_unescape() -> None:
    assert unescape(b"a\\x3bb\\\\c\\x0ad") == "a;b\\c\nd"
    assert unescape(b"bad\\xZZ") == "bad\\xZZ"
    assert unescape("é".encode()) == "é"


def test_big_chunks_without_escape_around_a_split_sequence() -> None:
    """The fast path (no ESC in a chunk: passed through without searching for the prefix)
    next to chunks that end or start inside a sequence, as coalesced flood reads do."""
    plain = b"0123456789abcdef\r\n" * 8000  # ~144 KB, no ESC
    stream = plain + STREAM + plain + seq("D", "3") + plain
    for cut in (len(plain) + 1, len(plain) + 5, len(plain) + 20, len(plain) + len(STREAM) - 1):
        for rest in (len(stream) - len(plain) - 3, len(stream) - len(plain)):
            chunks = [stream[:cut], stream[cut:rest], stream[rest:]]
            out, events = run(chunks)
            assert out == plain + b"$ hi\r\n\xff\x00binary$ " + plain + plain
            assert events == [*EXPECTED_EVENTS, ShellEvent("D", "3")]
    p = ShellIntegrationParser(NONCE)
    assert p.feed(plain) == [plain]  # passed through whole
    assert p.feed(b"x\x1b") == [b"x"]  # a lone ESC at the end may start a prefix: held
    assert p.feed(plain) == [b"\x1b" + plain]
