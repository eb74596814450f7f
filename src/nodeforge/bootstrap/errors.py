"""Errors of the agent, each carrying its exit code, and the warnings collected along the way."""

from __future__ import annotations

from nodeforge.bootstrap.record import dataclass, field

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_INVALID = 3
EXIT_IMDS = 4
EXIT_CIS = 5
EXIT_WRITE = 6
EXIT_SERVICES = 7


class BootstrapError(Exception):
    """A failure that ends the run with ``exit_code``; ``problems`` lists every reason found."""

    exit_code = EXIT_INTERNAL

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = list(problems or [])

    def render(self) -> str:
        lines = [f"error: {self}"]
        lines.extend(f"  - {problem}" for problem in self.problems)
        return "\n".join(lines)


class InvalidInputError(BootstrapError):
    """The user data (or legacy arguments) cannot be turned into a valid node configuration."""

    exit_code = EXIT_INVALID


class ImdsError(BootstrapError):
    """The instance metadata service did not answer, or lacks a value the agent needs."""

    exit_code = EXIT_IMDS


class CisError(BootstrapError):
    """The resulting kubelet configuration breaks a CIS setting (``--cis-mode=enforce``)."""

    exit_code = EXIT_CIS


class WriteError(BootstrapError):
    """A file could not be written."""

    exit_code = EXIT_WRITE


class ServiceError(BootstrapError):
    """systemctl failed to reload, enable or start a service."""

    exit_code = EXIT_SERVICES


@dataclass
class Diagnostics:
    """Errors and warnings collected while reading the input, so that every bad field is named at once."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors.append(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def raise_if_errors(self, what: str) -> None:
        if self.errors:
            raise InvalidInputError(what, self.errors)
