"""The image step builds every image the test suite starts (a fresh machine has none)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.hosts import build, fleet

INTEGRATION = Path(__file__).resolve().parents[1] / "integration"


def _host_factory_calls():
    """(suite literal or None, ssh) of every `host_factory(...)` call in the integration tests."""
    for path in sorted(INTEGRATION.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "host_factory":
                suite = node.args[1] if len(node.args) > 1 else next(
                    (k.value for k in node.keywords if k.arg == "suite"), None)
                ssh = any(k.arg == "ssh" and getattr(k.value, "value", False) for k in node.keywords)
                literal = suite.value if isinstance(suite, ast.Constant) else None
                yield path.name, literal if suite is not None else "bookworm", ssh


def test_every_image_a_test_starts_is_built_by_the_image_step():
    required = set(build.required_images())
    calls = list(_host_factory_calls())
    assert any(ssh for _, _, ssh in calls), "the SSH test is found"
    for name, suite, ssh in calls:
        image = fleet.SSH_IMAGE if ssh else fleet.HOST_IMAGE
        # a suite named by a variable is one of build.SUITES (the spine loops over them)
        for candidate in [suite] if suite else build.SUITES:
            assert image.format(suite=candidate) in required, f"{name}: {image.format(suite=candidate)}"


def test_the_default_build_is_the_required_set(monkeypatch):
    built: list[str] = []
    monkeypatch.setattr(build, "build_host", lambda suite: built.append(build.HOST_IMAGE.format(suite=suite))
                        or build.HOST_IMAGE.format(suite=suite))
    monkeypatch.setattr(build, "build_ssh_host", lambda suite: built.append(build.SSH_IMAGE.format(suite=suite))
                        or build.SSH_IMAGE.format(suite=suite))
    assert build.main([]) == 0
    assert sorted(built) == sorted(build.required_images())
