"""What every serving revision has loaded, as the revisions themselves report it through Prometheus.

A rotation never sleeps and hopes: after moving an alias it waits until each revision that serves the
consumer services (traffic above 0 %, or a tag while its scrape target is up) exports the expected
version for that alias — ``ethix_secret_version`` for keys, ``ethix_secret_in_use_version`` for a
connection secret (the database URL the open connection was made with). With several instances of a
revision, every instance must agree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ethixctl.errors import EthixError

if TYPE_CHECKING:
    from ethixctl.adapters.cloudrun import CloudRun
    from ethixctl.adapters.prometheus import Prometheus

LOADED = "ethix_secret_version"
IN_USE = "ethix_secret_in_use_version"
LAST_REFRESH = "ethix_secret_last_refresh_timestamp_seconds"
POLL_SECONDS = 0.5


def _up_revisions(prometheus: Prometheus) -> set[str]:
    """Revisions being scraped: their targets' health; where Prometheus lists no targets (Managed
    Prometheus: its collector scrapes), those whose instances report refreshing their secrets."""
    from ethixctl.adapters.prometheus import NotOffered

    try:
        return {t.labels.get("revision", "") for t in prometheus.targets() if t.health == "up"}
    except NotOffered:
        return {
            s.labels.get("revision", "") for s in prometheus.query(f"count by (revision) ({LAST_REFRESH})")
        }


def serving_revisions(cloud_run: CloudRun, prometheus: Prometheus, services: Iterable[str]) -> list[str]:
    """Revisions that can receive requests: any traffic, or a tag whose revision is up (being scraped)."""
    up = _up_revisions(prometheus)
    revisions: set[str] = set()
    for service in services:
        for target in cloud_run.get_service(service).traffic:
            if target.revision and (target.percent > 0 or (target.tag and target.revision in up)):
                revisions.add(target.revision)
    return sorted(revisions)


@dataclass
class Report:
    """Per revision, the versions its instances export (empty: the alias is absent there)."""

    expected: str | None
    versions: dict[str, list[str]] = field(default_factory=dict)

    def lagging(self) -> list[str]:
        """Revisions not (all instances) at the expected version; expected None means 'absent'."""
        wanted = [] if self.expected is None else [self.expected]
        return sorted(r for r, seen in self.versions.items() if sorted(set(seen)) != wanted)

    def describe(self) -> str:
        return ", ".join(
            f"{revision}: {'/'.join(sorted(set(seen))) if seen else 'none'}"
            for revision, seen in sorted(self.versions.items())
        )


def report(
    prometheus: Prometheus, metric: str, secret: str, alias: str, revisions: list[str], expected: str | None
) -> Report:
    selector = f'{metric}{{secret="{secret}"' + (f',alias="{alias}"' if metric == LOADED else "") + "}"
    seen: dict[str, list[str]] = {revision: [] for revision in revisions}
    for sample in prometheus.query(selector):
        revision = sample.labels.get("revision", "")
        if revision in seen:
            seen[revision].append(f"{sample.value:g}")
    return Report(expected, seen)


@dataclass
class Waited:
    seconds: float
    revisions: list[str]
    report: Report


def wait_until_reported(
    revisions_now: Callable[[], list[str]],
    report_now: Callable[[list[str]], Report],
    *,
    timeout: float,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
) -> Waited:
    """Poll until every serving revision reports the expected version (the serving set may change)."""
    started = time.monotonic()
    while True:
        revisions = revisions_now()
        current = report_now(revisions)
        if not current.lagging():
            return Waited(time.monotonic() - started, revisions, current)
        if time.monotonic() - started > timeout:
            raise EthixError(
                f"{what}: not every serving revision reported it within {timeout:.0f}s"
                f" ({current.describe()})",
                hint="nothing moved past the recorded stage; check the lagging revisions' logs"
                " (`ethixctl logs SERVICE --revision REV`), then `--resume`",
            )
        sleep(POLL_SECONDS)
