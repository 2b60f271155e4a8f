"""packages.redis.io (key, repository, pin) and the version policy, at command level.

packages.redis.io is not reachable here: these tests check what the deploy would write
and run. The signing key is a throwaway key generated with gpg (the deploy checks the
fingerprint the operator confirmed against the file, whatever key it is).
"""

from __future__ import annotations

import pytest

from operations.settings import SettingsError

from .harness import FAIL_HOST_COMMAND, HEALTHY_SERVER, HostFixture, make_signing_key, run_deploy

APT_KEY = "/etc/apt/keyrings/redis-archive-keyring.asc"
APT_SOURCES = "/etc/apt/sources.list.d/hsi-redis-upstream.sources"
APT_PIN = "/etc/apt/preferences.d/hsi-redis-upstream"
RPM_KEY = "/etc/pki/rpm-gpg/RPM-GPG-KEY-redis-upstream"
RPM_REPO = "/etc/yum.repos.d/hsi-redis-upstream.repo"
HEADER = "# Managed by hsi-redis (redis_source=upstream): changes made here are replaced on the next run.\n"
APT_UPSTREAM_INSTALL = (
    "DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "
    '-o Dpkg::Options::="--force-confdef" -o Dpkg::Options::="--force-confold" '
    "-o DPkg::Lock::Timeout=300 redis-server redis-tools"
)


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


def _server(version: str) -> dict:
    return dict(HEALTHY_SERVER, redis_version=version)


def test_apt_key_sources_pin_and_install(key):
    result = run_deploy(
        {"deb12": (HostFixture("debian-12", container="docker", server=_server("7.4.2")), upstream_data(key))}
    )
    assert result.uploaded("deb12", APT_KEY) == key["text"]
    assert result.uploaded("deb12", APT_SOURCES) == HEADER + (
        "Types: deb\n"
        "URIs: https://packages.redis.io/deb\n"
        "Suites: bookworm\n"
        "Components: main\n"
        f"Signed-By: {APT_KEY}\n"
    )
    assert result.uploaded("deb12", APT_PIN) == HEADER + (
        "Package: redis redis-server redis-tools redis-sentinel\n"
        "Pin: version 6:7.4.*\n"
        "Pin-Priority: 1001\n"
        "\n"
        "Package: redis redis-server redis-tools redis-sentinel\n"
        "Pin: release o=Debian\n"
        "Pin-Priority: -1\n"
    )
    texts = result.texts("deb12")
    key_write = next(t for t in texts if f"{APT_KEY};" in t)
    assert 'chown root:root "$tmp"; chmod 644' in key_write
    # Lists are fetched once, after the repository was written, then the pinned install.
    assert texts.count("apt-get update") == 1
    assert texts.index("apt-get update") > texts.index(next(t for t in texts if f"{APT_PIN};" in t))
    assert texts[texts.index("apt-get update") + 1] == APT_UPSTREAM_INSTALL
    # Upstream's unit has no PrivateUsers: no container drop-in for it.
    assert not any("service.d" in t for t in texts)
    assert result.report["deb12"].get("warnings") is None  # 7.4 meets HSI's requirement


def test_apt_pin_for_ubuntu_and_an_exact_version(key):
    result = run_deploy(
        {"noble": (HostFixture("ubuntu-24.04"), upstream_data(key, redis_upstream_version="7.4.2"))}
    )
    pin = result.uploaded("noble", APT_PIN)
    assert "Pin: version 6:7.4.2-*\n" in pin and "Pin: release o=Ubuntu\n" in pin
    assert "Suites: noble\n" in result.uploaded("noble", APT_SOURCES)


def test_apt_replaces_the_distro_package_once(key):
    distro = run_deploy(
        {
            "deb12": (
                HostFixture("debian-12", installed={"redis-server": "5:7.0.15-1~deb12u3"}),
                upstream_data(key),
            )
        }
    )
    assert APT_UPSTREAM_INSTALL in distro.texts("deb12")
    files = {
        "deb12": {
            APT_KEY: key["text"],
            APT_SOURCES: distro.uploaded("deb12", APT_SOURCES),
            APT_PIN: distro.uploaded("deb12", APT_PIN),
        }
    }
    done = run_deploy(
        {
            "deb12": (
                HostFixture("debian-12", installed={"redis-server": "6:7.4.2-1rl1~bookworm1"}),
                upstream_data(key),
            )
        },
        files=files,
    )
    texts = done.texts("deb12")
    assert APT_UPSTREAM_INSTALL not in texts
    assert not any(p in t for t in texts for p in (APT_KEY, APT_SOURCES, APT_PIN))
    assert "apt-get update" in texts  # only the hourly refresh, since nothing changed
    assert done.fact_kwargs("deb12", "PackageState")[0] == {
        "package_manager": "apt",
        "package": "redis-server",
        "query_dnf": True,
    }


@pytest.mark.parametrize("release, directory", [("rocky-9", "rockylinux9"), ("rocky-8", "rockylinux8")])
def test_dnf_key_repo_and_pinned_install(key, release, directory):
    result = run_deploy({"el": (HostFixture(release), upstream_data(key))})
    assert result.uploaded("el", RPM_KEY) == key["text"]
    assert result.uploaded("el", RPM_REPO) == HEADER + (
        "[hsi-redis-upstream]\n"
        "name=Redis (packages.redis.io)\n"
        f"baseurl=https://packages.redis.io/rpm/{directory}\n"
        "enabled=1\n"
        "gpgcheck=1\n"
        f"gpgkey=file://{RPM_KEY}\n"
        "priority=1\n"
        "module_hotfixes=1\n"
    )
    texts = result.texts("el")
    assert "dnf install -y -q 'redis-7.4.*'" in texts
    assert not any("module enable" in t for t in texts), "upstream needs no module stream"
    # Upstream's rpm keeps its config under /etc/redis, even on EL8.
    assert any('mv -f "$tmp" /etc/redis/redis.conf;' in t for t in texts)


def test_upstream_has_no_valkey_and_no_el10(key):
    result = run_deploy(
        {
            "el10": (HostFixture("rhel-10"), upstream_data(key)),
            "fedora42": (HostFixture("fedora-42"), upstream_data(key)),
        }
    )
    for name in ("el10", "fedora42"):
        assert (
            len(result.texts(name)) == 1
            and "packages.redis.io has no valkey packages" in result.texts(name)[0]
        )
        assert result.report[name]["failed_step"] == "version policy"


def test_auto_source_takes_upstream_only_to_meet_the_minimum(key):
    result = run_deploy(
        {
            "strict": (
                HostFixture("debian-12"),
                upstream_data(key, redis_source="auto", redis_minimum_version="7.4"),
            ),
            "lenient": (HostFixture("debian-12"), upstream_data(key, redis_source="auto")),
            "recent": (
                HostFixture("debian-13"),
                upstream_data(key, redis_source="auto", redis_minimum_version="7.4"),
            ),
        }
    )
    assert APT_UPSTREAM_INSTALL in result.texts("strict")
    for name in ("lenient", "recent"):
        assert not any(APT_PIN in t or APT_UPSTREAM_INSTALL == t for t in result.texts(name))
        assert any(
            t.endswith(
                "install --no-install-recommends -q -o DPkg::Lock::Timeout=300 redis-server redis-tools"
            )
            for t in result.texts(name)
        )
    assert any("7.0.15" in w for w in result.report["lenient"]["warnings"])


def test_auto_source_without_an_upstream_reports_the_distro_version(key):
    data = upstream_data(key, redis_source="auto", redis_minimum_version="7.4")
    result = run_deploy({"f40": (HostFixture("fedora-40", candidate="7.2.7"), data)})
    (only,) = result.texts("f40")
    assert "redis 7.2.7 (dnf candidate) is below redis_minimum_version 7.4" in only


def test_minimum_version_stops_only_that_host_before_any_change():
    result = run_deploy(
        {
            "old": (
                HostFixture("debian-12", candidate="5:7.0.15-1~deb12u3"),
                {"redis_minimum_version": "7.4"},
            ),
            "new": (HostFixture("debian-13"), {"redis_minimum_version": "7.4"}),
            "valkey": (HostFixture("fedora-40"), {"redis_flavour": "valkey", "redis_minimum_version": "7.4"}),
        }
    )
    (only,) = result.texts("old")  # the failing check is all the host gets
    assert only.startswith(
        "echo 'hsi-redis: redis 5:7.0.15-1~deb12u3 (apt candidate) is below "
        "redis_minimum_version 7.4; nothing was changed"
    )
    assert only.endswith(">&2; exit 1")
    assert result.report["old"]["status"] == "failed"
    assert result.report["old"]["failed_step"] == "version policy"
    # the other hosts of the run go on: Redis 8.0 and Valkey 7.2 (which counts as 7.4)
    assert any("redis-server redis-tools" in t for t in result.texts("new"))
    assert "dnf install -y -q valkey" in result.texts("valkey")
    assert result.report["valkey"].get("warnings") is None


def test_dnf_candidate_is_asked_only_without_a_module_stream():
    result = run_deploy(
        {
            "f40": (HostFixture("fedora-40", candidate="7.2.7"), {"redis_minimum_version": "7.4"}),
            "el9": (HostFixture("rocky-9", candidate="6.2.19"), {}),
        }
    )
    assert result.fact_kwargs("f40", "PackageState")[0] == {
        "package_manager": "dnf",
        "package": "redis",
        "query_dnf": True,
    }
    assert "redis 7.2.7 (dnf candidate) is below redis_minimum_version 7.4" in result.texts("f40")[0]
    assert result.fact_kwargs("el9", "PackageState")[0]["query_dnf"] is False
    # redis:7 is enabled first, so the table's 7.2 counts, not the default stream's 6.2
    assert any(w.startswith("redis 7.2 (what el-9 ships)") for w in result.report["el9"]["warnings"])


def test_installed_version_decides_over_the_candidate():
    result = run_deploy(
        {
            "deb12": (
                HostFixture(
                    "debian-12",
                    installed={"redis-server": "6:7.4.1-1rl1~bookworm1"},
                    candidate="5:7.0.15-1~deb12u3",
                ),
                {"redis_minimum_version": "7.4"},
            )
        }
    )
    assert not any(FAIL_HOST_COMMAND.search(t) for t in result.texts("deb12"))


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
        run_deploy({"deb12": (HostFixture("debian-12"), data)})
    assert f"@fake/deb12: {problem}" in str(caught.value)


def test_a_key_with_another_fingerprint_is_refused(key):
    wrong = "0" * 40
    with pytest.raises(SettingsError) as caught:
        run_deploy(
            {"deb12": (HostFixture("debian-12"), upstream_data(key, redis_upstream_key_fingerprint=wrong))}
        )
    assert f"has fingerprint {key['fingerprint']}, not the confirmed {wrong}" in str(caught.value)


def test_upstream_series_below_the_minimum_is_refused(key):
    with pytest.raises(SettingsError) as caught:
        run_deploy(
            {
                "deb12": (
                    HostFixture("debian-12"),
                    upstream_data(key, redis_upstream_version="7.2", redis_minimum_version="7.4"),
                )
            }
        )
    assert "redis_upstream_version: 7.2 is below redis_minimum_version 7.4" in str(caught.value)
