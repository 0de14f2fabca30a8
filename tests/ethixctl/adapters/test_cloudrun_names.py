"""Resource names: one implementation, on the client library's path helpers, for adapter and control plane."""

from __future__ import annotations

import pytest
from google.cloud import run_v2

from ethixctl.adapters.cloudrun_names import Location, parse_location, parse_revision, parse_service


def test_names_round_trip_through_the_client_library_helpers() -> None:
    revision = Location("p", "europe-west1").service("backend").revision("backend-00002-abc")
    assert revision.path == run_v2.RevisionsClient.revision_path(
        "p", "europe-west1", "backend", "backend-00002-abc"
    )
    assert parse_revision(revision.path) == revision
    assert parse_service(revision.parent.path) == revision.parent
    assert parse_location(revision.parent.parent.path) == Location("p", "europe-west1")
    assert Location("p", "l").operation("x") == "projects/p/locations/l/operations/x"


@pytest.mark.parametrize(
    "path",
    [
        "projects/p/locations/l/services/backend/revisions/backend-00001-abc",  # a revision, not a service
        "projects/p/locations/l/services/",
        "services/backend",
    ],
)
def test_a_revision_or_malformed_path_is_not_a_service_name(path: str) -> None:
    # The library's own pattern is non-greedy and would call "backend/revisions/..." a service id.
    with pytest.raises(ValueError, match="not a service name"):
        parse_service(path)
