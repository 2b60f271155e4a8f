"""rotate.py at command level: the same host view as deploy.py, TLS-only servers, and the old
password kept while a consumer of it cannot be restarted by the run (issue 9, item 12)."""

from __future__ import annotations

import pytest

from .harness import HostFixture, make_signing_key, run_deploy


@pytest.fixture(scope="module")
def key(tmp_path_factory):
    path, fingerprint = make_signing_key(tmp_path_factory.mktemp("key"))
    return {"redis_source": "upstream", "redis_upstream_key": str(path),
            "redis_upstream_key_fingerprint": fingerprint}


@pytest.mark.parametrize("release", ["rocky-8", "ubuntu-22.04"])
def test_rotate_sees_the_upstream_row_like_deploy(key, release):
    """An upstream host's config is where upstream's package keeps it: rotate.py takes the package
    source step too, or it would write the distro's config (/etc/redis.conf on EL8, Ubuntu 22.04's
    other bind line) and the next deploy would restart the server."""
    deployed = run_deploy({"h": (HostFixture(release), key)})
    rotated = run_deploy({"h": (HostFixture(release), dict(key, redis_backend_unit="hsi-backend"))},
                         entry="rotate.py")
    config = "/etc/redis/redis.conf"
    assert not any("/etc/redis.conf" in t for t in rotated.texts("h"))
    assert rotated.uploaded("h", config) == deployed.uploaded("h", config)
    assert rotated.report["h"]["source"] == "upstream"
