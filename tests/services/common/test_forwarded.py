"""The client behind N trusted proxies: the N-th X-Forwarded-For entry from the right, never the leftmost."""

from __future__ import annotations

import pytest

from services.common.forwarded import forwarded_client, subscriber


@pytest.mark.parametrize(
    ("values", "hops", "client"),
    [
        # Cloud Run's front end appended the real address after what the client wrote.
        (["6.6.6.6, 203.0.113.7"], 1, "203.0.113.7"),
        (["203.0.113.7"], 1, "203.0.113.7"),
        # Behind a load balancer too: the balancer's address is last, the client one before it.
        (["6.6.6.6,203.0.113.7, 130.211.0.1"], 2, "203.0.113.7"),
        # Several header lines are one list, in order.
        (["6.6.6.6", "203.0.113.7"], 1, "203.0.113.7"),
        (["2001:db8::1"], 1, "2001:db8::1"),
        # Fewer entries than proxies: the request did not come through them all; the peer stays.
        (["203.0.113.7"], 2, None),
        ([], 1, None),
        (["", " , "], 1, None),
        # The trusted position holds no address: nothing is taken from the header.
        (["203.0.113.7, unknown"], 1, None),
        (["203.0.113.7:4711"], 1, None),
        # No trusted proxy: the header is never read.
        (["203.0.113.7"], 0, None),
    ],
)
def test_the_client_is_the_entry_the_trusted_proxies_wrote(
    values: list[str], hops: int, client: str | None
) -> None:
    assert forwarded_client(values, hops) == client


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("203.0.113.7", "203.0.113.7"),
        # One subscriber's /64: every address in it is one client to the limits.
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:ffff:ffff:ffff:ffff", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
        # An IPv4 client seen through an IPv6 socket is its IPv4 address, not a /64 of mapped ones.
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("unknown", "unknown"),
    ],
)
def test_limits_count_an_ipv6_client_by_its_64(address: str, counted_as: str) -> None:
    assert subscriber(address) == counted_as
