"""Which way a registered phone is reached: over the flow it registered on, or at its Contact.

Phones sit behind NAT (the Contact says 192.168.1.5:5060, the REGISTER came from 203.0.113.7:41234)
and TCP softphones rarely accept connections: they wait for requests on the connection they
registered over. So a request to a registered Contact follows the registration's flow:

- over TCP (and any other stream transport), the registration's connection while it is open
  (RFC 5626 §5.3, RFC 3261 §18.2.2 connection reuse); once it closed, the Contact as it says;
- over UDP, the REGISTER's source address when the Contact names another host (NAT: symmetric
  routing, RFC 3581 applied to the registration), if `nat_contacts` is "source".

The Request-URI stays the Contact URI (RFC 3261 §10.3, §16.5); only the next hop changes.
"""

from __future__ import annotations

from collections.abc import Callable

Target = tuple[str, str, int]

NAT_SOURCE = "source"  # UDP: reach a NATed phone at the address its REGISTER came from
NAT_CONTACT = "contact"  # UDP: trust the Contact as written
NAT_CONTACTS = (NAT_SOURCE, NAT_CONTACT)


def registration_flow(
    source: Target, contact_hop: Target, nat_contacts: str, connected: Callable[[Target], bool]
) -> Target | None:
    """The flow a request to a registered Contact takes instead of `contact_hop`, or None.

    `source` is where the REGISTER came from (transport, host, port); `connected` tells whether a
    stream connection to a peer is still open.
    """
    if source[0] != "udp":
        return source if connected(source) else None
    if nat_contacts != NAT_SOURCE or contact_hop[0] != "udp":
        return None
    if contact_hop[1].lower() == source[1].lower():
        return None  # the phone speaks from the host it names: not behind NAT, its Contact port holds
    return source


def same_side_of_nat(target_host: str, contact_host: str, flow: Target) -> bool:
    """Whether a new remote target (a 2xx or refresh Contact) still names the phone behind `flow`:
    the host it registered with, or the flow's own (public) address."""
    host = target_host.lower()
    return host in (contact_host.lower(), flow[1].lower())
