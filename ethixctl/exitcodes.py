"""The exit-code table, in one place so the CLI, the README and the tests agree."""

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    # Command-specific outcomes share 3 and 4; the table below says which command means what.
    ROLLED_BACK = 3
    TARGET_UNREACHABLE = 3
    UNVERIFIABLE = 3
    HELD = 4
    OBJECTIVES_MISSED = 4
    PLATFORM_UNAVAILABLE = 5
    INTERRUPTED = 130


EXIT_CODE_TABLE: list[tuple[int, str, str]] = [
    (0, "all", "success: promoted, rolled back on request, all smoke steps passed"),
    (0, "dr-drill", "restored, verified, smoke green, RTO and RPO within the scenario's targets"),
    (1, "all", "the operation failed (a smoke step or a preflight item failed, a deploy failed, …)"),
    (1, "dr-drill", "verification failed (the collection or object is named), or the smoke suite failed"),
    (2, "all", "bad usage: unknown flag, service or revision; invalid playbook or config file"),
    (3, "release", "the canary failed a gate and was rolled back automatically"),
    (3, "smoke", "the target did not answer (network errors after retries)"),
    (3, "dr-drill", "verification not possible: the snapshot has no manifest (Atlas's); nothing restored"),
    (3, "restore", "refused: the snapshot has no manifest, so the restored data could not be verified"),
    (4, "release", "held or frozen, or the analysis stayed inconclusive"),
    (4, "dr-drill", "restored and verified, but RTO or RPO missed its target"),
    (5, "all", "the platform is unreachable: control plane, Prometheus, or `ethixctl up` not running"),
    (130, "all", "interrupted (Ctrl-C / SIGTERM); durable state kept for `--resume`"),
]
