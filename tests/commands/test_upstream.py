"""packages.redis.io (key, repository, pin) and the version policy, at command level.

packages.redis.io is not reachable here: these tests check what the install call carries (the files it
writes before the package, the pinned install). The signing key is a throwaway key generated with gpg
(the deploy checks the fingerprint the operator confirmed against the file, whatever key it is). What
apt and dnf are then told on the host (one `apt-get update` after a repository file changed, the pinned
`dnf install`) is tested against fakes of those tools in tests/program/test_install_commands.py.
"""

from __future__ import annotations

import pytest

from operations.settings import SettingsError

from .harness import HostFixture, fresh_host, make_signing_key, run_flow

APT_KEY = "/etc/apt/keyrings/redis-archive-keyring.asc"
APT_SOURCES = "/etc/apt/sources.list.d/hsi-redis-upstream.sources"
APT_PIN = "/etc/apt/preferences.d/hsi-redis-upstream"
RPM_KEY = "/etc/pki/rpm-gpg/RPM-GPG-KEY-redis-upstream"
RPM_REPO = "/etc/yum.repos.d/hsi-redis-upstream.repo"
HEADER = "# Managed by hsi-redis (redis_source=upstream): changes made here are replaced on the next run.\n"
UPSTREAM_DEB = "6:7.4.2-1rl1~bookworm1"


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    path, fingerprint = make_signing_key(tmp_path_factory.mktemp("key"))
    return {"path": str(path), "fingerprint": fingerprint, "text": path.read_text()}


def upstream_data(key, **extra) -> dict:
    data = {
        "redis_source": "upstream",
        "redis_upstream_key": key["path"],
        "redis_upstream_key_fingerprint": key["fingerprint"],
    }
    data.update(extra)
    return data


def _repo_entry(call, path):
    entry = call.entry(path)
    assert (entry.mode, entry.user, entry.group, entry.flags) == ("644", "root", "root", ("repo",)), path
    return entry.content


def test_apt_key_sources_pin_and_install(key):
    host = fresh_host("debian-12", container="docker", candidate=UPSTREAM_DEB)
    result = run_flow({"deb12": (host, upstream_data(key))})
    install = result.call("deb12", "install")
    assert install.paths() == [APT_KEY, APT_SOURCES, APT_PIN], "written before the package"
    assert _repo_entry(install, APT_KEY) == key["text"]
    assert _repo_entry(install, APT_SOURCES) == HEADER + (
        "Types: deb\n"
        "URIs: https://packages.redis.io/deb\n"
        "Suites: bookworm\n"
        "Components: main\n"
        f"Signed-By: {APT_KEY}\n"
    )
    assert _repo_entry(install, APT_PIN) == HEADER + (
        "Package: redis redis-server redis-tools redis-sentinel\n"
        "Pin: version 6:7.4.*\n"
        "Pin-Priority: 1001\n"
        "\n"
        "Package: redis redis-server redis-tools redis-sentinel\n"
        "Pin: release o=Debian\n"
        "Pin-Priority: -1\n"
    )
    assert install.option("pm") == "apt" and install.option("packages") == "redis-server redis-tools"
    assert install.flag("apt-pinned")
    # Upstream's unit has no PrivateUsers: no container drop-in for it.
    assert "service.d" not in result.joined("deb12")
    assert result.report["deb12"].get("warnings") is None  # 7.4 meets HSI's requirement
    assert result.report["deb12"]["source"] == "upstream" and result.report["deb12"]["status"] == "ok"
    rerun = run_flow({"deb12": (host, upstream_data(key))})
    assert rerun.calls["deb12"] == [] and len(rerun.requests["deb12"]) == 1


def test_apt_pin_for_ubuntu_and_an_exact_version(key):
    result = run_flow({"noble": (fresh_host("ubuntu-24.04"), upstream_data(key, redis_upstream_version="7.4.2"))})
    install = result.call("noble", "install")
    pin = _repo_entry(install, APT_PIN)
    assert "Pin: version 6:7.4.2-*\n" in pin and "Pin: release o=Ubuntu\n" in pin
    assert "Suites: noble\n" in _repo_entry(install, APT_SOURCES)


def test_apt_replaces_the_distro_package_once(key):
    host = fresh_host("debian-12", installed={"redis-server": "5:7.0.15-1~deb12u3", "redis-tools": "5:7.0.15-1"},
                      candidate=UPSTREAM_DEB)
    distro = run_flow({"deb12": (host, upstream_data(key))})
    assert distro.call("deb12", "install").option("packages") == "redis-server redis-tools"
    assert host.installed["redis-server"] == UPSTREAM_DEB  # what apt installed, pinned
    done = run_flow({"deb12": (host, upstream_data(key))})
    assert done.calls["deb12"] == [], "repository files unchanged and the pinned series installed"
    (request,) = done.requests["deb12"]
    assert "redis-server" in request.packages


@pytest.mark.parametrize("release, directory", [("rocky-9", "rockylinux9"), ("rocky-8", "rockylinux8")])
def test_dnf_key_repo_and_pinned_install(key, release, directory):
    result = run_flow({"el": (fresh_host(release, candidate="7.4.2-1.el"), upstream_data(key))})
    install = result.call("el", "install")
    assert install.paths() == [RPM_KEY, RPM_REPO]
    assert _repo_entry(install, RPM_KEY) == key["text"]
    assert _repo_entry(install, RPM_REPO) == HEADER + (
        "[hsi-redis-upstream]\n"
        "name=Redis (packages.redis.io)\n"
        f"baseurl=https://packages.redis.io/rpm/{directory}\n"
        "enabled=1\n"
        "gpgcheck=1\n"
        f"gpgkey=file://{RPM_KEY}\n"
        "priority=1\n"
        "module_hotfixes=1\n"
    )
    assert install.option("dnf-spec") == "redis-7.4.*" and install.option("packages") == "redis"
    assert install.option("module-stream") is None, "upstream needs no module stream"
    # Upstream's rpm keeps its config under /etc/redis, even on EL8.
    assert result.call("el", "apply").option("config") == "/etc/redis/redis.conf"
    assert "/etc/redis/redis.conf" in result.call("el", "apply").paths()
    assert "/etc/redis.conf" not in result.joined("el")


def test_upstream_has_no_valkey_and_no_el10(key):
    result = run_flow({
        "el10": (fresh_host("rhel-10"), upstream_data(key)),
        "fedora42": (fresh_host("fedora-42"), upstream_data(key)),
    })
    for name in ("el10", "fedora42"):
        assert result.calls[name] == [] and len(result.requests[name]) == 1
        (failure,) = result.failures(name)
        assert "packages.redis.io has no valkey packages" in failure
        assert result.report[name]["failed_step"] == "version policy"


def test_auto_source_takes_upstream_only_to_meet_the_minimum(key):
    result = run_flow({
        "strict": (fresh_host("debian-12"), upstream_data(key, redis_source="auto", redis_minimum_version="7.4")),
        "lenient": (fresh_host("debian-12"), upstream_data(key, redis_source="auto")),
        "recent": (fresh_host("debian-13"), upstream_data(key, redis_source="auto", redis_minimum_version="7.4")),
    })
    strict = result.call("strict", "install")
    assert strict.flag("apt-pinned") and APT_PIN in strict.paths()
    for name in ("lenient", "recent"):
        install = result.call(name, "install")
        assert not install.flag("apt-pinned") and install.entries == ()
        assert install.option("packages") == "redis-server redis-tools"
        assert result.report[name]["source"] == "distro"
    assert any("7.0.15" in w for w in result.report["lenient"]["warnings"])


def test_auto_source_without_an_upstream_reports_the_distro_version(key):
    data = upstream_data(key, redis_source="auto", redis_minimum_version="7.4")
    result = run_flow({"f40": (fresh_host("fedora-40", candidate="7.2.7"), data)})
    assert result.calls["f40"] == []
    (failure,) = result.failures("f40")
    assert "redis 7.2.7 (dnf candidate) is below redis_minimum_version 7.4" in failure


def test_minimum_version_stops_only_that_host_before_any_change():
    result = run_flow({
        "old": (fresh_host("debian-12", candidate="5:7.0.15-1~deb12u3"), {"redis_minimum_version": "7.4"}),
        "new": (fresh_host("debian-13"), {"redis_minimum_version": "7.4"}),
        "valkey": (fresh_host("fedora-40"), {"redis_flavour": "valkey", "redis_minimum_version": "7.4"}),
    })
    assert result.calls["old"] == [] and len(result.requests["old"]) == 1  # the read, then the refusal
    (only,) = result.other["old"]
    assert only.startswith("echo 'hsi-redis: redis 5:7.0.15-1~deb12u3 (apt candidate) is below "
                           "redis_minimum_version 7.4; nothing was changed")
    assert only.endswith(">&2; exit 1")
    assert result.report["old"]["status"] == "failed"
    assert result.report["old"]["failed_step"] == "version policy"
    # the other hosts of the run go on: Redis 8.0 and Valkey 7.2 (which counts as 7.4)
    assert result.call("new", "install").option("packages") == "redis-server redis-tools"
    assert result.call("valkey", "install").option("packages") == "valkey"
    assert result.report["valkey"].get("warnings") is None
    assert result.report["new"]["status"] == "ok" and result.report["valkey"]["status"] == "ok"


def test_dnf_candidate_is_asked_only_with_a_minimum():
    """Without redis_minimum_version the candidate decides nothing: dnf (slow) is not asked."""
    result = run_flow({
        "f40": (fresh_host("fedora-40", candidate="7.2.7"), {"redis_minimum_version": "7.4"}),
        "el9": (fresh_host("rocky-9", candidate="6.2.19"), {}),
    })
    assert result.requests["f40"][0].dnf_candidates and not result.requests["el9"][0].dnf_candidates
    assert "redis 7.2.7 (dnf candidate) is below redis_minimum_version 7.4" in result.failures("f40")[0]
    # redis:7 is enabled first, so the table's 7.2 counts, not the default stream's 6.2
    assert any(w.startswith("redis 7.2 (what el-9 ships)") for w in result.report["el9"]["warnings"])


def test_a_candidate_from_another_module_stream_does_not_decide():
    """With a minimum, dnf tells the candidate of the stream enabled now (EL9's default: 6.2); the row
    enables redis:7 before installing, so that candidate says nothing about what will be installed."""
    result = run_flow({
        "el9": (fresh_host("rocky-9", candidate="6.2.19"), {"redis_minimum_version": "7.0"}),
        "el9-on-7": (fresh_host("rocky-9", candidate="7.2.6", module_stream="7"), {"redis_minimum_version": "7.0"}),
        "el9-too-old": (fresh_host("rocky-9", candidate="7.2.6", module_stream="7"),
                        {"redis_minimum_version": "7.4"}),
    })
    assert result.failures("el9") == [] and result.call("el9", "install").option("module-stream") == "redis:7"
    assert any(w.startswith("redis 7.2 (what el-9 ships)") for w in result.report["el9"]["warnings"])
    assert result.failures("el9-on-7") == []
    assert any(w.startswith("redis 7.2.6 (dnf candidate)") for w in result.report["el9-on-7"]["warnings"])
    assert "redis 7.2.6 (dnf candidate) is below redis_minimum_version 7.4" in result.failures("el9-too-old")[0]


def test_installed_version_decides_over_the_candidate():
    host = HostFixture("debian-12", installed={"redis-server": "6:7.4.1-1rl1~bookworm1", "redis-tools": "6:7.4.1"},
                       candidate="5:7.0.15-1~deb12u3")
    result = run_flow({"deb12": (host, {"redis_minimum_version": "7.4"})})
    assert result.failures("deb12") == [] and result.report["deb12"]["status"] == "ok"
    assert "install" not in result.verbs("deb12")


@pytest.mark.parametrize(
    "data, problem",
    [
        ({"redis_source": "upstream"}, "redis_upstream_key: required"),
        (
            {
                "redis_source": "upstream",
                "redis_upstream_key": "/nonexistent/key.asc",
                "redis_upstream_key_fingerprint": "A" * 40,
            },
            "redis_upstream_key: /nonexistent/key.asc:",
        ),
        ({"redis_source": "upstream", "redis_upstream_version": "7"}, "redis_upstream_version: '7' is not"),
        ({"redis_minimum_version": "seven"}, "redis_minimum_version: 'seven' is not a version"),
        (
            {"redis_source": "upstream", "redis_upstream_version": "6.2"},
            "redis_upstream_version: 6.2 is older than 7.0",
        ),
        ({"redis_source": "sometimes"}, "redis_source: 'sometimes' is not one of"),
        ({"redis_minimum_version": 7.4}, "redis_minimum_version: write the version as text"),
    ],
)
def test_bad_source_settings_stop_the_run_before_any_host(data, problem):
    with pytest.raises(SettingsError) as caught:
        run_flow({"deb12": (fresh_host("debian-12"), data)})
    assert f"@fake/deb12: {problem}" in str(caught.value)


def test_a_key_with_another_fingerprint_is_refused(key):
    wrong = "0" * 40
    with pytest.raises(SettingsError) as caught:
        run_flow({"deb12": (fresh_host("debian-12"), upstream_data(key, redis_upstream_key_fingerprint=wrong))})
    assert f"has fingerprint {key['fingerprint']}, not the confirmed {wrong}" in str(caught.value)


def test_upstream_series_below_the_minimum_is_refused(key):
    with pytest.raises(SettingsError) as caught:
        run_flow({"deb12": (fresh_host("debian-12"),
                            upstream_data(key, redis_upstream_version="7.2", redis_minimum_version="7.4"))})
    assert "redis_upstream_version: 7.2 is below redis_minimum_version 7.4" in str(caught.value)
