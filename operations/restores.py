"""restore.py: put a backup onto a host, replacing the data its server serves.

Destructive, so it starts only when told exactly where:

    pyinfra -y INVENTORY restore.py --limit nvr-1 --data restore_confirm=nvr-1 --data restore_from=PATH

`restore_confirm` must name the host and come from the command line (`--data`): a value kept in the
inventory is refused, so that no later run restores by itself, and one run restores one host. Both are
checked for every host of the run on the control machine before any host is touched (a backup's file
against its manifest: size and SHA-256); then the host's own read says which server runs there, and a
backup in an RDB format newer than that server reads is refused naming both versions, before anything
is sent. `restore_from` is described in operations/backup_store.py (a backup, a host's backups, an RDB
file, an AOF directory, a Docker volume's directory).

On the host (operations/program/hsi-redis.sh, `stage` then `restore`): the files stream into a root-only
directory (operations/transfer.py); the checksum and the host's check tool are asked again (an AOF is
loaded by a throwaway server of the host's version and saved as an RDB); then the current data is kept
as `*.hsi-before-<time>`, the server stops, the backup goes in its place, the server starts on it with AOF
off and gets AOF on live (FACTS.md: an RDB restored under `appendonly yes` would start EMPTY), and the key
count is compared with the backup's; when the server does not come up or holds other keys, the previous
data is put back and served. The backend's `.env` and every credential stay as they are: the data holds
no passwords. Verification follows (one more read).
"""

from __future__ import annotations

from pyinfra.api import operation
from pyinfra.api.exceptions import PyinfraError

from . import backup_store, report, shell, transfer, verify
from .backup_store import Source, SourceError
from .backups import WORK_DIR, HostJob, call, fail, remove_on_host, size_text
from .target import Target

FROM, CONFIRM = "restore_from", "restore_confirm"
STEP = "restore"
FIX = ("see the problem: nothing was changed unless it says it rolled back, and then the server serves its "
       "previous data; fix the cause and run restore.py again")


class RestoreInputError(PyinfraError):
    """restore.py's inputs are missing or wrong for a host of the run; no host was touched."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("restore.py: nothing was changed on any host:\n" + "\n".join(f"  {p}" for p in problems))


def check(host_name: str, data: dict, command_line: dict, sources: dict[str, Source]) -> tuple[Source | None, list[str]]:
    """One host's inputs: (the source, problems). `command_line`: the run's `--data`; `sources` caches
    resolved paths (a backup's checksum is computed once)."""
    problems = []
    confirm = data.get(CONFIRM)
    if confirm in (None, ""):
        problems.append(f"{host_name}: {CONFIRM}: restore.py replaces the server's data; confirm with "
                        f"--data {CONFIRM}={host_name}")
    elif command_line.get(CONFIRM) != confirm:
        problems.append(f"{host_name}: {CONFIRM}: give it on the command line (--data {CONFIRM}=...), not in the "
                        "inventory: a kept confirmation would let any later run restore")
    elif confirm != host_name:
        problems.append(f"{host_name}: {CONFIRM}: {confirm!r} does not name this host; restore one host at a time "
                        f"(--limit {confirm})")
    text = data.get(FROM)
    source = None
    if not isinstance(text, str) or not text:
        problems.append(f"{host_name}: {FROM}: required: a backup directory, a host's backup directory, an RDB "
                        f"file or an AOF directory (--data {FROM}=PATH)")
    else:
        try:
            source = sources[text] if text in sources else sources.setdefault(text, backup_store.resolve(text))
        except SourceError as exc:
            problems.append(f"{host_name}: {FROM}: {exc}")
    return (None if problems else source), problems


_checked: dict[int, dict[str, Source]] = {}


def inputs(host) -> Source | None:
    """The source to restore onto `host`, every host of the run checked on the first call (raises
    RestoreInputError listing every problem)."""
    state = host.state
    if id(state) not in _checked:
        command_line = state.inventory.get_override_data() or {}
        found, problems, sources = {}, [], {}
        for each in state.inventory:
            if not state.is_host_in_limit(each):
                continue
            if each.data.dict().get("redis_role") == "backend":  # holds no data: passed by (flows.restore)
                found[each.name] = None
                continue
            source, host_problems = check(each.name, each.data.dict(), command_line, sources)
            problems += host_problems
            if source is not None:
                found[each.name] = source
        if problems:
            raise RestoreInputError(problems)
        _checked[id(state)] = found
    return _checked[id(state)][host.name]


def target_server(target: Target, state) -> tuple[str, str]:
    """(flavour, version) of the server on the host: the running one's, else the installed package's."""
    seen = state.server
    if seen.version:
        return ("valkey" if seen.info.get("valkey_version") else "redis"), seen.version
    return target.row.flavour, state.installed(target.row.packages[0])


def _restore_job(state, host, arguments: dict, target: Target, source: Source) -> bool:
    staged, why = call(state, host, arguments, "stage", {**target.layout_options(), "work": WORK_DIR})
    stage = staged.get("stage", "")
    if why or not stage.startswith(f"{WORK_DIR}/.incoming."):
        return fail(state, host, STEP, f"no directory for the upload: {why or 'the program named none'}", FIX)
    sent = {}
    try:
        for local, name in source.files:
            with open(local, "rb") as handle:
                sent[name], _ = transfer.upload(state, host, handle, f"{stage}/{name}", arguments,
                                                size=local.stat().st_size, what=f"upload of {name}", mkdir="/" in name)
    except (OSError, transfer.TransferError) as exc:
        remove_on_host(state, host, arguments, stage)
        return fail(state, host, STEP, f"the backup could not be sent: {exc}; nothing was changed", FIX)
    data_sha = sent.get(backup_store.DATA_FILE)
    if source.sha256 and data_sha != source.sha256:
        remove_on_host(state, host, arguments, stage)
        return fail(state, host, STEP, f"{source.path}: the file changed while it was sent (its SHA-256 is not the "
                    "manifest's); nothing was changed", FIX)
    options = {**target.layout_options(), "work": WORK_DIR, "from": stage, "sha256": data_sha, "keys": source.keys}
    done, why = call(state, host, arguments, "restore", options)
    if why:
        return fail(state, host, STEP, why, FIX)
    keys = done.get("restored", "?").split()[0]
    kept = done.get("kept", "")
    report.of(state).record(host.name, restored_from=str(source.path), restored_keys=keys, previous_data=kept,
                            summary=f"restored {keys} keys from the {source.describe()} ({size_text(source.size)}), "
                                    f"AOF on; the previous data is kept on the host as {kept}")
    return True


@operation()
def put_back(target: Target, source: Source):
    """
    Send the backup to the host and restore it there (checked, the previous data kept, rolled back on failure).

    + target: the host's Target
    + source: what to restore (backup_store.resolve)

    **Example:**

    .. code:: python

        put_back(name="Restore the backup", target=target, source=backup_store.resolve("backups/nvr-1"))
    """
    yield HostJob(_restore_job, target, source)


def restore(prepared, source: Source) -> None:
    """The restore of one host (the restore flow, after the prologue)."""
    target, state = prepared.target, prepared.state
    flavour, version = target_server(target, state)
    if not state.server.cli or not version:
        problem = f"{target.row.cli} is not installed here: run deploy.py first, then restore.py"
    else:
        problem = backup_store.refusal(source, flavour, version)
    if problem:
        shell.fail_step(STEP, problem, name="Check the backup against this host's server")
        return
    restored = put_back(name="Restore the backup (checked; previous data kept; rolled back on failure)",
                        target=target, source=source)
    verify.server_answers(name="Verify: PONG with the password, NOAUTH without, AOF, identities, .env",
                          target=target, state=state, salt=prepared.salt, changes=(restored,))
