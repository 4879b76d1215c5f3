"""The results store: runs and measured points in SQLite or PostgreSQL (SQLAlchemy Core, no torch).

`open_store(url)` checks the location and the schema and returns a `Store`; `capture_environment()`
describes the machine a run ran on.
"""

from nnscale.environment import capture_environment
from nnscale.store.schema import SCHEMA_VERSION
from nnscale.store.store import FINISHED_STATUSES, RunInfo, Store, open_store
from nnscale.store.url import DEFAULT_URL, StoreURL, resolve_url

__all__ = [
    "DEFAULT_URL",
    "FINISHED_STATUSES",
    "SCHEMA_VERSION",
    "RunInfo",
    "Store",
    "StoreURL",
    "capture_environment",
    "open_store",
    "resolve_url",
]
