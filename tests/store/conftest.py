"""Fixtures for the store tests: an SQLite file, or a fresh schema on a PostgreSQL server.

The PostgreSQL server comes from NNSCALE_TEST_PG_URL (default: what scripts/ci_postgres.sh sets up).
If it cannot be reached the PostgreSQL tests are skipped on a user's machine, but fail when CI=true:
CI must test both backends.
"""

from __future__ import annotations

import os
import uuid

import pytest
import sqlalchemy as sa

DEFAULT_PG_URL = "postgresql://nnscale:nnscale@127.0.0.1:5432/nnscale_test"
BACKENDS = ("sqlite", "postgresql")


def _libpq_url(url: str) -> str:
    """The URL as psycopg (libpq) reads it: no `+driver` in the scheme."""
    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """A reachable PostgreSQL URL, or skip (fail under CI=true)."""
    import psycopg

    url = os.environ.get("NNSCALE_TEST_PG_URL", DEFAULT_PG_URL)
    try:
        with psycopg.connect(_libpq_url(url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except Exception as e:  # any failure to reach it: refused, auth, DNS, bad URL
        shown = sa.make_url(url).render_as_string(hide_password=True)
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        message = f"PostgreSQL not reachable at {shown}: {reason} (run scripts/ci_postgres.sh)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return url


@pytest.fixture
def pg_url(pg_server_url: str):
    """A URL whose connections use a fresh, empty schema; dropped with all its tables afterwards."""
    import psycopg

    name = f"nnscale_t_{uuid.uuid4().hex[:12]}"
    admin = _libpq_url(pg_server_url)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {name}")
    url = sa.make_url(pg_server_url).update_query_dict({"options": f"-csearch_path={name}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute("SET lock_timeout = '20s'")
            conn.execute(f"DROP SCHEMA {name} CASCADE")


@pytest.fixture(params=BACKENDS)
def db_url(request, tmp_path) -> str:
    """A store location on each backend: an SQLite file path, or a PostgreSQL URL."""
    if request.param == "sqlite":
        return str(tmp_path / "results.db")
    return request.getfixturevalue("pg_url")
