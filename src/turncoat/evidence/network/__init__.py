"""Readers of network evidence: Zeek, Suricata, DNS servers, proxies, firewalls, DHCP servers.

Each module lists its formats in `FORMATS`; `NET_FORMATS` is their union, in the order sniffing
tries them (the most specific first).
"""

from __future__ import annotations

from turncoat.evidence.network import dhcp_server, dns_servers, firewall, proxy, suricata, zeek
from turncoat.evidence.network.base import NetContext, NetFormat

NET_FORMATS: tuple[NetFormat, ...] = (
    *zeek.FORMATS,
    *suricata.FORMATS,
    *dns_servers.FORMATS,
    *dhcp_server.FORMATS,
    *proxy.FORMATS,
    *firewall.FORMATS,
)
BY_NAME: dict[str, NetFormat] = {f.name: f for f in NET_FORMATS}


def sniff_network(head: bytes) -> str | None:
    """The name of the network format of a file starting with `head`, or None."""
    for fmt in NET_FORMATS:
        try:
            if fmt.sniff(head):
                return fmt.name
        except (ValueError, UnicodeError):
            continue
    return None


__all__ = ["NET_FORMATS", "BY_NAME", "NetContext", "NetFormat", "sniff_network"]
