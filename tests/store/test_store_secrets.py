"""Store passwords: hidden (by parsing the URL) in everything stored or printed, and the libpq ways
to give one (PGPASSWORD, a password file, a service file) work with a URL that holds none — against
the real PostgreSQL server of NNSCALE_TEST_PG_URL (scripts/ci_postgres.sh)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from nnscale.errors import UserError
from nnscale.store import capture_environment, open_store, resolve_url
from nnscale.store.url import redact_command, redact_command_line, redact_url, without_password

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.mark.parametrize("url, secrets", [
    ("postgresql://u:s3cr/et@host/db", ["s3cr", "et@"]),
    ("postgresql://u:p@ss/w@rd@host:5432/db", ["p@ss", "ss/w", "w@rd", "rd@"]),
    ("postgresql://u:p%40s%2Fs@host/db", ["p%40", "%2Fs"]),
    ("postgresql://u@host/db?password=qwerty&sslmode=require", ["qwerty"]),
    ("postgresql://u@host/db?sslmode=require&pass%77ord=qwerty", ["qwerty"]),
    ("postgresql://u@host/db?sslpassword=keypass", ["keypass"]),
    ("postgresql://u:pa?ss#w@host/db", ["pa?ss", "ss#w"]),
])
def test_redaction_parses_the_url_and_hides_every_secret(url, secrets):
    for shown in (redact_url(url), redact_command(["nnscale", "sweep", "--db", url]),
                  redact_command(["nnscale", "sweep", f"--db={url}"]),
                  redact_command_line(f"nnscale sweep --db '{url}"), resolve_url(url).display
                  if url.count("@") == 1 else redact_url(url)):
        assert not any(s in shown for s in secrets), shown
        assert "***" in shown and "host" in shown, shown


def test_a_raw_at_in_a_password_is_refused_without_leaking_it():
    with pytest.raises(UserError) as info:
        resolve_url("postgresql://u:p@ss@host/db")
    message = str(info.value)
    assert "%40" in message and "ss@" not in message and "p@" not in message


def test_without_password_takes_it_out_of_the_url():
    clean, password = without_password(resolve_url("postgresql://u:p%2Fw@h:5/db?sslmode=require"))
    assert password == "p/w" and clean == "postgresql+psycopg://u@h:5/db?sslmode=require"
    clean, password = without_password(resolve_url("postgresql://u@h/db?password=x&sslmode=disable"))
    assert password == "x" and "password" not in clean


def test_the_store_never_keeps_a_password_in_a_command_line(tmp_path):
    with open_store(str(tmp_path / "s.db")) as store:
        store.create_run("r", command_line="nnscale sweep m --db postgresql://u:hunter2@h/db")
        assert store.run("r").command_line == "nnscale sweep m --db 'postgresql://u:***@h/db'"


def test_results_runs_hides_a_password_stored_before_the_fix(tmp_path, capsys):
    from nnscale.cli import main
    from nnscale.store import schema

    db = tmp_path / "old.db"
    with open_store(str(db)) as store:
        store.create_run("old")
    engine = sa.create_engine(f"sqlite:///{db}")
    with engine.begin() as conn:  # as an older nnscale wrote it: the password verbatim
        conn.execute(sa.update(schema.runs).values(
            command_line="nnscale sweep m --db postgresql://u:hunter2@h/db?password=hunter3"))
    engine.dispose()
    assert main(["results", "--runs", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    assert "hunter" not in out and "postgresql://u:***@h/db?password=***" in out


def test_environment_capture_keeps_no_password(monkeypatch):
    monkeypatch.setenv("PGPASSWORD", "env-secret-1")
    monkeypatch.setenv("TORCH_SECRET_X", "env-secret-2")
    assert "env-secret" not in json.dumps(capture_environment(include_torch=False), default=str)


# --- the real server --------------------------------------------------------------------------

def _without(url: str) -> tuple[str, str]:
    u = sa.make_url(url)
    return u._replace(password=None).render_as_string(hide_password=False), u.password


@pytest.fixture
def no_libpq_password(monkeypatch, tmp_path):
    """No password from the environment unless a test sets one (the user's ~/.pgpass neither)."""
    for var in ("PGPASSWORD", "PGSERVICE", "PGSERVICEFILE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-such-pgpass"))


def test_pgpassword_with_a_password_less_url(pg_url, monkeypatch, no_libpq_password):
    url, password = _without(pg_url)
    with pytest.raises(UserError) as info:  # without it: a one-line error, no password shown
        open_store(url).close()
    assert "\n" not in str(info.value) and "password" in str(info.value)
    monkeypatch.setenv("PGPASSWORD", password)
    with open_store(url) as store:
        store.create_run("via-pgpassword", command_line="x")
        assert [r.name for r in store.runs()] == ["via-pgpassword"]


def test_password_file_and_service_file(pg_url, monkeypatch, tmp_path, no_libpq_password):
    u = sa.make_url(pg_url)
    passfile = tmp_path / "pgpass"
    passfile.write_text(f"{u.host}:{u.port or 5432}:*:{u.username}:{u.password}\n")
    passfile.chmod(0o600)  # libpq ignores a password file others can read
    monkeypatch.setenv("PGPASSFILE", str(passfile))
    with open_store(_without(pg_url)[0]) as store:
        store.create_run("via-pgpass")
    services = tmp_path / "pg_service.conf"
    services.write_text(f"[nnscale_results]\nhost={u.host}\nport={u.port or 5432}\n"
                        f"dbname={u.database}\nuser={u.username}\noptions={u.query['options']}\n")
    monkeypatch.setenv("PGSERVICEFILE", str(services))
    with open_store("postgresql:///?service=nnscale_results", create=False) as store:
        assert [r.name for r in store.runs()] == ["via-pgpass"]


def _cli(*args, env=None):
    return subprocess.run([sys.executable, "-m", "nnscale", *args], capture_output=True, text=True,
                          timeout=240, env=dict(os.environ, PYTHONPATH=SRC, **(env or {})))


@pytest.mark.slow
def test_a_password_in_the_url_is_never_stored_or_printed(pg_url, tmp_path):
    password = sa.make_url(pg_url).password
    given = f"{pg_url}&password={password}"  # given twice: in the user part and as ?password=
    sweep = _cli("sweep", "test-tiny-mlp", "--batch", "1", "--budget", "0.2", "--warmup", "0.1",
                 "--processes", "1", "--max-processes", "1", "--threads", "1",
                 "--run", "secret-run", "--db", given)
    assert sweep.returncode == 0, sweep.stderr
    runs = _cli("results", "--runs", "--db", given)
    points = _cli("results", "--db", given, "--format", "csv")
    assert runs.returncode == 0 and points.returncode == 0, runs.stderr + points.stderr
    with open_store(pg_url, create=False) as store:
        stored = store.run("secret-run").command_line
        environment = json.dumps(store.run("secret-run").environment)
    assert ":***@" in stored and "password=***" in stored, stored
    for text in (stored, environment, sweep.stdout, sweep.stderr, runs.stdout, points.stdout):
        assert f":{password}@" not in text and f"password={password}" not in text, text


# --- SLURM: the password goes to the job as PGPASSWORD, never into the script or a node's argv ---

def _slurm(pg_url: str, tmp_path: Path, *extra: str):
    env = {"PGPASSFILE": str(tmp_path / "no-such-pgpass")}
    environ = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGSERVICE")}
    return subprocess.run(
        [sys.executable, "-m", "nnscale", "slurm", "test-tiny-mlp", "--nodes", "1",
         "--gpus-per-node", "0", "--nproc-per-node", "1", "--global-batch", "4", "--budget", "0.5",
         "--launches", "1", "--time", "00:10:00", "--db", pg_url, "--run", "slurm-pg",
         "--output-dir", str(tmp_path),
         *extra], capture_output=True, text=True, timeout=280,
        env=dict(environ, PYTHONPATH=SRC, **env))


def test_slurm_script_and_output_hold_no_password(pg_url, tmp_path):
    password = sa.make_url(pg_url).password
    out = _slurm(pg_url, tmp_path)
    assert out.returncode == 0, out.stderr
    (script,) = tmp_path.glob("*.sbatch")
    text = script.read_text()
    assert "--db 'postgresql+psycopg://nnscale@127.0.0.1:5432/nnscale_test?options=" in text
    assert "PGPASSWORD" in out.stdout  # says how the password travels
    for shown in (text, out.stdout, out.stderr):
        assert f":{password}@" not in shown and "password=" not in shown, shown
    assert script.stat().st_mode & 0o777 == 0o600


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")  # the one SLURM node: a second job would wait for it
@pytest.mark.timeout(300)
def test_slurm_job_reaches_postgresql_by_the_inherited_pgpassword(pg_url, tmp_path):
    import shutil

    if shutil.which("sbatch") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("no SLURM here (CI=true: this test must run in CI)")
        pytest.skip("no SLURM here (`sbatch` not on PATH); scripts/ci_slurm.sh sets one up")
    password = sa.make_url(pg_url).password
    out = _slurm(pg_url, tmp_path, "--submit")
    assert out.returncode == 0, (out.stdout[-3000:], out.stderr[-3000:])
    with open_store(pg_url, create=False) as store:
        (point,) = store.measurements("slurm-pg")
        command = store.run("slurm-pg").command_line
    assert point.status in ("ok", "unstable") and point.stats.launch.slurm_job_id
    assert "postgresql+psycopg://nnscale@127.0.0.1" in command
    logs = [p.read_text() for p in tmp_path.glob("nnscale-*.out")]
    for shown in (command, out.stdout, out.stderr, *logs):
        assert f":{password}@" not in shown and "password=" not in shown, shown


@pytest.mark.parametrize("url, secrets", [
    # an "@" inside the query must not be taken for the end of the user part
    ("postgresql://u@host/db?password=p@ssw0rd", ["p@ssw0rd", "ssw0rd"]),
    ("postgresql://u@host/db?application_name=me@node1&password=hunter2", ["hunter2"]),
    # not a clean SCHEME:// (a mistyped scheme): hidden from the first ":" to the last "@"
    ("postgresql:/u:s3cret@host/db", ["s3cret"]),
    ("postgresql+x y://u:s3cret@host/db", ["s3cret"]),
])
def test_redaction_of_urls_with_an_at_in_the_query_or_a_broken_scheme(url, secrets):
    for shown in (redact_url(url), redact_command(["nnscale", "sweep", "--db", url]),
                  redact_command(["nnscale", "sweep", f"--db={url}"])):
        assert not any(s in shown for s in secrets), shown
        assert "***" in shown and "host" in shown, shown
    if "?" not in url:  # the broken schemes are refused, and the message hides the password
        with pytest.raises(UserError) as info:
            resolve_url(url)
        assert "***" in str(info.value) and not any(s in str(info.value) for s in secrets)


def test_a_password_handed_on_is_the_one_that_authenticates_here():
    # psycopg's dialect lets ?password= override USER:PASSWORD@, so two different ones are refused;
    # sslpassword has no environment variable to travel by, so it cannot be handed on at all.
    with pytest.raises(UserError, match="two different passwords"):
        without_password(resolve_url("postgresql://u:aaaa@host/db?password=bbbb"))
    with pytest.raises(UserError, match="sslpassword"):
        without_password(resolve_url("postgresql://u@host/db?sslpassword=keypass"))
    assert without_password(resolve_url("postgresql://u@host/db?password=bbbb&sslmode=require")) == (
        "postgresql+psycopg://u@host/db?sslmode=require", "bbbb")
