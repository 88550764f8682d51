"""What a network-enabled sandbox may reach: the blocked IPv4 ranges, as a pure function.

The sandbox's own network namespace (network.py) gets a ``prohibit`` route for every network
returned by ``blocked_networks``: connecting there fails with EACCES inside the sandbox before
a packet reaches the user-mode NAT (slirp4netns), which would otherwise open the connection
from the host's network namespace - to the host's loopback services, its own addresses (a
service bound to 0.0.0.0), the machines of its private networks, or a cloud metadata address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from ipaddress import IPv4Address, IPv4Network

# slirp4netns's default virtual network: the sandbox is 10.0.2.100, the gateway 10.0.2.2 (host
# loopback, refused by --disable-host-loopback), the DNS forwarder 10.0.2.3. Never blocked: its
# addresses are slirp's own, not the host's.
SLIRP_NETWORK = IPv4Network("10.0.2.0/24")
SLIRP_DNS = "10.0.2.3"

# Special-purpose and private ranges (RFC 6890): never the public internet.
ALWAYS_BLOCKED: tuple[IPv4Network, ...] = tuple(
    IPv4Network(n)
    for n in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",  # private
        "100.64.0.0/10",  # carrier-grade NAT (also some clouds' internal services)
        "127.0.0.0/8",  # loopback (the sandbox's own lo answers first: the local table wins)
        "169.254.0.0/16",  # link-local, the cloud metadata address 169.254.169.254
        "172.16.0.0/12",  # private
        "192.0.0.0/24",  # IETF protocol assignments
        "192.168.0.0/16",  # private
        "198.18.0.0/15",  # benchmarking
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and the broadcast address
    )
)
# A host's directly connected network this large is not "its LAN" (e.g. a /1 from a VPN):
# only its own address is blocked then.
MIN_LAN_PREFIX = 16


def host_networks(addresses: Iterable[tuple[IPv4Address, int]]) -> list[IPv4Network]:
    """The host's own IPv4 addresses (/32) and the networks they are on, from its interfaces'
    (address, prefix length) pairs."""
    out: list[IPv4Network] = []
    for address, prefix in addresses:
        out.append(IPv4Network(address))
        if prefix >= MIN_LAN_PREFIX:
            out.append(IPv4Network(f"{address}/{prefix}", strict=False))
    return out


def _subtract(networks: Iterable[IPv4Network], holes: Sequence[IPv4Network]) -> list[IPv4Network]:
    result = list(networks)
    for hole in holes:
        next_result: list[IPv4Network] = []
        for net in result:
            if hole.supernet_of(net):
                continue
            if net.supernet_of(hole):
                next_result.extend(net.address_exclude(hole))
            else:
                next_result.append(net)
        result = next_result
    return result


def blocked_networks(
    host_networks: Iterable[IPv4Network], allow: Sequence[IPv4Network] = ()
) -> list[IPv4Network]:
    """Every network a sandbox must not reach, minus the ``allow`` list and slirp's own network,
    collapsed and sorted (deterministic: the unit test checks the whole list)."""
    wanted = [*ALWAYS_BLOCKED, *host_networks]
    return sorted(ipaddress.collapse_addresses(_subtract(wanted, [SLIRP_NETWORK, *allow])))


def resolv_conf() -> bytes:
    """The sandbox's /etc/resolv.conf: slirp's DNS forwarder (the host's may be on loopback or a
    private address the sandbox cannot reach)."""
    return f"nameserver {SLIRP_DNS}\noptions edns0\n".encode()
