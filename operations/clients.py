"""The server's clients on this host: the HSI backend's `.env` and TLS files (the exporter: exporter.py).

The `.env` is merged on the host (the program's `merge` entry): the keys this deploy owns are set,
every other line stays as it was. Whether it needs doing is decided from salted hashes of the lines
that assign an owned key (values never leave the host). Refused, before anything changes: a `.env`
that is a symbolic link, a directory another user can write, lines the merge cannot read
unambiguously. All these files are written after the server serves with its new configuration.
"""

from __future__ import annotations

from .hoststate import HostState, salted_sha256
from .program import FileEntry, MergeEntry
from .target import ClientFiles, Target
from .tls_preflight import TlsConfig

AFTER = ("after",)


def owner(state: HostState, directory: str, user: str | None, group: str | None) -> tuple[str, str]:
    """Who a client file belongs to: the settings' user (and group), else the directory's owner (a
    service user's own directory keeps its files), else root for a directory the deploy creates."""
    if user:
        return user, group or "-"  # the program gives it the owner's login group
    found = state.dirs.get(directory)
    if found is not None and found.exists:
        return found.user, group or found.group
    return "root", group or "root"


def tls_copies(tls: TlsConfig, files: ClientFiles, user: str, group: str, flags: tuple[str, ...],
               key_mode: int = 0o600) -> list[FileEntry]:
    """A client's copies of its server's CA (and under mTLS the client pair) in `files`, for `user` and
    `group` (the backend's, or the exporter's; `flags` with "owndir": a directory made for them is theirs)."""
    entries = [FileEntry(files.ca, tls.ca_pem.encode(), 0o644, user, group, flags)]
    if tls.mtls:
        entries += [FileEntry(files.cert, tls.client_cert_pem.encode(), 0o644, user, group, flags),
                    FileEntry(files.key, tls.client_key_pem.reveal().encode(), key_mode, user, group, flags)]
    return entries


def _tls_entries(tls: TlsConfig | None, state: HostState, files: ClientFiles | None, user: str | None,
                 group: str | None) -> list[FileEntry]:
    """The CA (and under mTLS the client pair) a client gets from its server's TLS settings `tls`."""
    if files is None or tls is None:
        return []
    owner_, grp = owner(state, files.dir, user, group)
    return tls_copies(tls, files, owner_, grp, (*AFTER, "owndir"))  # a directory made for them: theirs (0750)


def env_problem(target: Target, state: HostState) -> str | None:
    """Why the backend `.env` cannot be merged safely, or None."""
    backend = target.backend
    if backend is None:
        return None
    info = state.envs.get(backend.env_path)
    if info is None:
        return None
    if info.file.kind == "l":
        return (f"redis_backend_env_path: {backend.env_path} is a symbolic link; the deploy will not write "
                "through it (replace it by the file itself)")
    if info.file.writer == "unsafe":
        return (f"redis_backend_env_path: a directory on the way to {backend.env_path} is writable by "
                "other users; the deploy will not write there")
    writer, directory = info.file.writer, _parent(backend.env_path)
    if writer != "root":  # a user controls the directory: the program writes there as that user only
        if backend.owner and backend.owner != writer:
            return (f"redis_backend_env_owner is {backend.owner}, but {directory} is controlled by {writer}: the "
                    f"deploy writes {backend.env_path} there only as {writer}, so it would belong to {writer}; set "
                    f"redis_backend_env_owner to {writer} (or unset it), or make the directory root's")
        if info.file.kind == "f" and info.file.user != writer:
            return (f"redis_backend_env_path: {backend.env_path} belongs to {info.file.user}, but {directory} is "
                    f"controlled by {writer}: the deploy writes there only as {writer}, which would take the file "
                    f"from its owner; run `chown {writer} {backend.env_path}` or make the directory root's")
    if info.bad:
        where = "; ".join(f"{backend.env_path} line {n}: {why}" for n, why in info.bad)
        return (f"redis_backend_env_path: {backend.env_path}: the merge cannot read the REDIS_* keys "
                f"unambiguously ({where}); fix those lines by hand and run again")
    return None


def dir_problems(target: Target, state: HostState) -> dict[str, str]:
    """The client directories that cannot be written safely: {directory: why (naming the setting)}. The
    backend's TLS directory is the one (its `.env`'s directory: env_problem)."""
    backend = target.backend
    if backend is None or backend.tls_files is None:
        return {}
    directory, owner_ = backend.tls_files.dir, backend.owner
    info = state.dirs.get(directory)
    if info is None:
        return {}
    if info.kind == "l" and info.user != "root":
        why = (f"redis_tls_backend_dir: {directory} is a symbolic link {info.user} controls; the deploy will not "
               "write through it")
    elif info.writer == "unsafe":
        why = (f"redis_tls_backend_dir: a directory on the way to {directory} is writable by other users (or two "
               "users control it); the deploy will not write there")
    elif owner_ and info.writer not in ("root", owner_):
        why = (f"redis_backend_env_owner is {owner_}, but {directory} is controlled by {info.writer}: the files "
               f"there would belong to {info.writer}; set redis_backend_env_owner to {info.writer} (or leave it "
               "unset)")
    else:
        return {}
    return {directory: why}


def env_differs(target: Target, state: HostState, salt: str) -> bool:
    backend = target.backend
    info = state.envs.get(backend.env_path)
    if info is None or info.file.kind != "f":
        return True
    if any(info.keys.get(key) != (salted_sha256(salt, line),) for key, line in backend.lines):
        return True
    if info.file.mode & 0o007:
        return True  # the merge tightens it
    if backend.owner and info.file.user != backend.owner:
        return True
    return bool(backend.group) and info.file.group != backend.group


def password_entries(target: Target) -> list[MergeEntry]:
    """The client files that hold the backend's password: the `.env` merge (the exporter has its own)."""
    backend = target.backend
    if backend is None:
        return []
    return [MergeEntry(backend.env_path, backend.lines, backend.owner, backend.group, AFTER)]


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] or "/"


def tls_entries(target: Target, state: HostState) -> list[FileEntry]:
    """The backend's CA and client files, as they should be (its server's: `backend.tls`)."""
    backend = target.backend
    if backend is None:
        return []
    return _tls_entries(backend.tls, state, backend.tls_files, backend.owner, backend.group)


def entries(target: Target, state: HostState, salt: str) -> list:
    """The client files that differ from what the state read found."""
    found: list = []
    # a .env refused from the read (verification then fails the host naming the setting) is never sent
    if env_problem(target, state) is None and target.backend is not None and env_differs(target, state, salt):
        found += password_entries(target)
    found += [e for e in tls_entries(target, state) if state.differs(salt, e)]
    unsafe = dir_problems(target, state)  # held back: verification fails the host naming the setting
    return [e for e in found if _parent(e.path) not in unsafe]


def paths(target: Target) -> list[str]:
    """Every whole file this step may write (for the state read; the `.env` is read as an env)."""
    found: list[str] = []
    files = target.backend.tls_files if target.backend else None
    if files is not None:
        found += [files.ca, files.cert, files.key]
    return found


def envs(target: Target) -> list[tuple[str, tuple[str, ...]]]:
    if target.backend is None:
        return []
    return [(target.backend.env_path, tuple(key for key, _ in target.backend.lines))]


def dirs(target: Target) -> list[str]:
    """Directories whose writer the read reports (a backend directory another user controls)."""
    found = []
    if target.backend is not None:
        found.append(_parent(target.backend.env_path))
        if target.backend.tls_files is not None:
            found.append(target.backend.tls_files.dir)
    return found
