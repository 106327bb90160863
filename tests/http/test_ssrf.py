"""The webhook SSRF guard judges an IPv6 address that embeds IPv4 ones (IPv4-mapped, 6to4,
Teredo, NAT64) by the addresses it embeds, so no spelling of a private address gets
through, and a public one reached over a transition form still does."""

from __future__ import annotations

import pytest

from conveyor.errors import InvalidOptionError
from conveyor.webhooks import address_problem, check_url

PRIVATE_EMBEDDED = {
    "2002:7f00:1::": "127.0.0.1 via 6to4",
    "2002:a9fe:a9fe::1": "169.254.169.254 via 6to4",
    "2002:c0a8:101::": "192.168.1.1 via 6to4",
    "2002:a00:7::": "10.0.0.7 via 6to4",
    # Teredo: the server 65.54.227.120, the client (inverted bits) 127.0.0.1 / 10.0.0.1
    "2001:0:4136:e378:8000:63bf:80ff:fffe": "127.0.0.1 via Teredo",
    "2001:0:4136:e378:8000:63bf:f5ff:fffe": "10.0.0.1 via Teredo",
    "64:ff9b::7f00:1": "127.0.0.1 via NAT64",
    "64:ff9b::a9fe:a9fe": "169.254.169.254 via NAT64",
    "::ffff:127.0.0.1": "127.0.0.1 via IPv4-mapped",
}


@pytest.mark.parametrize(("address", "why"), PRIVATE_EMBEDDED.items())
def test_ipv6_forms_embedding_a_private_ipv4_are_refused(address: str, why: str) -> None:
    problem = address_problem(address)
    assert problem is not None and why in problem
    with pytest.raises(InvalidOptionError, match="public addresses only"):
        check_url(f"http://[{address}]/hook", allow_private=False)


@pytest.mark.parametrize("address", [
    "2002:808:808::1",  # 6to4 of 8.8.8.8
    "64:ff9b::808:808",  # NAT64 of 8.8.8.8
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo: server and client both public
    "2606:4700:4700::1111",  # plain public IPv6
])
def test_ipv6_forms_embedding_a_public_ipv4_are_judged_by_it(address: str) -> None:
    assert address_problem(address) is None
    assert check_url(f"http://[{address}]/hook", allow_private=False)


def test_allow_private_still_lifts_the_guard() -> None:
    assert check_url("http://[2002:7f00:1::]/hook", allow_private=True)
