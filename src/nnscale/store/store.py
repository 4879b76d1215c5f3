"""The results store: runs and their measured points, on SQLite or PostgreSQL (SQLAlchemy Core).

Durability and concurrency:
- Every `add_measurement` is its own transaction, committed before it returns: a run killed at
  any moment (SIGKILL included) loses at most the point being written, never a finished one.
- SQLite runs in WAL mode (https://www.sqlite.org/wal.html) so readers never block the writer,
  with a busy timeout (PRAGMA busy_timeout, https://www.sqlite.org/pragma.html#pragma_busy_timeout)
  so concurrent writers queue instead of failing, and foreign keys on (they are off by default,
  https://www.sqlite.org/foreignkeys.html §2). Write transactions start with BEGIN IMMEDIATE,
  taking the write lock up front: a deferred transaction that later upgrades to a writer fails with
  SQLITE_BUSY at once, without waiting (https://www.sqlite.org/lang_transaction.html). This needs
  pysqlite's own transaction handling switched off, as in SQLAlchemy's documented recipe
  (https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl).
- PostgreSQL serializes concurrent schema creation with a transaction-level advisory lock
  (https://www.postgresql.org/docs/current/explicit-locking.html#ADVISORY-LOCKS).
- One `Store` per process: open it after fork/spawn, never share one across processes.
- Transient failures (SQLite's lock held past the busy timeout, a full disk, a PostgreSQL server
  restarted or a connection dropped: SQLAlchemy's OperationalError, or any DBAPI error that
  invalidated the connection, https://docs.sqlalchemy.org/en/20/core/exceptions.html) are retried
  by `retry.retried`, the one place every store operation goes through: each try is a whole transaction
  again, with exponential backoff (0.5 s doubling up to 8 s) for up to NNSCALE_STORE_RETRY_S
  seconds (default 120). Then `StoreUnavailable`: one line, exit code 2; every point committed
  before is kept (each is its own transaction). NNSCALE_STORE_BUSY_TIMEOUT_S (default 30) is
  SQLite's busy timeout per try.

Resume: `finished_keys` returns the workload keys of points whose status is in FINISHED_STATUSES
(ok, unstable, oom). Points that ended in error or timeout are measured again on resume (the cause
is often the interruption itself), and a point stored again replaces the earlier row of the same
run and workload key. `process_results` returns the processes stored (`add_process`) of points not
yet finished, which a study measuring in interleaved rounds continues from.
"""

from __future__ import annotations

import json
import math
import statistics
import zlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime

import sqlalchemy as sa

from nnscale.errors import UserError
from nnscale.records import STATUSES, Measurement, Workload
from nnscale.store import schema
from nnscale.store.retry import busy_timeout_s, first_line, retried
from nnscale.store.names import check_run_name as _check_run_name
from nnscale.store.url import (ACCEPTED, StoreURL, check_sqlite_path, redact_command_line,
                               resolve_url)

FINISHED_STATUSES = ("ok", "unstable", "oom")
PG_CONNECT_TIMEOUT_S = 10
_WRITE = "nnscale_write"  # execution option: begin with BEGIN IMMEDIATE on SQLite
_SCHEMA_LOCK = zlib.crc32(b"nnscale.schema")  # PostgreSQL advisory lock id


@dataclass(frozen=True, slots=True)
class RunInfo:
    """One run, as listed by `Store.runs()`."""

    id: int
    name: str
    created_utc: str  # ISO 8601
    command_line: str
    environment: dict
    notes: str
    n_measurements: int
    created: bool = False  # True only from the `Store.open_run` call that created it


def _now_utc() -> str:
    return datetime.now(UTC).isoformat()


def _json_exact(o):
    """JSON for measurement records: numpy scalars/arrays become Python numbers; nothing else."""
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"{type(o).__name__} is not JSON serializable; stats values must be JSON types")


def _finite_or_none(v) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _sqlite_on_connect(dbapi_conn, _record) -> None:
    dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" hook below issues BEGIN itself
    cur = dbapi_conn.cursor()
    cur.execute(f"PRAGMA busy_timeout = {int(busy_timeout_s() * 1000)}")
    cur.execute("PRAGMA foreign_keys = ON")
    cur.close()


def _sqlite_on_begin(conn: sa.Connection) -> None:
    write = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _make_engine(target: StoreURL) -> sa.Engine:
    if target.backend == "sqlite":
        engine = sa.create_engine(target.url, connect_args={"timeout": busy_timeout_s()})
        sa.event.listen(engine, "connect", _sqlite_on_connect)
        sa.event.listen(engine, "begin", _sqlite_on_begin)
        return engine
    connect_args = {}
    if "connect_timeout" not in target.url.query:
        connect_args["connect_timeout"] = PG_CONNECT_TIMEOUT_S
    return sa.create_engine(target.url, connect_args=connect_args, pool_pre_ping=True)


def open_store(url: str | None = None, *, create: bool = True, fill_empty: bool = False) -> Store:
    """Open (and with `create`, create if needed) the results store at `url` (see `store.url`).

    `fill_empty` (with `create=False`): the store must exist, but an empty one gets the schema, as
    a command killed before its first commit leaves it (resuming that run starts it).

    Every problem a user can cause — bad URL, unreachable server, unwritable path, a file that is
    not a database, a database that is not nnscale's or is newer — is a one-line UserError, raised
    before anything is written.
    """
    target = resolve_url(url)
    check_sqlite_path(target, create)
    where = f"results store {target.display}"
    try:
        engine = _make_engine(target)
    except (ImportError, sa.exc.ArgumentError) as e:
        raise UserError(f"cannot open {where}: {first_line(e)}; {ACCEPTED}") from None
    try:
        with engine.connect() as conn:
            state = schema.inspect_schema(conn, where)
        if state == "empty" and not (create or fill_empty):
            raise UserError(f"{where} holds no nnscale results; give an existing results store")
        if target.backend == "sqlite" and target.sqlite_path is not None:
            # Only now, with the file known to be empty or nnscale's: WAL is persistent in the file.
            with engine.connect() as conn:
                conn.connection.driver_connection.execute("PRAGMA journal_mode = WAL")
        if state != "current":
            with engine.execution_options(**{_WRITE: True}).begin() as conn:
                if target.backend == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_SCHEMA_LOCK)))
                schema.create_schema(conn, where)
    except UserError:
        engine.dispose()
        raise
    except (sa.exc.DBAPIError, OSError) as e:
        engine.dispose()
        hint = "; is the directory writable?" if "unable to open" in first_line(e) else ""
        raise UserError(f"cannot open {where}: {first_line(e)}{hint}; {ACCEPTED}") from None
    return Store(engine, target)


class Store:
    """Runs and measurements. Make one with `open_store`; close it (or use `with`) when done."""

    def __init__(self, engine: sa.Engine, target: StoreURL):
        self._engine = engine
        self._writer = engine.execution_options(**{_WRITE: True})
        self._target = target

    @property
    def url(self) -> str:
        """Where the store lives, password hidden."""
        return self._target.display

    @property
    def backend(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._target.backend

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def _insert(self, table: sa.Table):
        if self.backend == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        return insert(table)

    def _upsert(self, table: sa.Table, keys: dict, values: dict):
        """INSERT of `keys` and `values`, replacing `values` where a row of the same `keys` is."""
        stmt = self._insert(table).values(**keys, **values)
        return stmt.on_conflict_do_update(index_elements=list(keys),
                                          set_={k: stmt.excluded[k] for k in values})

    # --- runs ---------------------------------------------------------------------------------

    def open_run(
        self,
        name: str | None = None,
        command_line: str = "",
        environment: dict | Callable[[], dict] | None = None,
        notes: str = "",
        *,
        resume: bool = False,
    ) -> RunInfo:
        """Create a run, or with `resume` take up the existing run `name`, and return it.

        The one way every command opens its run (sweep, tune, run, scale, allreduce), so none has to
        find its run's name again by listing the runs. Without a name: `run-YYYYMMDD-HHMMSS` (UTC),
        with `-2`, `-3`, ... appended if taken. An existing name is a UserError unless `resume`; a
        resumed run keeps the command line, environment and notes of its creation. `environment`
        may be a function: it is called only when a run is created (a study measures the device for
        its environment, which a resumed run already holds). `RunInfo.created` says which it was.
        """
        if resume and name is not None:
            info = self._find_run(_check_run_name(name))
            if info is not None:
                return info
        if callable(environment):
            environment = environment()
        return self._create_run(name, command_line, environment, notes, exist_ok=resume)

    def create_run(self, name: str | None = None, command_line: str = "",
                   environment: dict | None = None, notes: str = "", *,
                   exist_ok: bool = False) -> int:
        """The id of the run `open_run` creates (or, `exist_ok`, finds)."""
        return self.open_run(name, command_line, environment, notes, resume=exist_ok).id

    def get_or_create_run(
        self, name: str, command_line: str = "", environment: dict | None = None, notes: str = ""
    ) -> int:
        """The id of run `name`, created if missing (for resuming an interrupted run)."""
        return self.create_run(name, command_line, environment, notes, exist_ok=True)

    @retried("reading a run")
    def _find_run(self, name: str) -> RunInfo | None:
        with self._engine.connect() as conn:
            return self._run_row(conn, name)

    @retried("creating a run")
    def _create_run(self, name: str | None, command_line: str, environment: dict | None,
                    notes: str, *, exist_ok: bool) -> RunInfo:
        if name is not None:
            candidates = [_check_run_name(name)]
        else:
            base = "run-" + datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
            candidates = [base] + [f"{base}-{i}" for i in range(2, 1000)]
        values = {
            "created_utc": _now_utc(),
            "command_line": redact_command_line(command_line),  # no caller stores a password
            "environment": json.dumps(environment or {}, sort_keys=True, default=str),
            "notes": notes,
        }
        with self._writer.begin() as conn:
            for candidate in candidates:
                stmt = (
                    self._insert(schema.runs)
                    .values(name=candidate, **values)
                    .on_conflict_do_nothing(index_elements=["name"])
                    .returning(schema.runs.c.id)
                )
                run_id = conn.execute(stmt).scalar()  # None when the name is taken
                if run_id is not None:
                    return replace(self._run_row(conn, candidate), created=True)
                if name is None:
                    continue
                info = self._run_row(conn, candidate)
                if not exist_ok:
                    raise UserError(
                        f"run {candidate!r} already exists in {self.url} (created "
                        f"{info.created_utc}); choose another name, or resume it"
                    )
                return info
        raise UserError(f"too many runs named {candidates[0]}-N this second; give a name")

    def _run_rows(self, conn: sa.Connection, where=None) -> list[RunInfo]:
        r, m = schema.runs, schema.measurements
        count = sa.select(sa.func.count(m.c.id)).where(m.c.run_id == r.c.id).scalar_subquery()
        stmt = sa.select(r, count.label("n")).order_by(r.c.id)
        if where is not None:
            stmt = stmt.where(where)
        return [
            RunInfo(
                id=row.id,
                name=row.name,
                created_utc=row.created_utc,
                command_line=row.command_line,
                environment=json.loads(row.environment),
                notes=row.notes,
                n_measurements=row.n,
            )
            for row in conn.execute(stmt)
        ]

    def _run_row(self, conn: sa.Connection, name: str) -> RunInfo | None:
        rows = self._run_rows(conn, schema.runs.c.name == name)
        return rows[0] if rows else None

    @retried("reading the runs")
    def runs(self) -> list[RunInfo]:
        """All runs, oldest first."""
        with self._engine.connect() as conn:
            return self._run_rows(conn)

    def latest_run(self) -> RunInfo | None:
        """The most recently created run, or None in an empty store."""
        rows = self.runs()
        return rows[-1] if rows else None

    @retried("reading a run")
    def run(self, name: str) -> RunInfo:
        """The run called `name`; UserError listing the known runs if there is none."""
        with self._engine.connect() as conn:
            info = self._run_row(conn, name)
            if info is not None:
                return info
            names = list(
                conn.execute(sa.select(schema.runs.c.name).order_by(schema.runs.c.id)).scalars()
            )
        if not names:
            raise UserError(f"no run named {name!r}: {self.url} holds no runs yet")
        shown = names[-10:]
        more = f"{len(names) - len(shown)} older and " if len(names) > len(shown) else ""
        raise UserError(
            f"no run named {name!r} in {self.url}; "
            f"known runs ({more}newest last): {', '.join(shown)}"
        )

    # --- measurements -------------------------------------------------------------------------

    @retried("storing a point")
    def add_measurement(self, run_id: int, measurement: Measurement) -> None:
        """Store one point in its own committed transaction (replacing an earlier row of the same
        run and workload key)."""
        m = measurement
        if m.status not in STATUSES:
            raise ValueError(f"status {m.status!r} is not one of {STATUSES}")
        w = m.workload
        stats = m.stats.to_dict()
        step = m.stats.timing.median_ms
        if step is None and m.samples_ms:
            step = statistics.median(m.samples_ms)
        values = {
            "model": w.model,
            "mode": w.mode,
            "batch_size": w.batch_size,
            "device": w.device,
            "precision": w.precision,
            "framework": w.framework,
            "world_size": w.world_size,
            "status": m.status,
            "samples_per_s": _finite_or_none(m.stats.throughput.samples_per_s),
            "step_time_ms": _finite_or_none(step),
            "created_utc": _now_utc(),
            "workload": json.dumps(asdict(w), default=_json_exact),
            "stats": json.dumps(stats, default=_json_exact),
            "samples_ms": json.dumps(list(m.samples_ms), default=_json_exact),
            "error": m.error,
        }
        schema.check_lengths(schema.measurements, values, f"point {w.model} batch {w.batch_size}")
        stmt = self._upsert(schema.measurements, {"run_id": run_id, "workload_key": w.key()}, values)
        p = schema.process_results
        with self._writer.begin() as conn:
            conn.execute(stmt)
            # The point supersedes its processes' rows (schema.py): one transaction, so a point is
            # either finished or resumable from its processes, never both nor neither.
            conn.execute(p.delete().where(p.c.run_id == run_id, p.c.workload_key == w.key()))

    @retried("storing a process")
    def add_process(self, run_id: int, index: int, measurement: Measurement,
                    steal_share: float | None = None) -> None:
        """Store one worker process of a point that is not finished yet (its index in the point),
        in its own committed transaction; the point's `add_measurement` deletes these rows."""
        values = {"created_utc": _now_utc(), "steal_share": _finite_or_none(steal_share),
                  "measurement": json.dumps(measurement.to_dict(), default=_json_exact)}
        keys = {"run_id": run_id, "workload_key": measurement.workload.key(), "process_index": index}
        stmt = self._upsert(schema.process_results, keys, values)
        with self._writer.begin() as conn:
            conn.execute(stmt)

    @retried("reading stored processes")
    def process_results(self, run_id: int) -> dict[str, list[tuple[Measurement, float | None]]]:
        """The run's stored processes of unfinished points, by workload key, in process order
        (each with its steal share): what a resumed study continues from."""
        p = schema.process_results
        stmt = (sa.select(p.c.measurement, p.c.steal_share)
                .where(p.c.run_id == run_id).order_by(p.c.workload_key, p.c.process_index))
        out: dict[str, list[tuple[Measurement, float | None]]] = {}
        with self._engine.connect() as conn:
            for text, steal in conn.execute(stmt):
                m = Measurement.from_dict(json.loads(text))
                # Keyed by the key the workload has now (as `finished_keys`): an upgraded record's
                # stored key may be the old form's.
                out.setdefault(m.workload.key(), []).append((m, steal))
        return out

    @retried("reading finished points")
    def finished_keys(self, run_id: int, statuses: tuple[str, ...] = FINISHED_STATUSES) -> set[str]:
        """Workload keys of the run's points with a status in `statuses` (skip these on resume).
        Each key is the one its workload has now (`Workload.from_dict` upgrades a row of an older
        form, whose stored key was computed from that form), so a resumed old run finds its points."""
        m = schema.measurements
        stmt = sa.select(m.c.workload, m.c.stats).where(m.c.run_id == run_id,
                                                       m.c.status.in_(statuses))
        with self._engine.connect() as conn:
            return {Workload.from_dict(json.loads(w), json.loads(s)).key()
                    for w, s in conn.execute(stmt)}

    @retried("reading points")
    def measurements(self, run_name: str) -> list[Measurement]:
        """The run's points in the order they were stored; UserError if there is no such run."""
        run_id = self.run(run_name).id
        m = schema.measurements
        stmt = (
            sa.select(m.c.workload, m.c.status, m.c.samples_ms, m.c.stats, m.c.error)
            .where(m.c.run_id == run_id)
            .order_by(m.c.id)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(stmt).all()
        return [
            Measurement.from_dict(
                {
                    "workload": json.loads(row.workload),
                    "status": row.status,
                    "samples_ms": json.loads(row.samples_ms),
                    "stats": json.loads(row.stats),
                    "error": row.error,
                }
            )
            for row in rows
        ]
