"""The start every entry point shares: settings, report, platform row, package source.

deploy.py, verify.py and rotate.py all begin with `prepare`, so each sees the host the same
way: the same validated settings, the same platform row (an upstream host gets the upstream
row's paths, not the distro's), the same version policy.
"""

from __future__ import annotations

from typing import NamedTuple

from . import platform, report, settings, sources
from .platform import Platform
from .settings import RedisSettings


class Prepared(NamedTuple):
    conf: RedisSettings
    plat: Platform
    identity: dict  # what the host is (os-release, container)
    packages: dict  # the package state the source was chosen from


def prepare(host, state) -> Prepared | None:
    """Settings -> report -> platform row -> package source and version policy, for one host.

    Returns None when this host cannot go on (unsupported platform, below
    `redis_minimum_version`): it is already marked failed, the other hosts go on. Invalid
    settings on any host stop the whole run before a host is touched (SettingsError).

    **Example:**

    .. code:: python

        ready = prologue.prepare(host, state)
        if ready:
            conf, plat, identity, packages = ready
    """
    conf = settings.load(host)  # validates every host first: a bad value stops the run untouched
    report.track(state, conf)
    plat, identity = platform.for_host(host, conf.flavour)  # unsupported: this host fails, others go on
    if plat is None:
        return None
    plat, packages = sources.for_host(host, conf, plat)  # one fact, decided before anything changes
    if plat is None:
        return None
    return Prepared(conf, plat, identity, packages)
