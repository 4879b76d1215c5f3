"""The results schema (version 4), the read-only check that a database is nnscale's, and the
migration of older versions.

Tables:
- `meta`: key/value; `application` = "nnscale", `schema_version` = SCHEMA_VERSION.
- `runs`: one row per `nnscale run` invocation (name unique, environment as JSON text).
- `measurements`: one row per measured point, unique per (run, workload key). The columns a
  report filters or sorts on (model, mode, batch size, device, ...) are copied out of the
  workload; the full records are kept as JSON text (`workload`, `stats`, `samples_ms`) so
  `Measurement.from_dict` rebuilds them exactly. JSON is stored as TEXT rather than a JSON
  column type: the same on SQLite and PostgreSQL, and Python's float repr round-trips exactly
  (also NaN/Infinity, which PostgreSQL's json type would refuse).
- `process_results`: one row per worker process of a point that is not finished yet, unique per
  (run, workload key, process index). A study measures its points' processes in interleaved rounds
  (measure/rounds.py), so a point's first processes are finished minutes before its last one: each
  is committed as it ends, and a stopped study resumes from them. Storing the point itself deletes
  its process rows in the same transaction (the point's `samples_ms` and `processes` block hold
  them from then on).

Timestamps are ISO 8601 UTC strings (`datetime.isoformat`), sortable as text on both backends.
A database holding other tables and no `meta` table, or a newer schema version, is refused with a
`UserError` before anything is written.

Versions. 1: `measurements.framework` was VARCHAR(32), but DDP tags such as
`torch-ddp[grad_as_bucket_view=True,static_graph=True]` are longer: PostgreSQL refused the row after
the point was measured (SQLite ignores declared lengths, https://www.sqlite.org/datatype3.html §3.1).
2: `framework`, `model` (an imported net is named by its file path, which may exceed 200
characters) and `device` are TEXT. `migrate` takes a version-1 store to version 2 in the opener's write
transaction (PostgreSQL: ALTER COLUMN … TYPE TEXT; SQLite: only the version, its column already
has TEXT affinity). `check_lengths` refuses a value longer than its column before the insert.
3: `measurements.stats` holds the typed, versioned statistics record (records_stats.py,
`Stats.to_dict`) instead of the free-form dict with several names per value; `migrate` rewrites
every older row through `Stats.from_dict` in the same write transaction, so a migration that fails
on any row (a statistic this release does not know) leaves the store as it was.
4: the `process_results` table (created by `create_schema` after the version is raised).
"""

from __future__ import annotations

import json

import sqlalchemy as sa

from nnscale.errors import UserError
from nnscale.records_stats import Stats

APPLICATION = "nnscale"
SCHEMA_VERSION = 4
OLDEST_MIGRATED = 1  # versions from this one up are migrated on open

metadata = sa.MetaData()

meta = sa.Table(
    "meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("created_utc", sa.String(40), nullable=False),
    sa.Column("command_line", sa.Text, nullable=False),
    sa.Column("environment", sa.Text, nullable=False),  # JSON object
    sa.Column("notes", sa.Text, nullable=False),
    sa.UniqueConstraint("name", name="uq_runs_name"),
)



def _rows_of_a_run(fk_name: str) -> tuple[sa.Column, ...]:
    """The columns every table of a run's rows starts with: its id, the run (deleted with it) and
    the point's workload key."""
    return (sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("run_id", sa.Integer,
                      sa.ForeignKey("runs.id", ondelete="CASCADE", name=fk_name), nullable=False),
            sa.Column("workload_key", sa.String(32), nullable=False))


measurements = sa.Table(
    "measurements",
    metadata,
    *_rows_of_a_run("fk_measurements_run"),
    sa.Column("model", sa.Text, nullable=False),  # version 1: VARCHAR(200); a .prototxt path can be longer
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("batch_size", sa.Integer, nullable=False),
    sa.Column("device", sa.Text, nullable=False),  # version 1: VARCHAR(64)
    sa.Column("precision", sa.String(16), nullable=False),
    sa.Column("framework", sa.Text, nullable=False),  # version 1: VARCHAR(32), too short
    sa.Column("world_size", sa.Integer, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("samples_per_s", sa.Float, nullable=True),  # median; NULL when not measured
    sa.Column("step_time_ms", sa.Float, nullable=True),  # median
    sa.Column("created_utc", sa.String(40), nullable=False),
    sa.Column("workload", sa.Text, nullable=False),  # JSON: asdict(Workload)
    sa.Column("stats", sa.Text, nullable=False),  # JSON object
    sa.Column("samples_ms", sa.Text, nullable=False),  # JSON array
    sa.Column("error", sa.Text, nullable=False),
    sa.UniqueConstraint("run_id", "workload_key", name="uq_measurements_run_key"),
)

process_results = sa.Table(
    "process_results",
    metadata,
    *_rows_of_a_run("fk_process_results_run"),
    sa.Column("process_index", sa.Integer, nullable=False),  # 0, 1, ... in the point's order
    sa.Column("created_utc", sa.String(40), nullable=False),
    sa.Column("measurement", sa.Text, nullable=False),  # JSON: Measurement.to_dict() of one process
    sa.Column("steal_share", sa.Float, nullable=True),  # the hypervisor's share around it (/proc/stat)
    sa.UniqueConstraint("run_id", "workload_key", "process_index", name="uq_process_results"),
)

TABLES = ("meta", "runs", "measurements", "process_results")


def _listing(names: set[str], limit: int = 5) -> str:
    shown = sorted(names)[:limit]
    more = len(names) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def inspect_schema(conn: sa.Connection, where: str) -> str:
    """Read-only: "empty", "current", "incomplete" (meta present, a table missing) or "outdated"
    (an older version that `migrate` upgrades).

    UserError for a database that is not nnscale's or is newer.

    `where` names the store in messages.
    """
    names = set(sa.inspect(conn).get_table_names())
    if not names:
        return "empty"
    if "meta" not in names:
        raise UserError(
            f"{where} holds other tables ({_listing(names)}) and no nnscale results; "
            "give a new file or an empty database (nothing was changed)"
        )
    try:
        rows = dict(conn.execute(sa.select(meta.c.key, meta.c.value)).all())
    except sa.exc.DBAPIError:
        rows = {}
    version_text = rows.get("schema_version", "")
    if rows.get("application") != APPLICATION or not version_text.isdigit():
        raise UserError(
            f"{where} has a table 'meta' that is not nnscale's; "
            "give a new file or an empty database (nothing was changed)"
        )
    version = int(version_text)
    if version > SCHEMA_VERSION:
        raise UserError(
            f"{where} was written by a newer nnscale (schema version {version}; this nnscale "
            f"reads version {SCHEMA_VERSION}); upgrade nnscale or give another store"
        )
    if OLDEST_MIGRATED <= version < SCHEMA_VERSION:
        return "outdated"
    if version < SCHEMA_VERSION:
        raise UserError(
            f"{where} has unknown schema version {version} (this nnscale reads version "
            f"{SCHEMA_VERSION}); give a new file or an empty database"
        )
    return "current" if names.issuperset(TABLES) else "incomplete"


def migrate(conn: sa.Connection, where: str) -> None:
    """Upgrade an older store to SCHEMA_VERSION inside the caller's write transaction (which must
    serialize writers, as for `create_schema`). Re-checks first: a racing opener may have done it."""
    rows = dict(conn.execute(sa.select(meta.c.key, meta.c.value)).all())
    version = int(rows.get("schema_version", str(SCHEMA_VERSION)))
    if version >= SCHEMA_VERSION:
        return
    if version == 1 and conn.dialect.name == "postgresql":
        conn.exec_driver_sql("ALTER TABLE measurements ALTER COLUMN framework TYPE TEXT, "
                             "ALTER COLUMN model TYPE TEXT, ALTER COLUMN device TYPE TEXT")
    if version <= 2:
        _typed_stats(conn, where)
    conn.execute(meta.update().where(meta.c.key == "schema_version")
                 .values(value=str(SCHEMA_VERSION)))


def _typed_stats(conn: sa.Connection, where: str) -> None:
    """Version 3: every row's statistics rewritten in the typed form (module docstring)."""
    m = measurements
    for row in conn.execute(sa.select(m.c.id, m.c.stats)).all():
        old = json.loads(row.stats)
        try:
            new = Stats.from_dict(old).to_dict()
        except (TypeError, ValueError) as exc:
            raise UserError(f"{where}: stored point {row.id} cannot be read into this nnscale's "
                            f"statistics ({exc}); nothing was changed") from None
        conn.execute(m.update().where(m.c.id == row.id).values(stats=json.dumps(new)))


def check_lengths(table: sa.Table, values: dict, what: str) -> None:
    """UserError naming the column if a text value is longer than its declared length (PostgreSQL
    would refuse the row; SQLite would store it, so the check makes both behave the same). The
    columns a user names (model, device, framework) are TEXT; what is left bounded are keys and
    enumerations (workload key, mode, precision, status) that the records validate first."""
    for column in table.columns:
        length = getattr(column.type, "length", None)
        value = values.get(column.name)
        if length and isinstance(value, str) and len(value) > length:
            raise UserError(f"{what}: {column.name} {value[:40]!r}… is {len(value)} characters; "
                             f"the store holds at most {length}")


def create_schema(conn: sa.Connection, where: str) -> None:
    """Create what is missing, inside the caller's write transaction.

    The transaction must serialize writers (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory lock).
    Re-checks first, so racing openers agree on one schema.
    """
    state = inspect_schema(conn, where)
    if state == "current":
        return
    if state == "outdated":
        migrate(conn, where)  # then on: a table missing from the old store is created too
    metadata.create_all(conn, checkfirst=True)
    present = set(conn.execute(sa.select(meta.c.key)).scalars())
    wanted = {"application": APPLICATION, "schema_version": str(SCHEMA_VERSION)}
    rows = [{"key": k, "value": v} for k, v in wanted.items() if k not in present]
    if rows:
        conn.execute(meta.insert(), rows)
