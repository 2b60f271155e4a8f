"""backup.py: a snapshot of every host's server, copied to the control machine.

On the host (`hsi-redis snapshot`, one call): `redis-cli --rdb` as the admin identity (the server's own
replication stream: a consistent snapshot, its data directory untouched) into a root-only directory,
checked by the host's check tool (`redis-check-rdb`/`valkey-check-rdb`), described (SHA-256, size,
flavour and version, RDB format version, key count). Then the file streams to the control machine
(operations/transfer.py: never whole in memory, never readable by others on either side, progress for
long copies) into `<redis_backup_dir>/<host>/<UTC time>/` with its manifest (operations/backup_store.py),
is checked against the host's SHA-256, and the host's copy is removed. The newest `redis_backup_keep`
backups of the host stay.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from pyinfra import logger
from pyinfra.api import QuoteString, StringCommand, operation
from pyinfra.api.command import PyinfraCommand

from . import backup_store, program, report, transfer
from .target import Target

# The host program's working directory for snapshots in transit and restores (root only).
WORK_DIR = "/var/lib/hsi-redis"
OUTGOING = f"{WORK_DIR}/outgoing"


class HostJob(PyinfraCommand):
    """A step that runs at execution time with its operation's connector arguments (sudo and the like):
    `job(state, host, arguments, *args)` returns whether it worked (False fails the host, the reason
    already in the report)."""

    def __init__(self, job, *args):
        super().__init__()
        self.job, self.args = job, args

    def __repr__(self) -> str:
        return f"HostJob({self.job.__name__})"

    def execute(self, state, host, connector_arguments):
        return self.job(state, host, dict(connector_arguments), *self.args)


def call(state, host, arguments: dict, verb: str, options: dict) -> tuple[dict[str, str], str | None]:
    """One host-program call: (its key=value lines, the reason it failed or None)."""
    ok, out, err = transfer.run(state, host, program.command(verb, *program.options(**options)), arguments)
    keys: dict[str, str] = {}
    for line in out:
        key, sep, value = line.partition("=")
        if sep:
            keys.setdefault(key, value)
    return keys, None if ok else (report.problem_in(err, out) or f"the host program's {verb} failed")


def fail(state, host, step: str, problem: str, fix: str | None = None) -> bool:
    """The host failed at `step`: in the report (with the fix) and in pyinfra's output."""
    run = report.of(state)
    run.record(host.name, status="failed", failed_step=step, problem=problem, **({"fix": fix} if fix else {}))
    logger.error(f"{host.print_prefix}{report.REASON_PREFIX}{run.redact(problem)}")
    return False


def size_text(size: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} bytes"


def remove_on_host(state, host, arguments: dict, path: str) -> None:
    """Remove a directory the program made under WORK_DIR (root only: removing it by path is safe)."""
    if path.startswith(f"{WORK_DIR}/") and "/../" not in path and "\n" not in path:
        transfer.run(state, host, StringCommand("rm", "-rf", "--", QuoteString(path)), arguments)


STEP = "backup"
FIX = ("see the problem; a snapshot needs the server running and the deploy's admin identity "
       "(run deploy.py first), and room in /var/lib/hsi-redis on the host and in redis_backup_dir here")


def _manifest(host_name: str, target: Target, seen: dict[str, str]) -> dict:
    numbers = ("size", "rdb_version", "keys", "keys_with_ttl", "server_keys")
    found = {key: int(seen[f"snapshot.{key}"]) if key in numbers else seen[f"snapshot.{key}"]
             for key in ("time", "sha256", "size", "flavour", "version", "rdb_version", "keys", "keys_with_ttl",
                         "server_keys")}
    return {"format": backup_store.FORMAT, "host": host_name, "platform": target.row.name,
            "file": backup_store.DATA_FILE, **found}


def _backup_job(state, host, arguments: dict, target: Target) -> bool:
    seen, why = call(state, host, arguments, "snapshot", {**target.layout_options(), "into": OUTGOING, "keep": 1})
    if why:
        return fail(state, host, STEP, f"no snapshot: {why}", FIX)
    remote = seen.get("snapshot.dir", "")
    directory: Path | None = None
    try:
        manifest = _manifest(host.name, target, seen)
        directory = backup_store.new_backup_dir(target.settings.backup_dir, host.name,
                                                remote.rsplit("/", 1)[-1])  # named as on the host: its time
        partial = directory / f"{backup_store.DATA_FILE}.partial"
        with backup_store.create_private(partial) as handle:
            sha, size = transfer.download(state, host, f"{remote}/{backup_store.DATA_FILE}", handle, arguments,
                                          size=manifest["size"], what="backup copy")
        if (sha, size) != (manifest["sha256"], manifest["size"]):
            raise transfer.TransferError(f"the copy ({size} bytes) differs from the snapshot on the host "
                                         f"({manifest['size']} bytes, another SHA-256)")
        partial.rename(directory / backup_store.DATA_FILE)
        backup_store.write_manifest(directory, manifest)
    except (OSError, KeyError, ValueError, transfer.TransferError) as exc:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
        problem = f"missing snapshot.{exc.args[0]} in the program's output" if isinstance(exc, KeyError) else str(exc)
        return fail(state, host, STEP, f"the snapshot could not be copied here: {problem}", FIX)
    finally:
        remove_on_host(state, host, arguments, remote)
    pruned = backup_store.prune(directory.parent, target.settings.backup_keep)
    run = report.of(state)
    if pruned:
        run.note(host.name, f"removed {len(pruned)} older backup(s) (redis_backup_keep={target.settings.backup_keep})")
    summary = (f"backup {directory} ({size_text(manifest['size'])}, {manifest['keys']} keys, "
               f"{manifest['flavour']} {manifest['version']}, RDB format {manifest['rdb_version']})")
    run.record(host.name, status="ok", summary=summary, backup=str(directory), flavour=manifest["flavour"],
                  version=manifest["version"], keys=manifest["keys"])
    return True


@operation()
def fetch(target: Target):
    """
    Snapshot the server on the host, copy it to the control machine with its manifest, keep the newest N.

    + target: the host's Target (redis_backup_dir, redis_backup_keep, the server's layout)

    **Example:**

    .. code:: python

        fetch(name="Snapshot the server and copy it here", target=target)
    """
    yield HostJob(_backup_job, target)
