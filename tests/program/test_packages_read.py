"""The state read's package lines on apt: installed versions from dpkg-query; apt-cache (which reads apt's
whole cache) only on a host where none of the packages is installed yet, or when candidates are asked for
(`--dnf-candidates`, set with redis_minimum_version). Fake dpkg-query and apt-cache on PATH."""

from __future__ import annotations

import os

import pytest

from .conftest import run_program

FAKE_DPKG_QUERY = r"""#!/bin/sh
echo dpkg-query >> "$FAKE_LOG"
shift 3
for p in "$@"; do
  case " $FAKE_INSTALLED " in *" $p "*) printf '%s ii  5:7.0.15-1~deb12u7\n' "$p";; *) echo "dpkg-query: no packages found matching $p" >&2;; esac
done
"""
FAKE_APT_CACHE = r"""#!/bin/sh
echo apt-cache >> "$FAKE_LOG"
shift
for p in "$@"; do
  printf '%s:\n' "$p"
  case " $FAKE_INSTALLED " in *" $p "*) echo "  Installed: 5:7.0.15-1~deb12u7";; *) echo "  Installed: (none)";; esac
  echo "  Candidate: 5:7.0.15-1~deb12u7"
done
"""


@pytest.fixture
def read(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, text in (("dpkg-query", FAKE_DPKG_QUERY), ("apt-cache", FAKE_APT_CACHE)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "pm.log"

    def run(installed: str, *args: str) -> tuple[dict[str, str], list[str]]:
        log.write_text("")
        done = run_program("state", "--state-dir", str(tmp_path / "state"), "--pm", "apt",
                           "--packages", "redis-server valkey-server", *args,
                           env={"PATH": f"{bin_dir}:{os.environ['PATH']}", "FAKE_LOG": str(log),
                                "FAKE_INSTALLED": installed})
        assert done.code == 0, done.err
        lines = {line.split()[0][4:]: line.split(" ", 1)[1] for line in done.out.splitlines()
                 if line.startswith("pkg=")}
        return lines, [call.split()[0] for call in log.read_text().splitlines()]

    return run


def test_an_installed_server_is_read_from_dpkg_alone(read):
    lines, calls = read("redis-server")
    assert lines == {"redis-server": "5:7.0.15-1~deb12u7 -", "valkey-server": "- -"}
    assert calls == ["dpkg-query"]


def test_a_fresh_host_asks_apt_for_the_candidates(read):
    lines, calls = read("")
    assert lines == {"redis-server": "- 5:7.0.15-1~deb12u7", "valkey-server": "- 5:7.0.15-1~deb12u7"}
    assert calls == ["dpkg-query", "apt-cache"]


def test_a_minimum_version_asks_apt_even_when_installed(read):
    lines, calls = read("redis-server", "--dnf-candidates")
    assert lines == {"redis-server": "5:7.0.15-1~deb12u7 5:7.0.15-1~deb12u7", "valkey-server": "- 5:7.0.15-1~deb12u7"}
    assert calls == ["dpkg-query", "apt-cache"]
