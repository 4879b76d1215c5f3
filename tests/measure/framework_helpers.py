"""Helpers for the framework backends' tests (imported by name: tests/ has no packages).

A test that needs a framework skips when it is not installed — except in CI (CI=true), where
`make test` installs every extra, so a missing framework there is a failure, not a skip.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nnscale.measure.frameworks import SPECS

SRC = str(Path(__file__).resolve().parents[2] / "src")


def need(framework: str) -> None:
    missing = [m for m in SPECS[framework].modules if importlib.util.find_spec(m) is None]
    if not missing:
        return
    text = f"{framework} is not installed ({', '.join(missing)} missing)"
    if os.environ.get("CI") == "true":
        pytest.fail(text + ": CI installs every extra (make test)")
    pytest.skip(text)


def needed(framework: str):
    """An autouse fixture for a module whose every test needs `framework` (`installed = needed("jax")`)."""

    @pytest.fixture(autouse=True)
    def installed() -> None:
        need(framework)

    return installed


def nnscale(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The command line, in a fresh process (as a user runs it)."""
    env = dict(os.environ, PYTHONPATH=SRC)
    return subprocess.run([sys.executable, "-m", "nnscale", *args], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)


def in_fresh_process(code: str, timeout: float = 300) -> dict:
    """Run `code` in a fresh interpreter (keras picks its backend once per process); the code
    prints one JSON line last, which comes back as a dict."""
    env = dict(os.environ, PYTHONPATH=SRC)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=timeout, env=env, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def stored(db: str) -> list[dict]:
    out = nnscale("results", "--db", db, "--format", "json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["measurements"]
