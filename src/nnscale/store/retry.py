"""Transient store errors, tried again: the one place every `Store` operation goes through.

What is transient (worth a second try, each a whole transaction again):
- SQLite: only the result codes of a busy, locked, full or failing disk — SQLITE_BUSY (5),
  SQLITE_LOCKED (6), SQLITE_IOERR (10, and its extended codes), SQLITE_FULL (13), SQLITE_PROTOCOL
  (15) (https://www.sqlite.org/rescode.html). pysqlite raises OperationalError also for a wrong
  statement or a missing table: those are bugs and keep their traceback.
- PostgreSQL (and any other server): OperationalError (connection refused or lost, server
  restarting, https://www.psycopg.org/psycopg3/docs/api/errors.html), or any DBAPI error that
  invalidated the connection (https://docs.sqlalchemy.org/en/20/core/exceptions.html).
Backoff: 0.5 s doubling up to 8 s, for up to NNSCALE_STORE_RETRY_S seconds (default 120); then
`StoreUnavailable` (one line, exit code 2). NNSCALE_STORE_BUSY_TIMEOUT_S (default 30) is SQLite's
busy timeout per try.
"""

from __future__ import annotations

import functools
import os
import time

import sqlalchemy as sa

from nnscale.errors import StoreUnavailable, UserError

BUSY_TIMEOUT_S = 30  # default of NNSCALE_STORE_BUSY_TIMEOUT_S
RETRY_S = 120.0  # default of NNSCALE_STORE_RETRY_S: how long transient errors are retried
RETRY_FIRST_S, RETRY_MAX_DELAY_S = 0.5, 8.0
# Primary SQLite result codes of a busy/locked/full/failing database (rescode.html).
SQLITE_TRANSIENT_CODES = frozenset({5, 6, 10, 13, 15})


def first_line(e: BaseException) -> str:
    """The driver's own message, first line only: what a one-line error shows."""
    orig = getattr(e, "orig", None) or e
    text = str(orig).strip() or type(orig).__name__
    return text.splitlines()[0].strip()


def _seconds_env(name: str, default: float) -> float:
    text = os.environ.get(name, "")
    try:
        value = float(text) if text else default
    except ValueError:
        value = -1.0
    if not 0 <= value < 10**6:
        raise UserError(f"{name}={text!r}: give seconds, a number from 0 to 999999")
    return value


def busy_timeout_s() -> float:
    return _seconds_env("NNSCALE_STORE_BUSY_TIMEOUT_S", BUSY_TIMEOUT_S)


def transient(e: sa.exc.DBAPIError) -> bool:
    """Worth trying again: the database was busy, full or unreachable, not a wrong statement."""
    if e.connection_invalidated:
        return True
    code = getattr(e.orig, "sqlite_errorcode", None)
    if code is not None:  # SQLite: by result code only (module docstring)
        return code & 0xFF in SQLITE_TRANSIENT_CODES
    return isinstance(e, sa.exc.OperationalError)


def retried(what: str):
    """Run a Store method again on transient errors (module docstring); then StoreUnavailable."""

    def wrap(method):
        @functools.wraps(method)
        def retrying(self, *args, **kwargs):
            window = _seconds_env("NNSCALE_STORE_RETRY_S", RETRY_S)
            deadline, delay = time.monotonic() + window, RETRY_FIRST_S
            while True:
                try:
                    return method(self, *args, **kwargs)
                except sa.exc.DBAPIError as e:
                    if not transient(e):
                        raise
                    if time.monotonic() + delay > deadline:
                        raise StoreUnavailable(
                            f"{what} in {self.url} failed: {first_line(e)} (retried for "
                            f"{window:g} s, NNSCALE_STORE_RETRY_S); the points stored before are "
                            "kept, resume the run once the store is back") from None
                    time.sleep(delay)
                    delay = min(2 * delay, RETRY_MAX_DELAY_S)

        return retrying

    return wrap
