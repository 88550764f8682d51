"""The few rtnetlink requests a sandbox's network needs, without spawning ``ip``: list the
host's IPv4 addresses, add ``prohibit`` routes. Message builders are pure (unit-tested);
``NetlinkSocket`` talks to the kernel in the calling thread's network namespace."""

from __future__ import annotations

import socket
import struct
from collections.abc import Iterable, Iterator
from ipaddress import IPv4Address, IPv4Network

NLMSG_ERROR, NLMSG_DONE = 2, 3
RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE = 20, 22, 24
NLM_F_REQUEST, NLM_F_ACK, NLM_F_EXCL, NLM_F_CREATE, NLM_F_DUMP = 0x1, 0x4, 0x200, 0x400, 0x300
IFA_ADDRESS, IFA_LOCAL = 1, 2
RTA_DST = 1
RT_TABLE_MAIN, RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_PROHIBIT = 254, 4, 0, 8
_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid


def _align(n: int) -> int:
    return (n + 3) & ~3


def message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return _HDR.pack(_HDR.size + len(body), kind, flags, seq, 0) + body


def prohibit_route(net: IPv4Network, seq: int) -> bytes:
    """RTM_NEWROUTE: ``ip route add prohibit <net>`` in the main table."""
    rtmsg = struct.pack("=BBBBBBBBI", socket.AF_INET, net.prefixlen, 0, 0, RT_TABLE_MAIN,
                        RTPROT_STATIC, RT_SCOPE_UNIVERSE, RTN_PROHIBIT, 0)  # fmt: skip
    dst = struct.pack("=HH", 8, RTA_DST) + net.network_address.packed
    return message(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq,
                   rtmsg + dst)  # fmt: skip


def get_addresses(seq: int) -> bytes:
    """RTM_GETADDR dump of every IPv4 address."""
    return message(RTM_GETADDR, NLM_F_REQUEST | NLM_F_DUMP, seq,
                   struct.pack("=BBBBI", socket.AF_INET, 0, 0, 0, 0))  # fmt: skip


def split(data: bytes) -> Iterator[tuple[int, int, bytes]]:
    """(type, seq, payload) of each message in one datagram."""
    off = 0
    while off + _HDR.size <= len(data):
        length, kind, _flags, seq, _pid = _HDR.unpack_from(data, off)
        if length < _HDR.size:
            raise ValueError("bad netlink message length")
        yield kind, seq, data[off + _HDR.size : off + length]
        off += _align(length)


def parse_address(payload: bytes) -> tuple[IPv4Address, int] | None:
    """(address, prefix length) of an RTM_NEWADDR payload (IFA_LOCAL, else IFA_ADDRESS)."""
    family, prefixlen = payload[0], payload[1]
    if family != socket.AF_INET:
        return None
    attrs: dict[int, bytes] = {}
    off = 8  # ifaddrmsg
    while off + 4 <= len(payload):
        length, kind = struct.unpack_from("=HH", payload, off)
        if length < 4:
            break
        attrs[kind] = payload[off + 4 : off + length]
        off += _align(length)
    raw = attrs.get(IFA_LOCAL) or attrs.get(IFA_ADDRESS)
    return (IPv4Address(raw), prefixlen) if raw and len(raw) == 4 else None


class NetlinkSocket:
    """An rtnetlink socket of the calling thread's network namespace."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def _replies(self, seq: int) -> Iterator[tuple[int, bytes]]:
        while True:
            for kind, got_seq, payload in split(self.sock.recv(65536)):
                if got_seq != seq:
                    continue
                if kind == NLMSG_DONE:
                    return
                if kind == NLMSG_ERROR:
                    (err,) = struct.unpack_from("=i", payload)
                    if err:
                        raise OSError(-err, f"rtnetlink: error {-err}")
                    return  # an ACK
                yield kind, payload

    def addresses(self) -> list[tuple[IPv4Address, int]]:
        self.seq += 1
        self.sock.send(get_addresses(self.seq))
        out = []
        for kind, payload in self._replies(self.seq):
            parsed = parse_address(payload) if kind == RTM_NEWADDR else None
            if parsed is not None:
                out.append(parsed)
        return out

    def add_prohibit_routes(self, nets: Iterable[IPv4Network]) -> None:
        for net in nets:
            self.seq += 1
            self.sock.send(prohibit_route(net, self.seq))
            for _ in self._replies(self.seq):
                pass
