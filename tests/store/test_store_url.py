"""Store locations: paths and URLs that are accepted, and the one-line errors for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from nnscale.errors import UserError
from nnscale.store import DEFAULT_URL, resolve_url


def test_default_is_nnscale_db_in_the_current_directory(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    for given in (None, "", "  "):
        target = resolve_url(given)
        assert target.backend == "sqlite"
        assert target.sqlite_path == tmp_path / "nnscale.db"
    assert DEFAULT_URL == "sqlite:///nnscale.db"


def test_paths_and_sqlite_urls_become_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_url("results.db").sqlite_path == tmp_path / "results.db"
    assert resolve_url(tmp_path / "a.db").sqlite_path == tmp_path / "a.db"
    assert resolve_url("sqlite:///rel/b.db").sqlite_path == tmp_path / "rel" / "b.db"
    assert resolve_url(f"sqlite:///{tmp_path}/c.db").sqlite_path == tmp_path / "c.db"
    home = resolve_url("~/x.db").sqlite_path
    assert home == Path.home() / "x.db"
    target = resolve_url("results.db")
    assert target.url.drivername == "sqlite+pysqlite"
    assert target.url.database == str(tmp_path / "results.db")
    assert target.display == str(tmp_path / "results.db")


def test_in_memory_sqlite():
    for given in ("sqlite://", "sqlite:///:memory:"):
        target = resolve_url(given)
        assert target.sqlite_path is None and target.url.database == ":memory:"


def test_postgresql_urls_use_psycopg3_and_hide_the_password():
    for given in (
        "postgresql://u:secret@db.example:5433/results",
        "postgres://u:secret@db.example:5433/results",
    ):
        target = resolve_url(given)
        assert target.backend == "postgresql"
        assert target.url.drivername == "postgresql+psycopg"
        assert target.url.port == 5433 and target.url.database == "results"
        assert "secret" not in target.display
    assert resolve_url("postgresql+psycopg2://h/db").url.drivername == "postgresql+psycopg2"


@pytest.mark.parametrize(
    "given, words",
    [
        ("postgresql://u:secret@host:notaport/db", "malformed"),
        ("://nothing", "malformed"),
        ("postgresql:/missing-slash", "malformed"),
        ("mysql://h/db", "unsupported"),
        ("foo://bar", "unsupported"),
        ("postgresql://u:secret@host", "no database"),
    ],
)
def test_bad_urls_are_one_line_user_errors(given, words):
    with pytest.raises(UserError) as info:
        resolve_url(given)
    message = str(info.value)
    assert words in message
    assert "\n" not in message
    assert "secret" not in message
    assert "accepted:" in message
