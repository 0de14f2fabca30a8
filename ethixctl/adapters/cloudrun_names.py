"""Cloud Run resource names, built and parsed with the client library's own path helpers.

One implementation for the adapter (the client side) and the local control plane (the server side),
so the two cannot disagree on what `projects/P/locations/L/services/S/revisions/R` means.
google.cloud.run_v2 is imported inside the functions: the CLI imports this module without paying for it.
"""

from __future__ import annotations

from dataclasses import dataclass


def _segments_ok(parts: dict[str, str]) -> bool:
    # The library's patterns are non-greedy `.+?`: `services/a/revisions/b` would parse as service
    # "a/revisions/b". Every segment of a well-formed name is one path segment.
    return bool(parts) and all(part and "/" not in part for part in parts.values())


@dataclass(frozen=True)
class Location:
    project: str
    location: str

    @property
    def path(self) -> str:
        from google.cloud.run_v2 import ServicesClient

        return str(ServicesClient.common_location_path(self.project, self.location))

    def service(self, service: str) -> ServiceName:
        return ServiceName(self.project, self.location, service)

    def operation(self, operation_id: str) -> str:
        return f"{self.path}/operations/{operation_id}"


@dataclass(frozen=True)
class ServiceName:
    project: str
    location: str
    service: str

    @property
    def path(self) -> str:
        from google.cloud.run_v2 import ServicesClient

        return str(ServicesClient.service_path(self.project, self.location, self.service))

    @property
    def parent(self) -> Location:
        return Location(self.project, self.location)

    def revision(self, revision: str) -> RevisionName:
        return RevisionName(self.project, self.location, self.service, revision)


@dataclass(frozen=True)
class RevisionName:
    project: str
    location: str
    service: str
    revision: str

    @property
    def path(self) -> str:
        from google.cloud.run_v2 import ServicesClient

        return str(ServicesClient.revision_path(self.project, self.location, self.service, self.revision))

    @property
    def parent(self) -> ServiceName:
        return ServiceName(self.project, self.location, self.service)


def parse_location(path: str) -> Location:
    from google.cloud.run_v2 import ServicesClient

    parts = ServicesClient.parse_common_location_path(path)
    if not _segments_ok(parts):
        raise ValueError(f"not a location name: {path!r}")
    return Location(**parts)


def parse_service(path: str) -> ServiceName:
    from google.cloud.run_v2 import ServicesClient

    parts = ServicesClient.parse_service_path(path)
    if not _segments_ok(parts):
        raise ValueError(f"not a service name: {path!r}")
    return ServiceName(**parts)


def parse_revision(path: str) -> RevisionName:
    from google.cloud.run_v2 import ServicesClient

    parts = ServicesClient.parse_revision_path(path)
    if not _segments_ok(parts):
        raise ValueError(f"not a revision name: {path!r}")
    return RevisionName(**parts)


def short(path: str) -> str:
    """The last segment: the service or revision id (an id stays as it is)."""
    return path.rsplit("/", 1)[-1]
