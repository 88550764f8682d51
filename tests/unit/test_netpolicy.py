"""The blocked destinations of a network-enabled sandbox (netpolicy.py), checked whole."""

from __future__ import annotations

import json
from ipaddress import IPv4Network

from coolcoding.sandbox.local.netpolicy import (
    blocked_networks,
    host_networks_from_ip_json,
    resolv_conf,
    route_batch,
)

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


def test_host_networks_from_ip_json() -> None:
    text = json.dumps([
        {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1", "prefixlen": 8}]},
        {"ifname": "eth0", "addr_info": [
            {"family": "inet", "local": "192.0.2.2", "prefixlen": 24},
            {"family": "inet6", "local": "fd00::2", "prefixlen": 64},
        ]},
        {"ifname": "vpn0", "addr_info": [{"family": "inet", "local": "8.8.8.1", "prefixlen": 1}]},
    ])  # fmt: skip
    assert names(host_networks_from_ip_json(text)) == [
        "127.0.0.1/32", "192.0.2.2/32", "192.0.2.0/24",
        "8.8.8.1/32",  # a /1 is not the host's LAN: only its address
    ]  # fmt: skip


def test_route_batch_and_resolv_conf() -> None:
    nets = [IPv4Network("10.0.0.0/23"), IPv4Network("224.0.0.0/3")]
    assert route_batch(nets) == "route add prohibit 10.0.0.0/23\nroute add prohibit 224.0.0.0/3\n"
    assert resolv_conf().startswith(b"nameserver 10.0.2.3\n")
