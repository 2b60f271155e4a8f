"""Version parsing and policy, OpenPGP fingerprints, platform rows and their upstream variants."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from operations import rows, sources, validation, versions
from operations.sources import KeyProblem, fingerprint, matches_series
from tests.commands.harness import make_signing_key


@pytest.mark.parametrize(
    "text, parsed",
    [
        ("5:7.0.15-1~deb12u3", (7, 0, 15)),
        ("6:7.4.2-1rl1~bookworm1", (7, 4, 2)),
        ("8.1.1+dfsg1-2", (8, 1, 1)),
        ("7.2.4-1.fc40", (7, 2, 4)),
        ("6.0.16-1ubuntu1", (6, 0, 16)),
        ("7.4", (7, 4, 0)),
        ("8", (8, 0, 0)),
        ("", None),
        ("(none)", None),
    ],
)
def test_parse(text, parsed):
    assert versions.parse(text) == parsed


@given(
    st.tuples(*[st.integers(0, 300)] * 3),
    st.tuples(*[st.integers(0, 300)] * 3),
    st.integers(0, 9),
    st.sampled_from(["", "-1", "-1~deb12u3", "+dfsg1-2", "-1rl1~jammy1"]),
)
def test_order_follows_the_release_numbers(a, b, epoch, suffix):
    def package(v):
        return f"{epoch}:{'.'.join(map(str, v))}{suffix}"

    assert (versions.parse(package(a)) < versions.parse(package(b))) == (a < b)


@pytest.mark.parametrize(
    "flavour, version, minimum, error, warned",
    [
        ("redis", "7.0.15", "", False, True),
        ("redis", "7.0.15", "7.4", True, False),
        ("redis", "7.4.0", "7.4", False, False),
        ("redis", "7.4.2", "7.4.3", True, False),
        ("redis", "8.0.2", "7.4", False, False),
        ("valkey", "7.2.5", "7.4", False, False),  # Valkey 7.2 counts as 7.4
        ("valkey", "7.2.5", "", False, False),
        ("valkey", "7.0.0", "", False, True),
        ("valkey", "7.2.5", "8.0", True, False),
        ("valkey", "8.1.1", "8.0", False, False),
    ],
)
def test_policy(flavour, version, minimum, error, warned):
    problem, warnings = versions.policy(flavour, version, minimum, "test")
    assert (problem is not None) == error
    assert bool(warnings) == warned
    if error:
        assert f"below redis_minimum_version {minimum}" in problem and "nothing was changed" in problem


def test_unknown_version_with_a_minimum_is_an_error():
    problem, _ = versions.policy("redis", "", "7.4", "apt candidate")
    assert "cannot tell" in problem


@pytest.mark.parametrize(
    "installed, series, result",
    [
        ("6:7.4.2-1rl1~bookworm1", "7.4", True),
        ("6:7.4.2-1rl1~bookworm1", "7.4.2", True),
        ("6:7.4.2-1rl1~bookworm1", "7.4.3", False),
        ("5:7.0.15-1~deb12u3", "7.4", False),
        ("6:7.40.1-1", "7.4", False),
    ],
)
def test_matches_series(installed, series, result):
    assert matches_series(installed, series) == result


@pytest.mark.parametrize("algorithm", ["ed25519", "rsa2048"])
def test_fingerprint_matches_gpg(tmp_path, algorithm):
    key_file, expected = make_signing_key(tmp_path, algorithm)
    assert fingerprint(key_file.read_text()) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "not a key",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!!\n-----END PGP PUBLIC KEY BLOCK-----\n",
        "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nAAAA\n-----END PGP PUBLIC KEY BLOCK-----\n",
    ],
)
def test_fingerprint_rejects_what_is_not_a_public_key(text):
    with pytest.raises(KeyProblem):
        fingerprint(text)


@pytest.mark.parametrize(
    "os_id, version_id, id_like, flavour, row",
    [
        ("debian", "12", "", "auto", "debian-12"),
        ("ubuntu", "24.04", "debian", "auto", "ubuntu-24.04"),
        ("rocky", "8.10", "rhel centos fedora", "auto", "el-8"),
        ("almalinux", "9.5", "rhel centos fedora", "auto", "el-9"),
        ("centos", "9", "rhel fedora", "auto", "el-9"),
        ("rhel", "10.0", "fedora", "auto", "el-10"),
        ("fedora", "40", "", "auto", "fedora-40"),
        ("fedora", "42", "", "auto", "fedora-41+"),
    ],
)
def test_select(os_id, version_id, id_like, flavour, row):
    assert rows.select(os_id, version_id, id_like, flavour).name == row


def test_auto_flavour_prefers_redis_and_falls_back_to_valkey():
    assert rows.select("debian", "13", "", "auto").flavour == "redis"
    assert rows.select("fedora", "42", "", "auto").flavour == "valkey"
    assert rows.select("rhel", "10.0", "fedora", "auto").flavour == "valkey"
    with pytest.raises(rows.UnsupportedPlatform, match="does not package redis"):
        rows.select("rhel", "10.0", "fedora", "redis")


def test_rows_keep_each_family_and_flavour_in_its_own_paths():
    for by_flavour in rows.TABLE.values():
        for flavour, row in by_flavour.items():
            assert row.flavour == flavour
            named = (row.config_path, row.data_dir, row.log_file, row.pid_file, row.cli, row.user, row.group)
            assert all(flavour in value for value in named), row
            if row.package_manager == "apt":
                assert row.codename and row.apt_origin in ("Debian", "Ubuntu") and row.private_users
            else:
                assert not row.codename and row.service == flavour and not row.private_users


def test_upstream_rows():
    el8 = rows.upstream(rows.TABLE[("el", "8")]["redis"])
    assert el8.source == "upstream" and el8.module_stream == "" and el8.config_path == "/etc/redis/redis.conf"
    deb = rows.upstream(rows.TABLE[("debian", "12")]["redis"])
    assert deb.packages == ("redis-server", "redis-tools") and not deb.private_users
    assert rows.upstream(rows.TABLE[("debian", "13")]["valkey"]) is None
    assert rows.upstream(rows.TABLE[("fedora", "40")]["redis"]) is None


def test_expected_version_sources():
    conf = SimpleNamespace(upstream_version="7.4")
    deb12 = rows.TABLE[("debian", "12")]["redis"]
    assert sources.expected_version(deb12, "", "", conf) == ("7.0.15", "what debian-12 ships")
    assert sources.expected_version(deb12, "", "5:7.0.16-1", conf)[1] == "apt candidate"
    assert sources.expected_version(deb12, "5:7.0.15-1", "5:7.0.16-1", conf) == ("5:7.0.15-1", "installed")
    upstream = rows.upstream(deb12)
    assert sources.expected_version(upstream, "5:7.0.15-1", "", conf) == ("7.4", "upstream pin")
    assert sources.expected_version(upstream, "6:7.4.2-1rl1~bookworm1", "", conf) == (
        "6:7.4.2-1rl1~bookworm1", "installed from upstream")


# -- sources.choose: the source setting and the version policy, from the versions the read found ---

DEB12 = rows.TABLE[("debian", "12")]["redis"]
DEB13 = rows.TABLE[("debian", "13")]["redis"]
F40 = rows.TABLE[("fedora", "40")]["redis"]
EL10 = rows.TABLE[("el", "10")]["valkey"]


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    path, fpr = make_signing_key(tmp_path_factory.mktemp("key"))
    return {"redis_upstream_key": str(path), "redis_upstream_key_fingerprint": fpr}


def _settings(**data):
    conf, problems = validation.parse("h", {"redis_password": "x" * 20, **data})
    assert problems == [], problems
    return conf


def test_choose_distro_with_a_warning_below_7_4_and_no_minimum():
    row, problem, warnings = sources.choose(_settings(), DEB12, "", "5:7.0.15-1~deb12u3")
    assert row is DEB12 and problem is None
    assert warnings and warnings[0].startswith("redis 5:7.0.15-1~deb12u3 (apt candidate) is below 7.4")


def test_choose_minimum_stops_only_what_is_below_it():
    _, problem, _ = sources.choose(_settings(redis_minimum_version="7.4"), DEB12, "", "5:7.0.15-1~deb12u3")
    assert problem.startswith("redis 5:7.0.15-1~deb12u3 (apt candidate) is below redis_minimum_version 7.4")
    assert "nothing was changed" in problem
    assert sources.choose(_settings(redis_minimum_version="7.4"), DEB13, "", "")[1:] == (None, [])
    # the installed version decides over the candidate
    found = sources.choose(_settings(redis_minimum_version="7.4"), DEB12, "6:7.4.1-1rl1~bookworm1", "5:7.0.15-1")
    assert found[1] is None


def test_choose_verify_only_reports_instead_of_stopping():
    _, problem, warnings = sources.choose(_settings(redis_minimum_version="7.4", redis_verify_only=True),
                                            DEB12, "5:7.0.15-1", "")
    assert problem is None and "below redis_minimum_version 7.4" in warnings[0]


def test_choose_upstream_and_auto(key):
    row, problem, warnings = sources.choose(_settings(redis_source="upstream", **key), DEB12, "", "")
    assert row.source == "upstream" and problem is None and warnings == []
    row, problem, _ = sources.choose(_settings(redis_source="upstream", **key), EL10, "", "")
    assert row is EL10 and "packages.redis.io has no valkey packages for el-10" in problem
    # auto: upstream only where the distro's version is below the minimum
    strict = _settings(redis_source="auto", redis_minimum_version="7.4", **key)
    assert sources.choose(strict, DEB12, "", "5:7.0.15-1")[0].source == "upstream"
    assert sources.choose(strict, DEB13, "", "5:8.0.2-1")[0].source == "distro"
    lenient = _settings(redis_source="auto", **key)
    row, problem, warnings = sources.choose(lenient, DEB12, "", "")
    assert row.source == "distro" and problem is None and "7.0.15" in warnings[0]
    # auto without an upstream for the row: the distro's version decides
    row, problem, _ = sources.choose(strict, F40, "", "7.2.7-1.fc40")
    assert row is F40 and "redis 7.2.7-1.fc40 (dnf candidate) is below redis_minimum_version 7.4" in problem
