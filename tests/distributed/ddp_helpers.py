"""Helpers for the distributed tests: the CLI from source, and a check for leftover processes.

Every nnscale started here carries NNSCALE_TEST_MARK=<random> in its environment, which torchrun and
the workers inherit; `leftovers(mark)` lists the processes that still carry it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

SRC = str(Path(__file__).resolve().parents[2] / "src")
IN_CI = os.environ.get("CI") == "true"


def skip_or_fail(reason: str) -> None:
    """Skip on a user's machine; in CI (CI=true) the environment must allow the test, so fail."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: this test must run in CI)")
    pytest.skip(reason)


def cli_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "NNSCALE_TEST_FAULT"}
    return dict(env, PYTHONPATH=SRC, **extra)


def run_cli(*args: str, timeout: float = 180, env: dict | None = None, prefix: tuple = ()):
    """`python -m nnscale ARGS` from source, as on a machine without an install; (result, seconds)."""
    start = time.monotonic()
    result = subprocess.run([*prefix, sys.executable, "-m", "nnscale", *args], capture_output=True,
                            text=True, env=env or cli_env(), timeout=timeout)
    return result, time.monotonic() - start


def scale_run(tmp_path_factory, run: str, *args: str, timeout: float = 180):
    """`nnscale scale ARGS` into a new store as run `run`; it must succeed. (result, points, db)."""
    from nnscale.store import open_store

    db = tmp_path_factory.mktemp(run) / f"{run}.db"
    result, _ = run_cli("scale", *args, "--db", str(db), "--run", run, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    with open_store(str(db), create=False) as store:
        return result, store.measurements(run), db


def breakdown_launch(point) -> int:
    """The launch a point's breakdown comes from: the one whose median step is the median."""
    medians = point.stats.processes.process_medians_ms
    return sorted(range(len(medians)), key=medians.__getitem__)[(len(medians) - 1) // 2]


def leftovers(mark: str) -> list[int]:
    needle = f"NNSCALE_TEST_MARK={mark}".encode()
    pids = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    pids.append(int(entry.name))
        except OSError:
            continue
    return pids


def new_mark() -> str:
    return uuid.uuid4().hex


def one_line_error(result, *needles: str) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]
