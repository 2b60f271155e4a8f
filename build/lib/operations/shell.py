"""Small shell helpers shared by operations."""

from __future__ import annotations

import shlex

from pyinfra.api import StringCommand, operation


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
