"""Take the terminal queries out of a scrollback replay, so no emulator answers them again.

A program asks the terminal emulator things by printing queries (cursor position ``ESC[6n``,
device attributes ``ESC[c``/``ESC[>c``, colours ``ESC]11;?``, DECRQSS ...); the emulator answers
as if typed. Replayed to a reattaching client, those queries were answered a second time, long
after the program that asked had gone, and the answers landed in the shell as a command
(``2RR0;276;0c...``). Only queries go: every other sequence (colours, cursor moves, modes)
replays as it was. The client also ignores reports during a replay (``replay_bytes`` in the
``ready`` message); this covers clients that do not.
"""

from __future__ import annotations

import re

_CSI = rb"(?:\x1b\[|\xc2\x9b)"  # ESC [ or the 8-bit CSI (U+009B in UTF-8)
_OSC = rb"(?:\x1b\]|\xc2\x9d)"
_DCS = rb"(?:\x1bP|\xc2\x90)"
_ST = rb"(?:\x07|\x1b\\|\xc2\x9c)"

QUERIES = re.compile(
    b"|".join(
        [
            _CSI + rb"\??[0-9;]*n",  # DSR: status, cursor position (also DEC ?6n, ?996n ...)
            _CSI + rb"[>=]?[0-9;]*c",  # primary, secondary, tertiary device attributes
            _CSI + rb"\??[0-9;]*\$p",  # DECRQM: request a mode's state
            _CSI + rb">[0-9;]*q",  # XTVERSION
            _CSI + rb"\?[0-9;]*[mu]",  # XTQMODKEYS, kitty keyboard flags
            _CSI + rb"(?:1[13-689]|19|2[01])(?:;[0-9]*)?t",  # window state/size/title reports
            _CSI + rb"[01]?x",  # DECREQTPARM
            _OSC + rb"(?:4;[0-9]+|5;[0-9]+|1[0-9]|52;[a-z0-9]*);\?" + _ST,  # colour/clipboard "?"
            _DCS + rb"[$+]q[^\x1b\x07]*" + _ST,  # DECRQSS, XTGETTCAP
        ]
    )
)


def without_queries(data: bytes) -> bytes:
    """``data`` with every terminal query removed (see the module docstring)."""
    return QUERIES.sub(b"", data)
