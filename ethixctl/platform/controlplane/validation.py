"""What the control plane checks before it accepts a change; nothing here changes any state.

The same checks run for `validate_only` requests, which is what makes those answers trustworthy.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from google.cloud import run_v2

from ethixctl.adapters.cloudrun_names import parse_service, short
from ethixctl.platform import manifests
from ethixctl.platform.controlplane import apierror
from ethixctl.platform.controlplane.apierror import ApiError
from ethixctl.platform.controlplane.resources import LATEST, REVISION, clone, revision_ready
from ethixctl.platform.controlplane.secretmanager import SecretManager

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_SERVICE_ID = 49
MAX_REVISION_ID = 63
MAX_TAG = 46


def check_service_id(service_id: str) -> None:
    if not service_id or not DNS_LABEL.match(service_id) or len(service_id) > MAX_SERVICE_ID:
        raise apierror.invalid_argument(
            f"invalid service id {service_id!r}: lowercase letters, digits and '-', "
            f"starting with a letter, at most {MAX_SERVICE_ID} characters"
        )


def check_template(service_name: str, template: run_v2.RevisionTemplate, secrets: SecretManager) -> None:
    if len(template.containers) != 1:
        raise apierror.invalid_argument(
            "the template needs exactly one container (the local platform runs one)"
        )
    container = template.containers[0]
    if not container.image:
        raise apierror.invalid_argument("template.containers[0].image is required")
    if "cpu" in container.resources.limits:
        try:
            manifests.cpu_cores(container.resources.limits["cpu"])
        except ValueError:
            raise apierror.invalid_argument(
                f"template.containers[0].resources.limits.cpu: {container.resources.limits['cpu']!r} "
                "is not a CPU quantity (e.g. 1, 2, 500m)"
            ) from None
    project = parse_service(service_name).project
    for var in container.env:
        ref = var.value_source.secret_key_ref
        if ref.secret:
            try:
                secrets.check_exists(project, ref.secret)
            except ApiError:
                raise apierror.invalid_argument(
                    f"env {var.name}: secret {ref.secret!r} does not exist in project {project!r}"
                ) from None


def check_revision_name(service_name: str, requested: str, revisions: Mapping[str, run_v2.Revision]) -> None:
    """A revision name a client chose for a new revision."""
    service_id = short(service_name)
    if (
        not requested.startswith(service_id + "-")
        or not DNS_LABEL.match(requested)
        or len(requested) > MAX_REVISION_ID
    ):
        raise apierror.invalid_argument(
            f"revision name {requested!r} must start with '{service_id}-' "
            f"and be a DNS label of at most {MAX_REVISION_ID} characters"
        )
    if parse_service(service_name).revision(requested).path in revisions:
        raise apierror.already_exists(f"Revision named '{requested}' already exists.")


def validate_traffic(
    service: run_v2.Service,
    traffic: list[run_v2.TrafficTarget],
    new_revision: str | None,
    revisions: Mapping[str, run_v2.Revision],
) -> list[run_v2.TrafficTarget]:
    """The traffic targets with short revision names and explicit types, or an INVALID_ARGUMENT."""
    total = 0
    tags: set[str] = set()
    cleaned: list[run_v2.TrafficTarget] = []
    for index, entry in enumerate(traffic):
        where = f"traffic[{index}]"
        target = clone(entry)
        if target.revision:
            target.revision = short(target.revision)
        if target.type_ == 0:
            target.type_ = REVISION if target.revision else LATEST
        if target.type_ == LATEST and target.revision:
            raise apierror.invalid_argument(f"{where}: type LATEST must not name a revision")
        if target.type_ == REVISION:
            if not target.revision:
                raise apierror.invalid_argument(f"{where}: type REVISION needs a revision name")
            _check_target_revision(service, target.revision, new_revision, revisions, where)
        elif service.latest_ready_revision == "" and new_revision is None:
            raise apierror.failed_precondition(f"{where}: LATEST has no ready revision to point at")
        if not 0 <= target.percent <= 100:
            raise apierror.invalid_argument(
                f"{where}: percent must be between 0 and 100, got {target.percent}"
            )
        if target.tag:
            if not DNS_LABEL.match(target.tag) or len(target.tag) > MAX_TAG:
                raise apierror.invalid_argument(
                    f"{where}: tag {target.tag!r} must be lowercase letters, digits and '-', "
                    f"start with a letter and be at most {MAX_TAG} characters"
                )
            if target.tag in tags:
                raise apierror.invalid_argument(f"{where}: tag {target.tag!r} is used more than once")
            tags.add(target.tag)
        elif target.percent == 0:
            raise apierror.invalid_argument(f"{where}: a 0% entry needs a tag, otherwise it has no effect")
        total += target.percent
        cleaned.append(target)
    if total != 100:
        raise apierror.invalid_argument(f"traffic percents must sum to 100, got {total}")
    return cleaned


def _check_target_revision(
    service: run_v2.Service,
    revision_id: str,
    new_revision: str | None,
    revisions: Mapping[str, run_v2.Revision],
    where: str,
) -> None:
    if revision_id == new_revision:
        return
    revision = revisions.get(parse_service(service.name).revision(revision_id).path)
    if revision is None:
        raise apierror.invalid_argument(
            f"{where}: revision {revision_id!r} does not exist "
            f"or does not belong to service {short(service.name)!r}"
        )
    if not revision_ready(revision):
        raise apierror.failed_precondition(
            f"{where}: revision {revision_id!r} is not ready and cannot serve traffic"
        )
