"""Settings of a fleet where backends run on their own hosts (issue 11): roles, the server a backend
names, what a backend host ignores, TLS beyond loopback, the firewall's sources. Every problem names
`host: setting:` and stops the run before any host is touched."""

from __future__ import annotations

import pytest

from operations import credentials, pki, settings, validation

GOOD = "correct horse battery staple"


class _Data:
    def __init__(self, data):
        self._data = data

    def dict(self):
        return self._data


class _Host:
    def __init__(self, name, data):
        self.name, self.data = name, _Data(data)


@pytest.fixture(autouse=True)
def _fresh_cache():
    settings.clear_cache()
    yield
    settings.clear_cache()


@pytest.fixture
def tls(tmp_path):
    """The helper's PKI for `nvr-campus` in the test's secret store (where the deploy looks)."""
    pki.ensure_pki(pki.pki_dir(), {"nvr-campus": ["redis.campus.lan", "localhost"]})
    return {"redis_tls": True, "redis_backend_host": "redis.campus.lan"}


def load(*hosts: tuple[str, dict]):
    return settings.load_all([_Host(name, data) for name, data in hosts])


def problems(*hosts: tuple[str, dict]) -> list[str]:
    with pytest.raises(settings.SettingsError) as caught:
        load(*hosts)
    return caught.value.problems


def test_a_backend_host_takes_its_own_files_and_names_its_server(tls):
    found = load(("nvr-campus", {"redis_password": GOOD, "redis_role": "server", **tls}),
                 ("hsi-app", {"redis_role": "backend", "redis_server": "nvr-campus",
                              "redis_backend_env_owner": "hsi", "redis_backend_address": "10.20.0.7"}))
    backend = found["hsi-app"]
    assert (backend.role, backend.server, backend.serves) == ("backend", "nvr-campus", False)
    assert backend.backend_env_path == "/opt/hsi/backend/.env" and backend.backend_env_owner == "hsi"
    assert backend.backend_dir == "/opt/hsi/backend/redis-tls" and backend.backend_address == "10.20.0.7"
    assert backend.warnings == ()
    server = found["nvr-campus"]
    assert server.serves and server.server == "nvr-campus" and server.backend_env_path is None
    # nothing is generated for a host that runs no server
    assert not credentials.secret_path("hsi-app").exists() and credentials.secret_path("nvr-campus").exists() is False


def test_server_settings_on_a_backend_host_are_ignored_with_a_warning():
    found = load(("nvr", {"redis_password": GOOD, "redis_backend_host": "nvr.lan"}),
                 ("app", {"redis_role": "backend", "redis_server": "nvr", "redis_size": "large",
                          "redis_tls": True, "redis_password": GOOD}))
    (warning,) = found["app"].warnings
    assert "redis_password, redis_size, redis_tls: ignored" in warning and "from its server nvr" in warning
    assert found["app"].tls is None  # no TLS files were looked for on the backend's behalf


def test_backend_settings_on_a_server_only_host_are_ignored_with_a_warning():
    found = load(("nvr", {"redis_password": GOOD, "redis_role": "server", "redis_backend_env_owner": "hsi"}))
    assert found["nvr"].backend_env_path is None
    assert any("redis_backend_env_owner: ignored" in w for w in found["nvr"].warnings)


@pytest.mark.parametrize("hosts, expected", [
    ((("app", {"redis_role": "backend"}),), "app: redis_server: a backend host"),
    ((("app", {"redis_role": "backend", "redis_server": "nvr-gone"}),),
     "app: redis_server: 'nvr-gone' is not a host of this inventory"),
    ((("a", {"redis_role": "backend", "redis_server": "b"}), ("b", {"redis_role": "backend", "redis_server": "a"})),
     "a: redis_server: b is a backend host too"),
    ((("nvr", {"redis_password": GOOD, "redis_server": "other"}),),
     "nvr: redis_server: only a backend host (redis_role: backend) names a server"),
    ((("app", {"redis_role": "backend", "redis_server": "nvr", "redis_backend_env_path": ""}),
      ("nvr", {"redis_password": GOOD})), "app: redis_backend_env_path: a backend host needs"),
    ((("app", {"redis_role": "frontend"}),), "app: redis_role: 'frontend' is not one of: both, server, backend"),
    ((("app", {"redis_role": "backend", "redis_server": "nvr", "redis_backend_address": "app.lan"}),
      ("nvr", {"redis_password": GOOD})), "app: redis_backend_address: 'app.lan' is not an IP address or CIDR"),
])
def test_bad_topology_names_host_and_setting(hosts, expected):
    found = problems(*hosts)
    assert any(p.startswith(expected) for p in found), found


def test_a_server_with_backend_hosts_needs_a_name_they_can_reach():
    found = problems(("nvr", {"redis_password": GOOD}), ("app", {"redis_role": "backend", "redis_server": "nvr"}))
    assert len(found) == 1 and found[0].startswith("nvr: redis_backend_host: 'localhost' is the host itself")
    assert "(app)" in found[0]


def test_a_loopback_only_server_with_backend_hosts_warns_they_must_share_its_namespace():
    found = load(("nvr", {"redis_password": GOOD, "redis_backend_host": "nvr.lan"}),
                 ("app", {"redis_role": "backend", "redis_server": "nvr"}))
    assert any("loopback only" in w and "(app)" in w for w in found["nvr"].warnings), found["nvr"].warnings


def test_beyond_loopback_needs_tls_unless_plaintext_is_allowed(tls):
    bind = {"redis_bind": ["127.0.0.1", "10.20.0.5"]}
    found = problems(("nvr-campus", {"redis_password": GOOD, **bind}))
    assert found[0].startswith("nvr-campus: redis_bind: listens on 10.20.0.5 without TLS")
    assert load(("nvr-campus", {"redis_password": GOOD, **bind, **tls}))["nvr-campus"].warnings == ()
    settings.clear_cache()
    allowed = load(("nvr-campus", {"redis_password": GOOD, **bind, "redis_allow_plaintext": True}))["nvr-campus"]
    assert any("clear text" in w for w in allowed.warnings)
    settings.clear_cache()
    both = load(("nvr-campus", {"redis_password": GOOD, **bind, **tls, "redis_allow_plaintext": True}))["nvr-campus"]
    assert any("plain port also admits other hosts" in w for w in both.warnings), both.warnings


def test_the_firewall_needs_every_backends_address(tls):
    server = ("nvr-campus", {"redis_password": GOOD, "redis_bind": ["0.0.0.0"], **tls})
    found = problems(server, ("app", {"redis_role": "backend", "redis_server": "nvr-campus"}))
    assert len(found) == 1 and found[0].startswith("app: redis_backend_address: the firewall of nvr-campus"), found
    settings.clear_cache()
    # an IP address pyinfra reaches it by is its address; a CIDR is taken as given
    by_ssh = _Host("app", {"redis_role": "backend", "redis_server": "nvr-campus", "ssh_hostname": "10.20.0.7"})
    by_name = _Host("10.20.0.8", {"redis_role": "backend", "redis_server": "nvr-campus"})
    by_cidr = _Host("app-3", {"redis_role": "backend", "redis_server": "nvr-campus",
                              "redis_backend_address": "10.30.0.0/24"})
    found = settings.load_all([_Host(*server), by_ssh, by_name, by_cidr])
    assert [found[h].backend_address for h in ("app", "10.20.0.8", "app-3")] == ["10.20.0.7", "10.20.0.8",
                                                                              "10.30.0.0/24"]
    settings.clear_cache()
    # with the firewall off nobody's address is needed, and the summary says nothing filters the port
    off = load((server[0], {**server[1], "redis_firewall": False}),
               ("app", {"redis_role": "backend", "redis_server": "nvr-campus"}))
    assert any("redis_firewall is off" in w for w in off["nvr-campus"].warnings)


def test_firewall_sources_are_addresses_or_cidrs_in_normal_form():
    conf, found = validation.parse("nvr", {"redis_password": GOOD,
                                           "redis_firewall_allow": ["10.0.0.9/32", "10.1.2.3/24", "fd00::1"]})
    assert found == [] and conf.firewall_allow == ("10.0.0.9", "10.1.2.0/24", "fd00::1")
    assert validation.parse("nvr", {"redis_password": GOOD, "redis_firewall_allow": "10.0.0.9, 10.0.0.10"})[0] \
        .firewall_allow == ("10.0.0.9", "10.0.0.10")
    for bad in (["monitor.lan"], ["10.0.0.0/33"], ["10.0.0.1\n"], [7]):
        found = validation.parse("nvr", {"redis_password": GOOD, "redis_firewall_allow": bad})[1]
        assert any(p.startswith("nvr: redis_firewall_allow: ") for p in found), (bad, found)
