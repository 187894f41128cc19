"""The station's shared SQLite file ``ocpp.db`` as each of its stores opens and writes it: made whole, checked, durable.

Several stores keep their tables in the one file (the message queue's ``ocpp_queue*``, the configuration's
``ocpp_variables``, the authorization cache and local list, the open transactions), each through its own connection,
with its own tables (``CREATE TABLE IF NOT EXISTS``; no other table is read or touched) and its own error class,
described by a ``Layout``. What they do alike is here.

WAL with ``synchronous=FULL``: a commit is durable against power loss once it returns, costs one fsync of the log
(DELETE mode syncs journal, database and directory: slower, and more wear on a Pi's SD card), and the other
connections keep reading while one writes. A missing file is built under a temporary name and hard-linked into place
(a crash leaves no half-made file; one made meanwhile by another store is used, never replaced). A directory, an
existing 0-byte file (a lost database must not look like an empty one), a file SQLite cannot use and a table of ours
whose columns are not the ones expected are refused with the store's error naming the file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Layout:
    """One store's part of the file: its tables, their checks, and how its errors (``error``) name the file."""

    error: type[Exception]
    schema: str  # complete statements (each ending with ';'): CREATE TABLE IF NOT EXISTS..., run at every open
    tables: Mapping[str, tuple[str, ...]]  # each table to check and the columns it must have, in order
    indexes: str = ""  # statements run once the columns are checked (and part of a new file's schema)
    check: Callable[[Path, sqlite3.Connection], None] | None = None  # more checks: after the schema, before columns
    quick_check: bool = False  # PRAGMA quick_check first: a corrupt file is refused as such
    text_as_bytes: bool = False  # the connection hands text over as bytes (the store decodes it row by row)
    name: str = "OCPP database"
    article: str = "an"
    empty_as: str = "a new one (a lost database must not look like an empty one)"


def open_tables(path: Path, busy_timeout_s: float, layout: Layout) -> sqlite3.Connection:
    """Open (or make) ``path`` for one store, checked and ready (module docstring); ``layout.error`` if unusable."""
    error = layout.error
    if path.is_dir():
        raise error(f"{path}: is a directory, not {layout.article} {layout.name}")
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        _create(path, layout)
    elif path.stat().st_size == 0:
        raise error(
            f"{path}: is an empty file (0 bytes), not {layout.article} {layout.name}; refusing to take it as "
            f"{layout.empty_as}: move it away to start afresh"
        )
    try:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_s)
    except sqlite3.Error as exc:
        raise error(f"{path}: cannot open the {layout.name}: {exc}") from exc
    try:
        _prepare(path, db, layout)
    except (sqlite3.Error, UnicodeDecodeError, error) as exc:
        rollback(db)
        db.close()
        if isinstance(exc, error):
            raise
        raise error(f"{path}: not a usable {layout.name}: {exc}") from exc
    return db


@contextlib.contextmanager
def write(db: sqlite3.Connection, path: Path, what: str, error: type[Exception], *, relaxed: bool = False,
          failed: Callable[[Exception], None] | None = None) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE .. COMMIT; sqlite3.Error/OSError roll back and raise ``error`` "{path}: cannot {what}: ...".

    ``relaxed``: synchronous=NORMAL for this commit only (no fsync). ``failed(exc)`` hears of such a failure before
    the error is raised. Anything else raised inside rolls back and goes through unchanged.
    """
    try:
        if relaxed:
            db.execute("PRAGMA synchronous=NORMAL")
        db.execute("BEGIN IMMEDIATE")
        yield db
        db.execute("COMMIT")
    except (sqlite3.Error, OSError) as exc:
        rollback(db)
        if failed is not None:
            failed(exc)
        raise error(f"{path}: cannot {what}: {exc}") from exc
    except BaseException:
        rollback(db)
        raise
    finally:
        if relaxed:
            with contextlib.suppress(sqlite3.Error):
                db.execute("PRAGMA synchronous=FULL")


def rollback(db: sqlite3.Connection) -> None:
    """Roll back if SQLite has not done so already (e.g. after SQLITE_FULL)."""
    if db.in_transaction:
        with contextlib.suppress(sqlite3.Error):
            db.execute("ROLLBACK")


def _prepare(path: Path, db: sqlite3.Connection, layout: Layout) -> None:
    """Check integrity if asked, set WAL + synchronous=FULL, add the tables if missing, refuse a layout not ours."""
    if layout.text_as_bytes:
        db.text_factory = bytes
    if layout.quick_check:
        check = _text(db.execute("PRAGMA quick_check").fetchone()[0])
        if check != "ok":
            raise layout.error(f"{path}: database is corrupt ({check})")
    mode = _text(db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
    if mode.lower() != "wal":
        raise layout.error(f"{path}: cannot switch to the WAL journal (got {mode})")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(f"BEGIN IMMEDIATE; {layout.schema} COMMIT;")
    if layout.check is not None:
        layout.check(path, db)
    for table, expected in layout.tables.items():
        columns = tuple(_text(r[1]) for r in db.execute(f"PRAGMA table_info({table})"))
        if columns != expected:
            raise layout.error(
                f"{path}: table {table} has columns ({', '.join(columns)}), this program expects "
                f"({', '.join(expected)}); refusing to use it"
            )
    if layout.indexes:
        db.executescript(layout.indexes)


def _text(value: object) -> str:
    """A value SQLite handed over, as text (decoded as UTF-8 when the connection gives bytes)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def _create(path: Path, layout: Layout) -> None:
    """Make a new file at ``path`` with the store's tables: built under a unique temporary name, synced, linked."""
    temp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.new")
    try:
        db = sqlite3.connect(temp, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.executescript(f"BEGIN IMMEDIATE; {layout.schema} {layout.indexes} COMMIT;")
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()  # the last connection checkpoints the WAL into the file
        _fsync(temp)
        try:
            os.link(temp, path)  # fails if the file appeared meanwhile: then that one is used, never replaced
        except FileExistsError:
            pass
        except OSError:  # a file system without hard links
            if not path.exists():
                os.replace(temp, path)
        _fsync(path.parent)  # the new name is durable too
    except (OSError, sqlite3.Error) as exc:
        raise layout.error(f"{path}: cannot create the {layout.name}: {exc}") from exc
    finally:
        for leftover in (temp, temp.with_name(temp.name + "-wal"), temp.with_name(temp.name + "-shm")):
            leftover.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    """Flush a file (or a directory's entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
