"""Small shell helpers shared by operations."""

from __future__ import annotations

import shlex

from pyinfra import host
from pyinfra.api import StringCommand, operation

from . import report


def fail_command(message: str) -> StringCommand:
    """A command that fails the host with `message`.

    Raising inside an operation at execution time would abort every host of the run;
    a failing command fails only this one, and pyinfra prints its stderr.
    """
    return StringCommand(f"echo {shlex.quote('hsi-redis: ' + message)} >&2; exit 1")


@operation()
def fail_host(message: str):
    """
    Fail this host with `message` (other hosts go on).

    + message: why; shown in the output and the report
    """
    yield fail_command(message)


def fail_step(step: str, problem: str, name: str | None = None) -> None:
    """This host cannot go on at `step`: the report says why, and the host fails with the same words
    (`name`: the failing operation's, "Check the <step>" by default)."""
    report.record(host.name, status="failed", failed_step=step, problem=problem)
    fail_host(name=name or f"Check the {step}", message=problem)
