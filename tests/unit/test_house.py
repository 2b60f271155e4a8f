"""The shape issue 10 asks for, checked the way anyone could check it with grep: no import circle
and no function-local import in the package, one redis-cli wrapper in the tree, one URL builder."""

from __future__ import annotations

import ast
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operations"
PROGRAM = PACKAGE / "program" / "hsi-redis.sh"


def _modules() -> dict[str, ast.Module]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        found[name] = ast.parse(path.read_text())
    return found


def _imports(name: str, tree: ast.Module) -> set[str]:
    package = name if name == "operations" or name.endswith("program") else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            if node.module:
                found.add(f"{base}.{node.module}")
            else:
                found |= {f"{base}.{alias.name}" for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("operations"):
            found.add(node.module)
    return found


def test_no_function_local_imports():
    local = []
    for name, tree in _modules().items():
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                local += [f"{name}.{function.name}" for node in ast.walk(function)
                          if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert local == []


def test_the_import_graph_has_no_circle():
    modules = _modules()
    graph = {name: {m for m in _imports(name, tree) if m in modules} for name, tree in modules.items()}
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, "import circle: " + " -> ".join((*path, name))
        if name in done:
            return
        for dependency in graph[name]:
            visit(dependency, (*path, name))
        done.add(name)

    for name in graph:
        visit(name, ())


def test_no_module_is_named_like_a_standard_library_module():
    import sys

    names = {path.stem for path in PACKAGE.rglob("*.py")}
    assert not names & set(sys.stdlib_module_names)


def test_one_redis_cli_wrapper_in_the_tree():
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    callers = []
    for name in files:
        if name.startswith(("tests/", "bench/")) or not name.endswith((".py", ".sh")):
            continue
        text = (ROOT / name).read_text()
        if re.search(r"--no-auth-warning|REDISCLI_AUTH=", text):
            callers.append(name)
    assert callers == ["operations/program/hsi-redis.sh"]
    program = PROGRAM.read_text()
    # inside the program, the server's CLI runs in exactly one function: ask()
    invocations = [line for line in program.splitlines() if re.search(r'timeout "\$T" "\$cli"', line)]
    assert len(invocations) == 2 and program.count("--no-auth-warning") == 2  # with and without a password
    ask = program[program.index("\nask() {"):]
    ask = ask[:ask.index("\n}\n")]
    assert all(line in ask for line in invocations)


def test_one_place_builds_a_redis_url():
    """Only target.redis_url writes a `redis://`/`rediss://` URL (docstrings may mention one)."""
    builders = []
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if not isinstance(node, ast.JoinedStr):
                continue
            parts = [str(c.value) for c in ast.walk(node) if isinstance(c, ast.Constant)]
            if re.search(r"rediss?://", "".join(parts)) or ("://" in "".join(parts) and {"redis", "rediss"} & set(parts)):
                builders.append(name)
    assert builders == ["operations.target"], builders
