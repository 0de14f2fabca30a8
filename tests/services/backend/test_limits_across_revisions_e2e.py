"""Limits across revisions (issue #15) on a running local platform (`ethixctl up` in a temp state dir):
two backend revisions, each on its own tag URL through the real Caddy router, share the per-client rate
limit and the failed-login throttle, because both count in the service's document store.

Clients are told apart by their real source address (127.0.0.2, 127.0.0.3, ... are loopback too): the
router's edge puts it in X-Forwarded-For as Cloud Run's front end does, and the revisions read it with
ETHIX_TRUSTED_PROXY_HOPS=1, seeded by `up`. No header is written by the test.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ethixctl.adapters.cloudrun import CloudRun
from tests.conftest import running_platform

pytestmark = pytest.mark.e2e

ME = "/api/v1/users/me"
LOGIN = "/api/v1/auth/login"
DEFAULT_LIMIT = 8
LIMITS = {
    "ETHIX_RATE_LIMIT_ENABLED": "true",
    # Per hour: the window starts at a client's first request and cannot end during the test.
    "ETHIX_RATE_LIMIT_DEFAULT": f"{DEFAULT_LIMIT}/hour",
    "ETHIX_RATE_LIMIT_AUTH": "100/hour",
    "ETHIX_LOGIN_FAILURES_PER_ACCOUNT": "2",
    "ETHIX_LOGIN_BACKOFF_BASE_SECONDS": "120",
}


@dataclass
class TwoRevisions:
    urls: dict[str, str]  # revision name -> its tag URL through the router

    def client(self, source: str) -> httpx.Client:
        return httpx.Client(transport=httpx.HTTPTransport(local_address=source), timeout=30)


@pytest.fixture(scope="module")
def two_revisions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoRevisions]:
    state_dir: Path = tmp_path_factory.mktemp("platform")
    with running_platform(state_dir) as info:
        cloud_run = CloudRun("local", "local", endpoint=info["control_plane_url"])
        image = cloud_run.get_service("backend").image
        urls = {}
        for tag in ("blue", "green"):
            revision = cloud_run.deploy_revision("backend", image, LIMITS, tag=tag)
            urls[revision.name] = cloud_run.tag_url("backend", tag)
        yield TwoRevisions(urls)


def _answered_by(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.headers["x-ethix-revision"]


def test_a_client_that_spent_its_limit_on_one_revision_is_refused_by_the_other(
    two_revisions: TwoRevisions,
) -> None:
    (blue, blue_url), (green, green_url) = two_revisions.urls.items()
    with two_revisions.client("127.0.0.2") as spender, two_revisions.client("127.0.0.3") as other:
        spent = [_answered_by(spender.get(blue_url + ME)) for _ in range(DEFAULT_LIMIT)]
        assert spent == [(401, blue)] * DEFAULT_LIMIT
        refused = spender.get(green_url + ME)
        assert _answered_by(refused) == (429, green)
        assert int(refused.headers["retry-after"]) > 60
        # The limit is the spender's, not the router's: another client still gets through on both.
        assert _answered_by(other.get(green_url + ME)) == (401, green)
        assert _answered_by(other.get(blue_url + ME)) == (401, blue)


def test_failed_logins_on_one_revision_block_the_account_on_the_other(two_revisions: TwoRevisions) -> None:
    (blue, blue_url), (green, green_url) = two_revisions.urls.items()
    victim = {"email": "victim@example.com", "password": "the-right-password"}
    with two_revisions.client("127.0.0.4") as owner, two_revisions.client("127.0.0.5") as guesser:
        assert _answered_by(owner.post(green_url + "/api/v1/auth/register", json=victim)) == (201, green)
        wrong = {**victim, "password": "a-wrong-guess"}
        assert [_answered_by(guesser.post(blue_url + LOGIN, json=wrong)) for _ in range(3)] == [
            (401, blue)
        ] * 3
        # Two failures allowed, the third started a block: on the other revision, for the owner too.
        blocked = owner.post(green_url + LOGIN, json=victim)
        assert _answered_by(blocked) == (429, green)
        assert blocked.json() == {"detail": "too many failed logins; retry later"}
