"""Where the results store lives: a file path or a database URL, checked before anything is opened.

Accepted (anything else is a `UserError` naming what is wrong and what is accepted):
- nothing: `sqlite:///nnscale.db` in the current directory;
- a file path (`results.db`, `~/bench/results.db`): an SQLite file;
- `sqlite:///PATH` (relative to the current directory), `sqlite:////ABSOLUTE/PATH`, or
  `sqlite://` / `sqlite:///:memory:` for a throwaway in-memory store;
- `postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE` (also `postgres://`), which uses the psycopg
  (version 3) driver; `postgresql+DRIVER://` picks another installed SQLAlchemy driver;
  `postgresql:///?service=NAME` takes everything from a libpq service file.

Passwords (docs/distributed.md, "Passwords"): a URL without one lets libpq find it the usual ways,
PGPASSWORD, the password file (~/.pgpass or PGPASSFILE) or a service file (PGSERVICEFILE)
(https://www.postgresql.org/docs/current/libpq-envars.html, libpq-pgpass.html, libpq-pgservice.html).
A password that is in the URL never leaves this process in text: `redact_url` / `redact_command`
hide it in everything stored or printed, `without_password` takes it out of URLs handed on.

URL syntax is SQLAlchemy's (RFC 1738 style): https://docs.sqlalchemy.org/en/20/core/engines.html#database-urls
The checks on an SQLite path only read: a file that exists must start with the 16-byte SQLite
header ("SQLite format 3\\0", https://www.sqlite.org/fileformat.html §1.3), so a file that is not a
database is refused before SQLite can touch it.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from nnscale.errors import UserError

DEFAULT_URL = "sqlite:///nnscale.db"
ACCEPTED = (
    "accepted: a file path (results.db), sqlite:///PATH, "
    "or postgresql://USER@HOST[:PORT]/DATABASE (password from ~/.pgpass or PGPASSWORD)"
)
SQLITE_HEADER = b"SQLite format 3\x00"  # https://www.sqlite.org/fileformat.html §1.3
_SCHEME_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]+:")
_BACKEND_ALIASES = {"postgres": "postgresql", "postgresql": "postgresql", "sqlite": "sqlite"}
_DEFAULT_DRIVER = {"postgresql": "psycopg", "sqlite": "pysqlite"}
_URL_START = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*://")
_SCHEME_SEARCH = re.compile(r"(?<![A-Za-z0-9+.\-])(postgres(?:ql)?|sqlite)[A-Za-z0-9+.\-]*:", re.I)
# libpq connection parameters that carry a secret (libpq-connect.html#LIBPQ-PARAMKEYWORDS)
SECRET_PARAMS = frozenset({"password", "sslpassword"})
HIDDEN = "***"


@dataclass(frozen=True, slots=True)
class StoreURL:
    """A checked store location."""

    url: sa.URL  # with the driver made explicit and an SQLite path made absolute
    backend: str  # "sqlite" or "postgresql"
    sqlite_path: Path | None  # None for PostgreSQL and in-memory SQLite

    @property
    def display(self) -> str:
        """Where the store is, for messages: the file path, or the URL with its password hidden."""
        if self.sqlite_path is not None:
            return str(self.sqlite_path)
        return redact_url(self.url.render_as_string(hide_password=False))


def resolve_url(url: str | os.PathLike | None = None) -> StoreURL:
    """Turn what the user gave (None, a path or a URL) into a `StoreURL`; UserError if malformed."""
    if url is None or str(url).strip() == "":
        text = DEFAULT_URL
    else:
        text = os.fspath(url).strip()
    if "://" not in text:
        if _SCHEME_LIKE.match(text) and not Path(text).exists():
            raise UserError(f"malformed store URL {redact_url(text)!r}: expected SCHEME://...; {ACCEPTED}")
        return _sqlite_file(Path(text))
    try:
        parsed = sa.make_url(text)
        _ = parsed.port  # parsing a bad port raises on some versions only when read
    except (sa.exc.ArgumentError, ValueError) as e:
        raise UserError(f"malformed store URL {redact_url(text)!r} ({redact_url(str(e))}); "
                        f"{ACCEPTED}") from None
    backend_name, _, driver = parsed.drivername.partition("+")
    backend = _BACKEND_ALIASES.get(backend_name.lower())
    if backend is None:
        raise UserError(
            f"unsupported store URL scheme {backend_name!r} in {redact_url(text)!r}; {ACCEPTED}"
        )
    parsed = parsed.set(drivername=f"{backend}+{driver or _DEFAULT_DRIVER[backend]}")
    if backend == "postgresql":
        if parsed.host and "@" in parsed.host:
            # SQLAlchemy splits USER:PASSWORD@HOST at the first "@", libpq too; a raw "@" in a
            # password would leave its tail in the host name (and in every message naming it).
            raise UserError(
                f"store URL {redact_url(text)!r}: more than one '@' before the host; write an '@' "
                "in a password as %40 (or leave the password out and set PGPASSWORD / ~/.pgpass)"
            )
        if not parsed.database and "service" not in parsed.query:
            raise UserError(
                f"store URL {redact_url(text)!r} names no database (…/DATABASE at the end); {ACCEPTED}"
            )
        return StoreURL(url=parsed, backend=backend, sqlite_path=None)
    if parsed.database in (None, "", ":memory:"):
        return StoreURL(url=parsed.set(database=":memory:"), backend=backend, sqlite_path=None)
    return _sqlite_file(Path(parsed.database), driver=parsed.drivername, query=parsed.query)


def _sqlite_file(path: Path, driver: str = "sqlite+pysqlite", query=None) -> StoreURL:
    path = Path(os.path.abspath(path.expanduser()))
    url = sa.URL.create(driver, database=str(path), query=query or {})
    return StoreURL(url=url, backend="sqlite", sqlite_path=path)


def redact_url(text: str) -> str:
    """The URL `text` with every secret replaced by ***.

    1. ?password= / &sslpassword= values are hidden wherever they stand (a value may hold "@").
    2. The password between USER: and the "@" that ends the user part: the last "@" before the
       query, or the last "@" of all when there is none before it (a password holding "/", "?" or
       "@" is hidden whole, as WHATWG URL parsing takes the user part).
    3. Text that is not a clean SCHEME://… but holds an "@" (a mistyped postgresql:/u:pw@h) is
       hidden from its first ":" to its last "@".
    4. The check: every secret that SQLAlchemy or urllib reads from the input must be absent from
       the result; if one is still there, everything after the scheme is hidden.
    Text without "@" or a secret query key is returned as it is."""
    out = _SECRET_QUERY.sub(lambda m: m.group(1) + HIDDEN if _is_secret(m.group(2)) else m.group(0),
                            text)
    m = _URL_START.match(out)
    if m is not None:
        scheme, rest = m.group(), out[m.end():]
        query_at = rest.find("?")
        at = rest.rfind("@", 0, query_at) if query_at >= 0 else -1
        at = at if at >= 0 else rest.rfind("@")
        if at >= 0:
            userinfo, tail = rest[:at], rest[at + 1:]
            user = re.match(r"[^:/?#]*", userinfo).group()
            out = scheme + user + (f":{HIDDEN}" if userinfo != user else "") + "@" + tail
    elif "@" in out and ":" in out.partition("@")[0]:
        colon, at = out.index(":"), out.rindex("@")
        out = out[:colon + 1] + HIDDEN + out[at:]
    scheme = m.group() if m is not None else ""
    return f"{scheme}{HIDDEN}" if any(s in out for s in _secrets_in(text)) else out


# KEY=VALUE in a URL's query: the value runs to the next "&", "#" or the end (it may hold "@").
_SECRET_QUERY = re.compile(r"([?&;]([^=&#?;]+)=)[^&#]*")


def _secrets_in(text: str) -> set[str]:
    """The secrets a parser reads from `text` (raw and percent-encoded): what must not survive."""
    from urllib.parse import parse_qsl, quote, urlsplit

    found: set[str] = set()
    users: set[str] = set()
    try:
        parsed = sa.make_url(text)
        found.add(parsed.password or "")
        users.add(parsed.username or "")
        for key, value in parsed.query.items():
            if _is_secret(key):
                found.update(value if isinstance(value, tuple) else (value,))
    except Exception:  # noqa: BLE001 - text SQLAlchemy cannot parse: urllib's reading below
        pass
    try:
        split = urlsplit(text)
        found.add(split.password or "")
        users.add(split.username or "")
        found.update(v for k, v in parse_qsl(split.query) if _is_secret(k))
    except ValueError:
        pass
    # A piece under 4 characters (a misparse of "u:p@ss@host" reads "p") would match ordinary
    # text and hide a whole URL for nothing; short secrets are covered by steps 1-3.
    # A user name is shown by design, even when the password equals it.
    found = {s for s in found if len(s) >= 4 and s != HIDDEN and s not in users}
    return found | {quote(s, safe="") for s in found}


def _is_secret(key: str) -> bool:
    from urllib.parse import unquote_plus

    return unquote_plus(key).strip().lower() in SECRET_PARAMS


def redact_arg(arg: str) -> str:
    """One command-line argument with the secrets of a URL in it hidden (`--db=URL` too)."""
    m = _URL_START.search(arg) or _SCHEME_SEARCH.search(arg)
    return arg if m is None else arg[:m.start()] + redact_url(arg[m.start():])


def redact_command(argv: Sequence[str]) -> str:
    """The command line to store or print: shell-quoted, every URL's secrets hidden."""
    return shlex.join(redact_arg(str(a)) for a in argv)


def redact_command_line(text: str) -> str:
    """A command line already joined (a stored one): its URLs' secrets hidden."""
    try:
        return redact_command(shlex.split(text))
    except ValueError:  # unbalanced quotes: all from the first URL to the last "@" is hidden
        return redact_arg(text)


def without_password(target: StoreURL) -> tuple[str, str | None]:
    """(the store URL as text without its password, the password or None): what is handed to
    other processes (an sbatch script, a node's argv) and what goes to them by PGPASSWORD."""
    url = target.url
    if target.sqlite_path is not None:
        return f"sqlite:///{target.sqlite_path}", None
    if "sslpassword" in {k.lower() for k in url.query}:
        # libpq reads an SSL key's passphrase from the URL or a prompt only (no environment
        # variable: libpq-envars.html), so it cannot reach another process without its text.
        raise UserError("store URL: sslpassword cannot be handed to other processes; use an "
                        "unencrypted key file readable only by you, or a service file")
    query_password = url.query.get("password")
    if isinstance(query_password, tuple):
        query_password = query_password[-1]
    if query_password and url.password and query_password != url.password:
        # psycopg's dialect lets the query override the user part (opts.update(url.query)): two
        # different passwords would authenticate here and fail in the job.
        raise UserError("store URL holds two different passwords (USER:PASSWORD@ and ?password=); "
                        "give one")
    password = query_password or url.password
    # URL.set(password=None) keeps the password (None there means "unchanged"): build anew.
    clean = sa.URL.create(url.drivername, username=url.username, host=url.host, port=url.port,
                          database=url.database,
                          query={k: v for k, v in url.query.items() if not _is_secret(k)})
    return clean.render_as_string(hide_password=False), password


def check_sqlite_path(target: StoreURL, create: bool) -> None:
    """Read-only checks of an SQLite file location; UserError naming the problem."""
    path = target.sqlite_path
    if path is None:
        return
    where = f"results store {path}"
    if path.is_dir():
        raise UserError(f"{where} is a directory; give a file path, e.g. {path / 'nnscale.db'}")
    parent = path.parent
    if not parent.exists():
        raise UserError(
            f"{where}: directory {parent} does not exist; create it or give another path"
        )
    if not parent.is_dir():
        raise UserError(f"{where}: {parent} is not a directory; give a path inside a directory")
    if path.exists():
        if not path.is_file():
            raise UserError(
                f"{where} is not a regular file; give a new file name or a database file"
            )
        try:
            with open(path, "rb") as f:
                head = f.read(100)
        except OSError as e:
            raise UserError(f"cannot read {where}: {e.strerror}; {ACCEPTED}") from None
        if head and (len(head) < 100 or not head.startswith(SQLITE_HEADER)):
            raise UserError(
                f"{where} is not an SQLite database (no SQLite header; left unchanged): give a new "
                "file name or an existing nnscale results file"
            )
        if not os.access(path, os.R_OK | os.W_OK):
            raise UserError(f"{where} is not writable; give a path you can write to")
    elif not create:
        raise UserError(f"no results store at {path}; give the path of an existing results file")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise UserError(
            f"{where}: directory {parent} is not writable (SQLite keeps its -wal and -shm files "
            "next to the database); give a path in a writable directory"
        )
