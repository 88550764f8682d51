"""Shell integration: the shell marks each command's start, end, exit code and cwd with OSC 633
escape sequences (the VS Code technique); ``ShellIntegrationParser`` strips them from the output.

Wire format (written by ``shell_integration.sh``)::

    ESC ] 633 ; <kind> ; <nonce> [; <payload>] BEL        (ST = ESC \\ is accepted too)

kinds: ``E`` command line (payload escaped), ``C`` command starts, ``D`` command ended (payload:
exit code), ``P`` property (payload ``Cwd=<escaped path>``), ``A``/``B`` prompt start/end.
The nonce is random per terminal and only the shell knows it, so a program that prints a look-alike
sequence (``cat evil.txt``) cannot forge a command record: a sequence with a wrong nonce is passed
through untouched (xterm ignores unknown OSCs) and recorded nowhere. Sequences split across reads
are reassembled; a candidate is never held longer than it takes to see whether its nonce matches.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass

PREFIX = b"\x1b]633;"
BEL = b"\x07"
ST = b"\x1b\\"
ESC = b"\x1b"  # every sequence, and every partial prefix held back, starts with it
# Our own sequences are short except E (a pasted script); past this a candidate is passed through.
MAX_SEQUENCE_BYTES = 256 * 1024
KINDS = frozenset("ABCDEP")
NONCE_ENV = "CC_SHELL_NONCE"
_HEX = b"0123456789abcdefABCDEF"
# Where the runtime mounts the rc file: /etc/profile (login bash) sources /etc/profile.d/*.sh.
SANDBOX_SCRIPT_PATH = "/etc/profile.d/zz-coolcoding-shell-integration.sh"


def new_nonce() -> str:
    return secrets.token_hex(16)


def script_path() -> str:
    """Host path of ``shell_integration.sh`` (shipped as package data)."""
    from importlib import resources  # here: the agent imports this module, and not this (~4 ms)

    return str(resources.files("coolcoding.terminal").joinpath("shell_integration.sh"))


@dataclass(frozen=True)
class ShellEvent:
    kind: str  # one of KINDS
    payload: str = ""


Segment = bytes | ShellEvent


def unescape(raw: bytes) -> str:
    """Undo the script's escaping: ``\\\\`` -> ``\\``, ``\\xHH`` -> that byte; then UTF-8."""
    if b"\\" not in raw:
        return raw.decode("utf-8", "replace")
    out = bytearray()
    i, n = 0, len(raw)
    while i < n:
        c = raw[i]
        if c == 0x5C and i + 1 < n:
            nxt = raw[i + 1]
            if nxt == 0x5C:
                out.append(0x5C)
                i += 2
                continue
            hexpair = raw[i + 2 : i + 4]
            if nxt == 0x78 and len(hexpair) == 2 and all(h in _HEX for h in hexpair):
                out.append(int(hexpair, 16))
                i += 4
                continue
        out.append(c)
        i += 1
    return out.decode("utf-8", "replace")


def _partial_prefix_len(buf: bytes) -> int:
    """Length of the longest tail of ``buf`` that is a proper prefix of ``PREFIX``."""
    if b"\x1b" not in buf[-(len(PREFIX) - 1) :]:
        return 0
    for k in range(len(PREFIX) - 1, 0, -1):
        if buf.endswith(PREFIX[:k]):
            return k
    return 0


class ShellIntegrationParser:
    """Feed raw PTY output; get back the output without our sequences, interleaved with events."""

    def __init__(self, nonce: str) -> None:
        self._nonce = nonce.encode("ascii")
        # Bytes after "ESC]633;" needed to judge a candidate: "<kind>;<nonce>" + one more byte.
        self._judge_len = len(PREFIX) + 2 + len(self._nonce) + 1
        self._pending = b""

    def feed(self, data: bytes) -> list[Segment]:
        buf = self._pending + data if self._pending else data
        self._pending = b""
        if ESC not in buf:  # memchr, ~10x faster than the search for PREFIX (`cat` of a file)
            return [buf] if buf else []
        if PREFIX not in buf:
            keep = _partial_prefix_len(buf)
            if keep:
                self._pending = buf[-keep:]
                buf = buf[:-keep]
            return [buf] if buf else []
        out: list[Segment] = []
        pos = 0
        n = len(buf)
        while pos < n:
            i = buf.find(PREFIX, pos)
            if i < 0:
                keep = _partial_prefix_len(buf[pos:])
                if n - keep > pos:
                    out.append(buf[pos : n - keep])
                self._pending = buf[n - keep :]
                break
            if i > pos:
                out.append(buf[pos:i])
            verdict = self._judge(buf, i)
            if verdict == "wait":
                self._pending = buf[i:]
                break
            if verdict == "foreign":
                out.append(PREFIX)  # not ours: pass through; keep scanning after the prefix
                pos = i + len(PREFIX)
                continue
            end, term_len = self._terminator(buf, i)
            if end < 0:
                if n - i > MAX_SEQUENCE_BYTES:
                    out.append(PREFIX)
                    pos = i + len(PREFIX)
                    continue
                self._pending = buf[i:]
                break
            body = buf[i + len(PREFIX) : end]
            kind = chr(body[0])
            rest = body[2 + len(self._nonce) :]
            payload = unescape(rest[1:]) if rest.startswith(b";") else ""
            out.append(ShellEvent(kind, payload))
            pos = end + term_len
        return _merge(out)

    def _judge(self, buf: bytes, i: int) -> str:
        """ "ours" when kind and nonce match, "foreign" when they cannot, "wait" for more bytes."""
        head = buf[i + len(PREFIX) : i + self._judge_len]
        want = len(self._nonce) + 3
        if len(head) >= 1 and chr(head[0]) not in KINDS:
            return "foreign"
        if len(head) >= 2 and head[1:2] != b";":
            return "foreign"
        got = head[2 : 2 + len(self._nonce)]
        if not hmac.compare_digest(got, self._nonce[: len(got)]):
            return "foreign"
        if len(head) < want:
            return "wait"
        return "ours" if head[-1:] in (b";", BEL, b"\x1b") else "foreign"

    @staticmethod
    def _terminator(buf: bytes, i: int) -> tuple[int, int]:
        start = i + len(PREFIX)
        b = buf.find(BEL, start)
        s = buf.find(ST, start)
        if b >= 0 and (s < 0 or b < s):
            return b, 1
        if s >= 0:
            return s, 2
        return -1, 0

    def flush(self) -> bytes:
        """Whatever is held back (the shell exited mid-sequence): pass it through."""
        pending, self._pending = self._pending, b""
        return pending


def _merge(segments: list[Segment]) -> list[Segment]:
    """Join adjacent byte segments (the pass-through of a foreign prefix splits them)."""
    merged: list[Segment] = []
    for seg in segments:
        if isinstance(seg, bytes) and merged and isinstance(merged[-1], bytes):
            merged[-1] = merged[-1] + seg
        elif not isinstance(seg, bytes) or seg:
            merged.append(seg)
    return merged
