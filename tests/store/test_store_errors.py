"""Every problem a user can cause is a one-line UserError, and existing data is never changed."""

from __future__ import annotations

import hashlib
import os
import sqlite3

import pytest
import sqlalchemy as sa

from nnscale.errors import UserError
from nnscale.store import open_store


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _open_fails(url, *words, create=True) -> str:
    with pytest.raises(UserError) as info:
        open_store(url, create=create)
    message = str(info.value)
    assert "\n" not in message, message
    for word in words:
        assert word in message, message
    return message


def _siblings_unchanged(path) -> None:
    assert not os.path.exists(f"{path}-wal") and not os.path.exists(f"{path}-shm")
    assert not os.path.exists(f"{path}-journal")


def _refused_untouched(path, *words) -> None:
    """Opening the SQLite file at `path` fails with `words` in one line, and the file is unchanged."""
    before = _digest(path)
    _open_fails(str(path), *words)
    assert _digest(path) == before


def _sqlite_file(path, *statements):
    with sqlite3.connect(path) as conn:
        for statement in statements:
            conn.execute(statement)
    conn.close()
    return path


@pytest.mark.parametrize(
    "content",
    [
        os.urandom(8192),
        b"SQLite format 3\x00" + os.urandom(8192 - 16),  # the header, then garbage
        b"not a db",  # shorter than a header
        b"x" * 100,
    ],
    ids=["garbage", "header-then-garbage", "short", "text"],
)
def test_corrupt_file_is_refused_untouched(tmp_path, content):
    path = tmp_path / "results.db"
    path.write_bytes(content)
    _refused_untouched(path, str(path))
    _siblings_unchanged(path)


def test_foreign_sqlite_database_is_refused_untouched(tmp_path):
    path = _sqlite_file(tmp_path / "app.db", "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)",
                        "INSERT INTO users (name) VALUES ('ada'), ('alan')")
    _refused_untouched(path, "users", "no nnscale results")
    _siblings_unchanged(path)


def test_foreign_meta_table_is_refused(tmp_path):
    _refused_untouched(_sqlite_file(tmp_path / "app.db", "CREATE TABLE meta (k TEXT, v TEXT)"),
                       "not nnscale's")


def test_newer_schema_version_is_refused_untouched_sqlite(tmp_path):
    path = tmp_path / "results.db"
    with open_store(str(path)) as store:
        store.create_run("kept")
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    files = {p: _digest(p) for p in tmp_path.iterdir()}
    _open_fails(str(path), "newer nnscale", "schema version 9")
    assert {p: _digest(p) for p in tmp_path.iterdir()} == files


def test_newer_schema_version_is_refused_postgresql(pg_url):
    with open_store(pg_url) as store:
        store.create_run("kept")
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.exec_driver_sql("UPDATE meta SET value = '9' WHERE key = 'schema_version'")
    _open_fails(pg_url, "newer nnscale")
    with engine.connect() as conn:
        assert conn.exec_driver_sql("SELECT name FROM runs").scalars().all() == ["kept"]
        assert (
            conn.exec_driver_sql("SELECT value FROM meta WHERE key='schema_version'").scalar()
            == "9"
        )
    engine.dispose()


def test_foreign_tables_are_refused_untouched_postgresql(pg_url):
    engine = sa.create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://", 1))
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE orders (id int, item text)")
        conn.exec_driver_sql("INSERT INTO orders VALUES (1, 'tea')")
    _open_fails(pg_url, "orders", "no nnscale results")
    with engine.connect() as conn:
        names = set(sa.inspect(conn).get_table_names())
        rows = conn.exec_driver_sql("SELECT * FROM orders").all()
    engine.dispose()
    assert names == {"orders"} and rows == [(1, "tea")]


def test_unreachable_postgresql_is_a_user_error():
    _open_fails("postgresql://nnscale:secret@127.0.0.1:1/nnscale_test", "cannot open", "127.0.0.1")
    message = _open_fails("postgresql://nnscale:secret@127.0.0.1:1/nnscale_test")
    assert "secret" not in message


def test_wrong_password_is_a_user_error(pg_server_url):
    url = sa.make_url(pg_server_url).set(password="wrong-password")
    message = _open_fails(url.render_as_string(hide_password=False), "cannot open")
    assert "wrong-password" not in message


def test_unwritable_directory_is_a_user_error(tmp_path):
    if os.geteuid() == 0:
        # Root may write anywhere permissions allow; /proc refuses new files even to root.
        _open_fails("/proc/nnscale-results.db", "/proc/nnscale-results.db")
        return
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        _open_fails(str(locked / "results.db"), "not writable")
        assert not (locked / "results.db").exists()
    finally:
        locked.chmod(0o700)


def test_unwritable_locations_are_checked_before_opening(tmp_path, monkeypatch):
    """The permission checks themselves, whoever runs the tests (root passes every os.access)."""
    import nnscale.store.url as url_module

    existing = tmp_path / "old.db"
    open_store(str(existing)).close()
    before = _digest(existing)
    monkeypatch.setattr(url_module.os, "access", lambda path, mode: False)
    _open_fails(str(tmp_path / "new.db"), "directory", "not writable")
    assert not (tmp_path / "new.db").exists()
    _open_fails(str(existing), "old.db is not writable")
    assert _digest(existing) == before


def test_unwritable_file_is_a_user_error(tmp_path):
    if os.geteuid() == 0:
        pytest.skip("root can write to a read-only file")
    path = tmp_path / "results.db"
    open_store(str(path)).close()
    path.chmod(0o400)
    _open_fails(str(path), "not writable")


def test_bad_locations(tmp_path):
    _open_fails(str(tmp_path), "is a directory")
    _open_fails(str(tmp_path / "missing" / "results.db"), "does not exist")
    afile = tmp_path / "afile"
    afile.write_text("x")
    _open_fails(str(afile / "results.db"), "not a directory")
    _open_fails(str(tmp_path / "new.db"), "no results store", create=False)
    assert not (tmp_path / "new.db").exists()


def test_empty_postgresql_without_create_is_a_user_error(pg_url):
    _open_fails(pg_url, "holds no nnscale results", create=False)


def test_unknown_run_lists_known_runs(db_url):
    with open_store(db_url) as store:
        with pytest.raises(UserError, match="holds no runs yet"):
            store.run("nope")
        for name in ("alpha", "beta"):
            store.create_run(name)
        with pytest.raises(UserError, match=r"no run named 'nope'.*alpha, beta"):
            store.measurements("nope")


def test_duplicate_and_bad_run_names(db_url):
    with open_store(db_url) as store:
        first = store.create_run("sweep")
        with pytest.raises(UserError, match="already exists"):
            store.create_run("sweep")
        assert store.get_or_create_run("sweep") == first
        assert store.create_run("sweep", exist_ok=True) == first
        for bad in ("", "   ", "a\nb", "x" * 201):
            with pytest.raises(UserError, match="run name"):
                store.create_run(bad)
        assert [r.name for r in store.runs()] == ["sweep"]
