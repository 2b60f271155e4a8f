"""Backups on the control machine: where backup.py puts them, their manifests, retention, and what
restore.py can restore from.

Layout: `<redis_backup_dir>/<host>/<UTC time>/` holding `dump.rdb` and `manifest.json` (SHA-256, size,
server flavour and version, RDB format version, key count, time, host; nothing secret: the data holds no
passwords, and the manifest describes the file). Directories are created 0700 and files 0600 from the
start (never widened afterwards), the file is written as `dump.rdb.partial` and renamed once its
checksum matches the host's, so a directory with a manifest is a complete backup. Retention keeps the
newest `redis_backup_keep` complete backups of a host.

restore.py's `restore_from` may name:
- a backup directory (its manifest.json): the file's size and SHA-256 are checked against it here;
- a host's backup directory (`backups/<host>`): its newest complete backup;
- an RDB file (`dump.rdb`, or any file starting `REDIS00`);
- an AOF directory holding its manifest (`appendonlydir/`, `*.manifest`) and the files it lists;
- a Docker volume directory holding `appendonlydir/` and/or `dump.rdb` (the Compose service's `/data`):
  the AOF, unless dump.rdb is newer than every AOF file (AOF turned off later, or a clean shutdown that
  saved both: the dump then holds at least as much).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from . import versions

STAMP_RE = re.compile(r"\d{8}T\d{6}Z")
MANIFEST = "manifest.json"
DATA_FILE = "dump.rdb"
FORMAT = "hsi-redis-backup 1"
_AOF_LINE = re.compile(r"file (\S+) seq (\d+) type ([bhi])")
_PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class SourceError(Exception):
    """restore_from cannot be restored; the message says why."""


def host_dir_name(host_name: str) -> str:
    """A host's directory name: its inventory name with anything but [A-Za-z0-9._@-] as `_`
    (`@docker/nvr-1` -> `@docker_nvr-1`)."""
    return re.sub(r"[^A-Za-z0-9._@-]", "_", host_name).lstrip(".") or "_"


def private_dirs(path: Path) -> None:
    """`path` and any missing parents, 0700 from the start; an existing `path` tightened to 0700."""
    missing = [p for p in (path, *path.parents) if not p.exists()]
    for directory in reversed(missing):
        directory.mkdir(mode=0o700)
    os.chmod(path, 0o700)


def stamp(moment: datetime | None = None) -> str:
    return (moment or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def new_backup_dir(root: Path, host_name: str, name: str | None = None) -> Path:
    """A new empty 0700 directory `root/<host>/<name>` (`name`: the snapshot's UTC time; taken or unset,
    the current UTC time, the next second's if that is taken too)."""
    host_dir = root / host_dir_name(host_name)
    private_dirs(host_dir)
    while True:
        path = host_dir / (name if name and STAMP_RE.fullmatch(name) else stamp())
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:
            name = None
            time.sleep(0.2)


def create_private(path: Path):
    """A new file opened for writing, 0600 from its creation (never an existing one)."""
    return os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb")


def write_manifest(directory: Path, manifest: dict) -> Path:
    path = directory / MANIFEST
    with create_private(path) as handle:
        handle.write((json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode())
    return path


def backups(host_dir: Path) -> list[Path]:
    """A host's complete backups (a manifest beside the file), newest first."""
    if not host_dir.is_dir():
        return []
    found = [p for p in host_dir.iterdir() if p.is_dir() and STAMP_RE.fullmatch(p.name) and (p / MANIFEST).is_file()]
    return sorted(found, key=lambda p: p.name, reverse=True)


def prune(host_dir: Path, keep: int) -> list[str]:
    """Remove all but the newest `keep` complete backups; their names."""
    removed = []
    for old in backups(host_dir)[keep:]:
        shutil.rmtree(old)
        removed.append(old.name)
    return removed


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# -- RDB files ----------------------------------------------------------------------------------------

def rdb_version(path: Path) -> int | None:
    """The RDB format version in the file's header (`REDIS0010` -> 10), or None: not an RDB file."""
    with open(path, "rb") as handle:
        head = handle.read(9)
    return int(head[5:]) if len(head) == 9 and head[:5] == b"REDIS" and head[5:].isdigit() else None


def _rdb_length(data: bytes, at: int) -> tuple[int | None, int, bool]:
    """(length or integer, next offset, is an encoded integer) of an RDB length field."""
    first = data[at]
    kind = first >> 6
    if kind == 0:
        return first & 0x3F, at + 1, False
    if kind == 1:
        return ((first & 0x3F) << 8) | data[at + 1], at + 2, False
    if first == 0x80:
        return int.from_bytes(data[at + 1:at + 5], "big"), at + 5, False
    if kind == 3 and first & 0x3F in (0, 1, 2):
        size = 1 << (first & 0x3F)
        return int.from_bytes(data[at + 1:at + 1 + size], "little", signed=True), at + 1 + size, True
    return None, at, False


def rdb_writer(path: Path) -> str:
    """Who wrote an RDB file, from its header's aux fields (`redis 8.0.2`, `valkey 8.1.1`); "" if unsaid."""
    with open(path, "rb") as handle:
        data = handle.read(512)
    fields, at = {}, 9
    try:
        while at < len(data) and data[at] == 0xFA:  # AUX: two strings
            strings = []
            at += 1
            for _ in range(2):
                length, at, number = _rdb_length(data, at)
                if length is None:
                    raise ValueError
                strings.append(str(length) if number else data[at:at + length].decode(errors="replace"))
                at += 0 if number else length
            fields[strings[0]] = strings[1]
    except (ValueError, IndexError):
        pass
    for flavour in ("valkey", "redis"):
        if f"{flavour}-ver" in fields:
            return f"{flavour} {fields[f'{flavour}-ver']}"
    return ""


# -- what restore.py restores -------------------------------------------------------------------------

@dataclass(frozen=True)
class Source:
    """What a restore uploads: (local file, name under the host's stage directory) pairs, and what is
    known of it before any host is touched."""

    kind: str                                   # backup | rdb | aof
    path: Path                                  # what restore_from resolved to
    files: tuple[tuple[Path, str], ...]
    manifest: dict = field(default_factory=dict)
    rdb_version: int | None = None              # of the RDB (an AOF: of its RDB base, when it has one)
    writer: str = ""                            # "redis 8.0.2", from the manifest or the file's header

    @property
    def sha256(self) -> str | None:
        return self.manifest.get("sha256")

    @property
    def keys(self) -> int | None:
        return self.manifest.get("keys")

    @property
    def size(self) -> int:
        return sum(path.stat().st_size for path, _ in self.files)

    @property
    def what(self) -> str:
        return {"backup": "backup", "rdb": "RDB file", "aof": "AOF directory"}[self.kind]

    def describe(self) -> str:
        format_ = f", RDB format {self.rdb_version}" if self.rdb_version else ""
        return f"{self.what} {self.path} ({self.writer or 'writer unknown'}{format_})"


def _backup(directory: Path) -> Source:
    try:
        manifest = json.loads((directory / MANIFEST).read_text())
    except (OSError, ValueError) as exc:
        raise SourceError(f"{directory / MANIFEST} cannot be read: {exc}") from exc
    name = manifest.get("file")
    if not isinstance(name, str) or not _PLAIN_NAME.fullmatch(name) or not isinstance(manifest.get("sha256"), str):
        raise SourceError(f"{directory / MANIFEST} is not a backup manifest (no file name and sha256)")
    data = directory / name
    if not data.is_file():
        raise SourceError(f"{data} is missing (its manifest names it)")
    size, wanted = data.stat().st_size, manifest.get("size")
    if size != wanted or sha256_of(data) != manifest["sha256"]:
        raise SourceError(f"{data} does not match its manifest ({size} bytes, the manifest says {wanted}, and "
                          "the SHA-256 differs): damaged or cut short; restore another backup")
    writer = " ".join(str(manifest[k]) for k in ("flavour", "version") if manifest.get(k))
    return Source("backup", directory, ((data, DATA_FILE),), manifest, rdb_version(data), writer)


def _rdb(path: Path) -> Source:
    version = rdb_version(path)
    if version is None:
        raise SourceError(f"{path} is not an RDB file (it does not start with REDIS and a format version)")
    return Source("rdb", path, ((path, DATA_FILE),), {}, version, rdb_writer(path))


def _aof(directory: Path) -> Source:
    manifests = sorted(directory.glob("*.manifest"))
    if len(manifests) != 1:
        raise SourceError(f"{directory} must hold exactly one AOF manifest (*.manifest), it holds {len(manifests)}")
    files, base = [(manifests[0], f"appendonlydir/{manifests[0].name}")], None
    for number, line in enumerate(manifests[0].read_text(errors="replace").splitlines(), 1):
        match = _AOF_LINE.match(line.strip())
        if not line.strip():
            continue
        if not match or not _PLAIN_NAME.fullmatch(match.group(1)):
            raise SourceError(f"{manifests[0]} line {number} is not an AOF manifest line")
        name, kind = match.group(1), match.group(3)
        if kind == "h":
            continue  # history: already rewritten into the base, the server deletes them
        if not (directory / name).is_file():
            raise SourceError(f"{directory / name} is missing (the AOF manifest lists it)")
        files.append((directory / name, f"appendonlydir/{name}"))
        if kind == "b":
            base = directory / name
    version = rdb_version(base) if base is not None else None
    return Source("aof", directory, tuple(files), {}, version, rdb_writer(base) if version else "")


def _newest_mtime(paths) -> float:
    return max((p.stat().st_mtime for p in paths), default=0.0)


def resolve(text: str) -> Source:
    """What `restore_from` names (see the module docstring); SourceError says what is wrong."""
    path = Path(text).expanduser()
    if not path.exists():
        raise SourceError(f"{path} does not exist")
    if path.is_file():
        if path.name == MANIFEST:
            return _backup(path.parent)
        if path.name.endswith(".manifest"):
            return _aof(path.parent)
        return _rdb(path)
    if (path / MANIFEST).is_file():
        return _backup(path)
    if list(path.glob("*.manifest")):
        return _aof(path)
    complete = backups(path)
    if complete:
        return _backup(complete[0])
    aof, dump = path / "appendonlydir", path / DATA_FILE
    if aof.is_dir() and list(aof.glob("*.manifest")):
        if dump.is_file() and dump.stat().st_mtime > _newest_mtime(p for p in aof.iterdir() if p.is_file()):
            return _rdb(dump)
        return _aof(aof)
    if dump.is_file():
        return _rdb(dump)
    raise SourceError(f"{path} holds no backup: no manifest.json, no AOF manifest, no backups, no dump.rdb")


def refusal(source: Source, flavour: str, version_text: str) -> str | None:
    """Why the target server cannot load `source` (its RDB format is newer than it reads), or None."""
    readable = versions.rdb_readable(flavour, version_text)
    if source.rdb_version is None or readable is None or source.rdb_version <= readable:
        return None
    shown = ".".join(map(str, versions.parse(version_text) or ())) or version_text
    return (f"the {source.what} {source.path} was written by {source.writer or 'a newer server'} in RDB format "
            f"{source.rdb_version}; {flavour} {shown} on this host reads RDB formats up to {readable}: nothing was "
            "changed. Restore it onto a host with a newer server (redis_source=upstream, or a newer distro release)")
