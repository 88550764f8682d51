"""The blocked destinations of a network-enabled sandbox (netpolicy.py), checked whole."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address, IPv4Network

from coolcoding.sandbox.local.netpolicy import blocked_networks, host_networks, resolv_conf
from coolcoding.sandbox.local.rtnetlink import parse_address, prohibit_route, split

# slirp's 10.0.2.0/24 is cut out of 10/8 (its gateway and DNS are slirp's own).
TEN_WITHOUT_SLIRP = [
    "10.0.0.0/23", "10.0.3.0/24", "10.0.4.0/22", "10.0.8.0/21", "10.0.16.0/20", "10.0.32.0/19",
    "10.0.64.0/18", "10.0.128.0/17", "10.1.0.0/16", "10.2.0.0/15", "10.4.0.0/14", "10.8.0.0/13",
    "10.16.0.0/12", "10.32.0.0/11", "10.64.0.0/10", "10.128.0.0/9",
]  # fmt: skip
SPECIAL_AFTER_TEN = [
    "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.0.0.0/24",
    "192.168.0.0/16", "198.18.0.0/15",
]  # fmt: skip


def names(nets: list[IPv4Network]) -> list[str]:
    return [str(n) for n in nets]


def test_blocks_special_ranges_and_the_hosts_own_networks() -> None:
    host = [IPv4Network("203.0.113.7/32"), IPv4Network("203.0.113.0/24")]
    assert names(blocked_networks(host)) == [
        "0.0.0.0/8", *TEN_WITHOUT_SLIRP, *SPECIAL_AFTER_TEN,
        "203.0.113.0/24",
        "224.0.0.0/3",  # multicast 224/4 and reserved 240/4, collapsed
    ]  # fmt: skip


def test_allow_list_cuts_exactly_its_networks_out() -> None:
    allow = [IPv4Network("192.168.7.0/24"), IPv4Network("198.51.100.9/32")]
    host = [IPv4Network("198.51.100.9/32")]
    blocked = blocked_networks(host, allow)
    assert "192.168.0.0/16" not in names(blocked)
    assert not any(n.overlaps(a) for n in blocked for a in allow)
    assert sum(n.num_addresses for n in blocked if n.subnet_of(IPv4Network("192.168.0.0/16"))) == (
        65536 - 256
    )


def test_host_networks_are_addresses_and_their_lans() -> None:
    addresses = [
        (IPv4Address("127.0.0.1"), 8),
        (IPv4Address("192.0.2.2"), 24),
        (IPv4Address("8.8.8.1"), 1),
    ]
    assert names(host_networks(addresses)) == [
        "127.0.0.1/32", "192.0.2.2/32", "192.0.2.0/24",
        "8.8.8.1/32",  # a /1 is not the host's LAN: only its address
    ]  # fmt: skip


def test_prohibit_route_message_is_what_ip_route_sends() -> None:
    # ip route add prohibit 10.0.0.0/23: nlmsghdr (REQUEST|ACK|EXCL|CREATE), rtmsg (AF_INET,
    # /23, main table, static, universe, RTN_PROHIBIT), RTA_DST.
    msg = prohibit_route(IPv4Network("10.0.0.0/23"), seq=7)
    assert msg == struct.pack("=IHHII", 36, 24, 0x605, 7, 0) + bytes(
        [2, 23, 0, 0, 254, 4, 0, 8, 0, 0, 0, 0, 8, 0, 1, 0, 10, 0, 0, 0]
    )
    [(kind, seq, payload)] = list(split(msg))
    assert (kind, seq, len(payload)) == (24, 7, 20)


def test_address_attributes_are_parsed() -> None:
    ifa = struct.pack("=BBBBI", 2, 24, 0, 0, 3)
    attrs = struct.pack("=HH", 8, 1) + bytes([198, 51, 100, 1])  # IFA_ADDRESS (a peer)
    attrs += struct.pack("=HH", 8, 2) + bytes([192, 0, 2, 2])  # IFA_LOCAL: ours
    attrs += struct.pack("=HH", 9, 3) + b"eth0\x00" + b"\x00" * 3  # IFA_LABEL, padded to 4
    assert parse_address(ifa + attrs) == (IPv4Address("192.0.2.2"), 24)
    assert parse_address(struct.pack("=BBBBI", 10, 64, 0, 0, 3)) is None  # IPv6


def test_resolv_conf_names_slirps_dns() -> None:
    assert resolv_conf().startswith(b"nameserver 10.0.2.3\n")
