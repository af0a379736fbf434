"""Authenticated SQLite files: the checkpoint key, row MACs, the file header (internal).

A checkpoint (and a stand-alone :class:`~asyncstream.stores.SqliteStateStore` file) is
data an attacker may have rewritten. Nothing read from it is unpickled before its row
is verified with HMAC-SHA256 under a key that is *not* in the file's directory:

- ``$ASYNCSTREAM_CHECKPOINT_KEY`` when set: its UTF-8 bytes are the key (at least 16);
- else the per-user key file ``$XDG_CONFIG_HOME/asyncstream/checkpoint.key`` (default
  ``~/.config/asyncstream/checkpoint.key``): 32 random bytes, hex-encoded on one line,
  made on first use (0600 in a 0700 directory). The key is the UTF-8 of that line, so
  ``ASYNCSTREAM_CHECKPOINT_KEY=$(cat ~/.config/asyncstream/checkpoint.key)`` is the
  same key on another machine.

Each file has a header in ``asyncstream_meta`` (one JSON value and one MAC per row): its
``format``, the ``key_id`` (a public fingerprint of the key, for error messages), and a
random ``file_id``. Every row MAC is keyed with a sub-key derived from the key, the
``file_id``, the table and the operator, so a row verifies only in its own file, table
and operator, and (for keyed state) under its own key bytes::

    subkey(table, operator) = HMAC(key, "asyncstream/2" | file_id | table | operator)
    state row   mac = HMAC(subkey("state", op),  len(key) | key | value)  (value: mac | pickle)
    blob row    mac = HMAC(subkey("blob", op),   len(h) | h | value), h = kind:encoding:time
    commit row  mac = HMAC(subkey("commit", op), len(time) | time)
    meta row    mac = HMAC(subkey("meta", ""),   len(name) | name | json value)
    file_id     mac = HMAC(key, "asyncstream/2" | "file_id" | file_id)

A new file is built under a temporary name and linked into place complete, so an
existing file is never empty or half-made by us: an empty, truncated, foreign or older
file is refused with a :class:`~asyncstream.errors.CheckpointError`.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import os
import secrets
import shlex
import sqlite3
import stat
import struct
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from .errors import CheckpointError

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

__all__ = [
    "KEY_ENV",
    "META_TABLE",
    "Key",
    "Layout",
    "Signer",
    "check_private_directory",
    "key_file_path",
    "load_key",
    "make_private_directory",
    "open_db",
    "pair_mac",
    "refuse",
    "tampered",
    "unverified_header",
    "write_meta",
]

KEY_ENV: Final = "ASYNCSTREAM_CHECKPOINT_KEY"
MIN_KEY_BYTES: Final = 16
_KEY_FILE_MAX: Final = 4096
_DOMAIN: Final = b"asyncstream/2"
_U32: Final = struct.Struct(">I").pack
_FILE_MODE: Final = 0o600


def _lp(*parts: bytes) -> bytes:
    """Length-prefixed concatenation: no two part lists give the same bytes."""
    return b"".join(_U32(len(p)) + p for p in parts)


def pair_mac(key: bytes, first: bytes, second: bytes) -> bytes:
    """HMAC-SHA256 of ``first`` and ``second``, where ``first`` ends unambiguously."""
    return hmac.digest(key, _U32(len(first)) + first + second, "sha256")


# --- the key -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Key:
    """The checkpoint key and where it came from (for messages).

    Attributes:
        secret: The key bytes.
        source: ``$ASYNCSTREAM_CHECKPOINT_KEY`` or the key file's path.
    """

    secret: bytes
    source: str

    @property
    def id(self) -> str:
        """A public fingerprint of the key (16 hex digits): tells two keys apart."""
        return hmac.digest(self.secret, _DOMAIN + b" key id", "sha256")[:8].hex()


def key_file_path() -> str:
    """``$XDG_CONFIG_HOME/asyncstream/checkpoint.key`` (``~/.config`` by default)."""
    base = os.environ.get("XDG_CONFIG_HOME", "")
    if not os.path.isabs(base):  # the XDG spec: a relative value is ignored
        base = os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "asyncstream", "checkpoint.key")


def load_key(*, create: bool = True) -> Key | None:
    """The checkpoint key: the environment variable, else the key file (made if missing).

    Returns:
        The key; ``None`` only when ``create`` is false and there is no key yet.

    Raises:
        CheckpointError: The key is too short, or its file or directory is not private.
    """
    env = os.environ.get(KEY_ENV)
    if env is not None:
        secret = env.encode()
        if len(secret) < MIN_KEY_BYTES:
            msg = (
                f"{KEY_ENV} holds {len(secret)} bytes; a checkpoint key needs at least "
                f"{MIN_KEY_BYTES}: set it to a long random string, e.g. the output of "
                "python -c 'import secrets; print(secrets.token_hex(32))'"
            )
            raise CheckpointError(msg, path=f"${KEY_ENV}")
        return Key(secret, f"${KEY_ENV}")
    path = key_file_path()
    try:
        return Key(_read_key_file(path), path)
    except FileNotFoundError:
        if not create:
            return None
    _create_key_file(path)
    return Key(_read_key_file(path), path)


def _read_key_file(path: str) -> bytes:
    # O_NONBLOCK: a FIFO planted as the key file must not hang the job.
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            msg = (
                f"checkpoint key file {path!r} is not a regular file; remove it (a new key "
                f"is made) or set {KEY_ENV}"
            )
            raise CheckpointError(msg, path=path)
        _check_owner(path, st, "checkpoint key file", f"remove it, or set {KEY_ENV}")
        if st.st_mode & 0o077:
            msg = (
                f"checkpoint key file {path!r} can be read or written by other users "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run chmod 600 {shlex.quote(path)}"
            )
            raise CheckpointError(msg, path=path)
        data = os.read(fd, _KEY_FILE_MAX + 1)
    finally:
        os.close(fd)
    secret = data.strip()
    if not MIN_KEY_BYTES <= len(secret) <= _KEY_FILE_MAX:
        msg = (
            f"checkpoint key file {path!r} holds {len(secret)} bytes, not a key of "
            f"{MIN_KEY_BYTES} to {_KEY_FILE_MAX} bytes; restore it, or remove it (a new key "
            "is made, and checkpoints written with the old one can no longer be read)"
        )
        raise CheckpointError(msg, path=path)
    return secret


def _create_key_file(path: str) -> None:
    directory = os.path.dirname(path)
    os.makedirs(os.path.dirname(directory), exist_ok=True)
    make_private_directory(
        directory, "checkpoint key directory", f"set XDG_CONFIG_HOME elsewhere, or set {KEY_ENV}"
    )
    # Written in full under a temporary name, then linked into place: link() never
    # replaces a file, so when two processes race the first key wins, and no reader
    # ever sees a half-written key.
    tmp = os.path.join(directory, f".checkpoint.key.{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, _FILE_MODE)
        data = (secrets.token_bytes(32).hex() + "\n").encode()
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)
    except FileExistsError:
        pass
    finally:
        os.unlink(tmp)


# --- private directories ------------------------------------------------------------------


def _check_owner(path: str, st: os.stat_result, what: str, fix: str) -> None:
    me = os.geteuid()
    if st.st_uid != me:
        msg = f"{what} {path!r} belongs to uid {st.st_uid}, not to this user (uid {me}); {fix}"
        raise CheckpointError(msg, path=path)


def check_private_directory(path: str, what: str, elsewhere: str) -> None:
    """Refuse a directory that is not ours or that other users can write.

    Args:
        path: The directory.
        what: How messages call it, e.g. ``"checkpoint directory"``.
        elsewhere: The way out that messages offer besides fixing the directory, e.g.
            ``"point checkpoint() at another directory"``.

    Raises:
        CheckpointError: It is not a directory, not ours, or group/other-writable.
    """
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        msg = f"{what} {path!r} is not a directory; {elsewhere}"
        raise CheckpointError(msg, path=path)
    _check_owner(path, st, what, elsewhere)
    if st.st_mode & 0o022:
        msg = (
            f"{what} {path!r} can be written by other users (mode "
            f"{stat.S_IMODE(st.st_mode):04o}), who could replace its files; run "
            f"chmod 700 {shlex.quote(path)}, or {elsewhere}"
        )
        raise CheckpointError(msg, path=path)


def make_private_directory(path: str, what: str, elsewhere: str) -> None:
    """Create ``path`` with mode 0700 (whatever the umask), or check the existing one."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    else:
        os.chmod(path, 0o700)
    check_private_directory(path, what, elsewhere)


# --- the file ------------------------------------------------------------------------------

# The header table every file has. Its schema, like every other, is in
# asyncstream.checkpoint, which hands it here in each Layout.
META_TABLE: Final = "asyncstream_meta"


@dataclass(frozen=True)
class Layout:
    """What an authenticated file holds (the layouts are in :mod:`asyncstream.checkpoint`).

    Attributes:
        format: The ``format`` header value, e.g. ``"asyncstream-checkpoint/2"``.
        label: How messages call the file, e.g. ``"checkpoint file"``.
        schema: ``CREATE TABLE`` statements of every table, the header table
            (:data:`META_TABLE`) included, one per item.
        columns: Each table's columns, in order, to recognise an altered layout; the
            header table's included.
    """

    format: str
    label: str
    schema: tuple[str, ...]
    columns: Mapping[str, tuple[str, ...]]


class Signer:
    """Sub-keys of one file: its key, its ``file_id``, a table and an operator."""

    __slots__ = ("_secret", "_subkeys", "file_id")

    def __init__(self, secret: bytes, file_id: str) -> None:
        self._secret = secret
        self.file_id = file_id
        self._subkeys: dict[tuple[str, str], bytes] = {}

    def subkey(self, table: str, operator: str) -> bytes:
        """The MAC key of ``table``'s rows of ``operator`` in this file."""
        sub = self._subkeys.get((table, operator))
        if sub is None:
            info = _lp(_DOMAIN, self.file_id.encode(), table.encode(), operator.encode())
            sub = self._subkeys[table, operator] = hmac.digest(self._secret, info, "sha256")
        return sub


def _file_id_mac(secret: bytes, file_id: str) -> bytes:
    return hmac.digest(secret, _lp(_DOMAIN, b"file_id", file_id.encode()), "sha256")


def write_meta(conn: sqlite3.Connection, signer: Signer, items: Iterable[tuple[str, Any]]) -> None:
    """Write header/meta rows (JSON values, each with its MAC); inside the caller's transaction."""
    key = signer.subkey("meta", "")
    rows = []
    for name, value in items:
        text = json.dumps(value, separators=(",", ":"))
        rows.append((name, text, pair_mac(key, name.encode(), text.encode())))
    conn.executemany(
        "INSERT OR REPLACE INTO asyncstream_meta (key, value, mac) VALUES (?, ?, ?)", rows
    )


def refuse(path: str, label: str, problem: str, fix: str) -> CheckpointError:
    """The error for a file that cannot be used: ``"<label> '<path>' <problem>; <fix>"``."""
    return CheckpointError(f"{label} {path!r} {problem}; {fix}", path=path)


def tampered(path: str, label: str, what: str, fix: str) -> CheckpointError:
    """The error for a row whose MAC does not verify."""
    return refuse(
        path,
        label,
        f"is not authentic: {what} fails verification (the file was altered, or the row "
        "comes from another checkpoint); nothing unverified was loaded",
        fix,
    )


def open_db(
    path: str, layout: Layout, key: Key, header: Mapping[str, Any], fix: str
) -> tuple[sqlite3.Connection, Signer, dict[str, Any]]:
    """Open (or create, with ``header``) an authenticated file; verify its header.

    Args:
        path: The database file.
        layout: Its format and tables.
        key: The key that authenticates it.
        header: Extra header rows of a new file (an existing file's are returned).
        fix: What every error tells the user to do.

    Returns:
        The connection (autocommit; WAL), the file's signer, and its verified meta rows.

    Raises:
        CheckpointError: The file is empty, corrupt, foreign, older, from another key or
            altered.
    """
    if not os.path.lexists(path):
        _create(path, layout, key, header)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise refuse(path, layout.label, "is a dangling symbolic link", fix) from None
    if not stat.S_ISREG(st.st_mode):
        raise refuse(path, layout.label, "is not a regular file", fix)
    _check_owner(path, st, layout.label, fix)
    if st.st_size == 0:
        problem = (
            "is empty (0 bytes): it was damaged, and treating it as new would silently lose "
            "the state it held"
        )
        raise refuse(path, layout.label, problem, fix)
    for name in (path, f"{path}-wal", f"{path}-shm"):
        try:
            if stat.S_IMODE(os.stat(name).st_mode) != _FILE_MODE:
                os.chmod(name, _FILE_MODE)
        except FileNotFoundError:
            pass
    # mode=rw: never create a file here (one removed meanwhile is an error, not a reset).
    uri = f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=rw"
    try:
        # Used from one thread at a time, but not always the same one: a checkpoint commits
        # in a worker thread so that the event loop keeps its ticks (see _scheduler).
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    except sqlite3.DatabaseError as exc:
        raise refuse(path, layout.label, f"cannot be opened ({exc})", fix) from exc
    try:
        meta = _verify(conn, path, layout, key, fix)
    except sqlite3.DatabaseError as exc:
        conn.close()
        problem = f"is not a readable SQLite database ({exc}): it is truncated or corrupt"
        raise refuse(path, layout.label, problem, fix) from exc
    except BaseException:
        conn.close()
        raise
    return conn, Signer(key.secret, meta["file_id"]), meta


def _create(path: str, layout: Layout, key: Key, header: Mapping[str, Any]) -> None:
    tmp = f"{path}.new-{secrets.token_hex(8)}"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o600)
    except OSError as exc:
        msg = (
            f"{layout.label} {path!r} cannot be created ({exc.strerror}); check that its "
            "directory exists and this user can write it, or use another path"
        )
        raise CheckpointError(msg, path=path) from exc
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    try:
        conn = sqlite3.connect(tmp, isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("BEGIN IMMEDIATE")
            for statement in layout.schema:
                conn.execute(statement)
            file_id = secrets.token_hex(16)
            conn.execute(
                "INSERT INTO asyncstream_meta (key, value, mac) VALUES (?, ?, ?)",
                ("file_id", json.dumps(file_id), _file_id_mac(key.secret, file_id)),
            )
            items = {"format": layout.format, "key_id": key.id, **header}
            write_meta(conn, Signer(key.secret, file_id), items.items())
            conn.execute("COMMIT")
        finally:
            conn.close()  # the last connection: SQLite folds the WAL into the file
        try:
            os.link(tmp, path)  # never replaces: a file made meanwhile wins, and is verified
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not os.path.lexists(path):
                os.replace(tmp, path)
    finally:
        for name in (tmp, f"{tmp}-wal", f"{tmp}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(name)


def _verify(
    conn: sqlite3.Connection, path: str, layout: Layout, key: Key, fix: str
) -> dict[str, Any]:
    label = layout.label
    # Read only until the file is known to be ours: a foreign file is left as it was.
    check = [str(row[0]) for row in conn.execute("PRAGMA quick_check(3)")]
    if check != ["ok"]:
        found = " ".join(" ".join(check).split())
        problem = f"is corrupt (SQLite quick_check: {found}): it is truncated or damaged"
        raise refuse(path, label, problem, fix)
    tables = layout.columns
    objects = conn.execute("SELECT type, name, tbl_name FROM sqlite_master").fetchall()
    names = {name for kind, name, _ in objects if kind == "table"}
    raw = _header(conn, path, layout, fix, names)
    their_key = _plain(raw.get("key_id"))
    if their_key != key.id:
        problem = (
            f"was written with another key (key id {their_key}; this process has key id "
            f"{key.id}, from {key.source})"
        )
        way_out = (
            f"use the key it was written with (set {KEY_ENV}, or copy that key file), or {fix}"
        )
        raise refuse(path, label, problem, way_out)
    file_id = _plain(raw.get("file_id"))
    tag = raw.get("file_id", (None, None))[1]
    if not (
        isinstance(file_id, str)
        and isinstance(tag, bytes)
        and hmac.compare_digest(tag, _file_id_mac(key.secret, file_id))
    ):
        raise tampered(path, label, "the file_id row of asyncstream_meta", fix)
    unexpected = sorted(
        f"{kind} {name}"
        for kind, name, table in objects
        if not (
            (kind == "table" and name in tables)
            or (kind == "index" and name.startswith("sqlite_autoindex_") and table in tables)
        )
    )
    missing = sorted(set(tables) - names)
    if unexpected or missing:
        what = ", ".join([*unexpected, *(f"no table {m}" for m in missing)])
        problem = f"has a layout asyncstream never writes ({what}): it was altered"
        raise refuse(path, label, problem, fix)
    for table, columns in layout.columns.items():
        if _columns(conn, table) != columns:
            raise refuse(path, label, f"has an altered table {table}: it was altered", fix)
    meta_key = Signer(key.secret, file_id).subkey("meta", "")
    meta: dict[str, Any] = {"file_id": file_id}
    for name, (value, tag) in raw.items():
        if name == "file_id":
            continue
        if not (
            isinstance(name, str)
            and isinstance(value, str)
            and isinstance(tag, bytes)
            and hmac.compare_digest(tag, pair_mac(meta_key, name.encode(), value.encode()))
        ):
            raise tampered(path, label, f"the {name!r} row of asyncstream_meta", fix)
        meta[name] = json.loads(value)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return meta


def _header(
    conn: sqlite3.Connection, path: str, layout: Layout, fix: str, names: set[str]
) -> dict[object, tuple[object, object]]:
    """The meta rows as stored (unverified), once the file is known to be of ``layout``."""
    if META_TABLE not in names or _columns(conn, META_TABLE) != layout.columns[META_TABLE]:
        if names & set(layout.columns):
            problem = (
                "was written by an older asyncstream, whose checkpoints are not "
                "authenticated: it cannot be verified, so it is not loaded"
            )
        elif names:
            problem = f"is not an asyncstream file (it holds tables {', '.join(sorted(names))})"
        else:
            problem = "is not an asyncstream file (it holds no tables)"
        raise refuse(path, layout.label, problem, fix)
    rows = conn.execute("SELECT key, value, mac FROM asyncstream_meta").fetchall()
    raw: dict[object, tuple[object, object]] = {k: (v, m) for k, v, m in rows}
    fmt = _plain(raw.get("format"))
    if fmt != layout.format:
        problem = f"has format {fmt!r}; this asyncstream reads {layout.format!r} here"
        raise refuse(path, layout.label, problem, fix)
    return raw


def unverified_header(
    conn: sqlite3.Connection, path: str, layout: Layout, fix: str
) -> dict[str, object]:
    """The meta values as stored, NOT verified: for display only (JSON, never code).

    Raises:
        CheckpointError: The file is older or foreign.
        sqlite3.DatabaseError: The file is not a readable database.
    """
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    raw = _header(conn, path, layout, fix, names)
    return {k: _plain(row) for k, row in raw.items() if isinstance(k, str)}


def _columns(conn: sqlite3.Connection, table: str) -> tuple[str, ...]:
    return tuple(row[1] for row in conn.execute(f"PRAGMA table_info({table})"))


def _plain(row: tuple[object, object] | None) -> object:
    """An unverified header value, for a diagnosis only (JSON: never code)."""
    if row is None or not isinstance(row[0], str):
        return None
    try:
        return json.loads(row[0])
    except ValueError:
        return None
