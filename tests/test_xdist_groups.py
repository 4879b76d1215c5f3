"""tests/conftest.py's xdist groups hold on the installed pytest and pytest-xdist: the tests of one
`xdist_group`, and the tests that reach PostgreSQL, each run on one worker (`make test` relies on
it to keep the SLURM node, the namespaces and the database to one test at a time)."""

from __future__ import annotations

import collections
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("xdist")

TESTS = '''
import os
import pytest


def record(group):
    with open(os.environ["GROUPS_OUT"], "a") as f:
        f.write(f"{group} {os.environ['PYTEST_XDIST_WORKER']}\\n")


@pytest.fixture
def pg_url():
    return "postgresql://u@h/db"


@pytest.mark.parametrize("i", range(6))
@pytest.mark.xdist_group("one")
def test_grouped(i):
    record("one")


@pytest.mark.parametrize("i", range(6))
def test_reaches_postgres(pg_url, i):
    record("postgresql")


@pytest.mark.parametrize("i", range(6))
def test_free(i):
    record("free")
'''


def test_each_group_runs_on_one_worker(tmp_path):
    shutil.copy(Path(__file__).with_name("conftest.py"), tmp_path / "conftest.py")
    (tmp_path / "test_groups.py").write_text(TESTS)
    out = tmp_path / "groups.txt"
    r = subprocess.run([sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q",
                        "-p", "no:cacheprovider", "-c", os.devnull, "--rootdir", str(tmp_path),
                        str(tmp_path)], capture_output=True, text=True, timeout=180,
                       env=dict(os.environ, GROUPS_OUT=str(out)), cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    workers = collections.defaultdict(list)
    for line in out.read_text().splitlines():
        group, worker = line.split()
        workers[group].append(worker)
    assert {g: len(w) for g, w in workers.items()} == {"one": 6, "postgresql": 6, "free": 6}
    assert len(set(workers["one"])) == 1, workers
    assert len(set(workers["postgresql"])) == 1, workers
