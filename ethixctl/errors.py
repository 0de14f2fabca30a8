"""Errors the library raises; the CLI turns each into a message and an exit code."""

from __future__ import annotations

from ethixctl.exitcodes import ExitCode


class EthixError(Exception):
    """An expected failure with a message meant for the operator."""

    exit_code: ExitCode = ExitCode.FAILED

    def __init__(self, message: str, *, hint: str | None = None, exit_code: ExitCode | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(EthixError):
    exit_code = ExitCode.USAGE


class PlaybookError(UsageError):
    """A playbook or config file is invalid; carries the file, line and field."""

    def __init__(self, path: str, line: int | None, field: str | None, problem: str):
        where = f"{path}:{line}" if line else path
        what = f"{field}: {problem}" if field else problem
        super().__init__(f"{where}: {what}")
        self.path = path
        self.line = line
        self.field = field
        self.problem = problem


class PlatformUnavailable(EthixError):
    exit_code = ExitCode.PLATFORM_UNAVAILABLE


def from_os_error(exc: OSError) -> EthixError:
    """An OSError as one line that names the path: a bad path is a usage error (exit 2), anything
    without a path (a socket, a pipe) an operation that failed (exit 1)."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    if exc.filename is None:
        return EthixError(reason)
    where = str(exc.filename) + (f" -> {exc.filename2}" if exc.filename2 is not None else "")
    return UsageError(f"{where}: {reason}")
