"""Seconds and thread counts on every command that takes them: 'inf', 'nan', 0, negative or absurd
values are one line and exit code 2 before anything starts, and a store already there is untouched.

Before these checks `--timeout inf` reached subprocess.communicate (OverflowError: timeout is too
large) after the worker had started, and `--threads 0` was taken silently as "all cores".
"""

from __future__ import annotations

import sqlite3

import pytest

from nnscale.cli import main
from nnscale.errors import UserError
from nnscale.cli.values import check_thread_option
from nnscale.measure.validate import MAX_THREADS, MAX_TIMEOUT_S, check_seconds, check_threads


def one_line_error(capsys, argv, *needles):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors exit directly
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.fixture
def store(tmp_path):
    """A store file with a row in it, to check that a refused command leaves it byte for byte."""
    path = tmp_path / "kept.db"
    with sqlite3.connect(path) as db:
        db.execute("create table kept (x)")
        db.execute("insert into kept values (42)")
    return path


SECONDS_OPTIONS = [
    ["sweep", "test-tiny-mlp", "--batch", "1", "--timeout"],
    ["tune", "test-tiny-mlp", "--batch", "1", "--no-compile", "--timeout"],
    ["tune", "test-tiny-mlp", "--batch", "1", "--compile-timeout"],
    ["scale", "test-tiny-mlp", "--nproc", "1", "--timeout"],
    ["allreduce", "--nproc", "1", "--timeout"],
    ["slurm", "test-tiny-mlp", "--nodes", "1", "--gpus-per-node", "0", "--timeout"],
]


@pytest.mark.parametrize("value", ["inf", "nan", "0", "-1", "3601"])
def test_device_seconds_per_test(capsys, value):
    # `--seconds inf` measured for ever (no error, no end) before the check.
    err = one_line_error(capsys, ["device", "--refresh", f"--seconds={value}"], "--seconds")
    assert "expected seconds > 0 and at most 3600" in err


@pytest.mark.parametrize("argv", SECONDS_OPTIONS, ids=lambda a: " ".join(a[:1] + a[-1:]))
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "0", "-5", "1e300", "soon"])
def test_seconds_out_of_range(capsys, store, argv, value):
    before = store.read_bytes()
    err = one_line_error(capsys, [*argv[:-1], f"{argv[-1]}={value}", "--db", str(store)],
                         argv[-1])
    if value != "soon":  # not a number at all: argparse's own one-line "invalid float value"
        assert "expected seconds > 0 and at most 604800" in err
    assert store.read_bytes() == before


THREADS_OPTIONS = [
    ["sweep", "test-tiny-mlp", "--batch", "1", "--threads"],
    ["tune", "test-tiny-mlp", "--batch", "1", "--no-compile", "--threads"],
    ["device", "--refresh", "--threads"],
    ["scale", "test-tiny-mlp", "--nproc", "1", "--threads-per-worker"],
    ["allreduce", "--nproc", "1", "--threads-per-worker"],
]


@pytest.mark.parametrize("argv", THREADS_OPTIONS, ids=lambda a: " ".join(a[:1] + a[-1:]))
@pytest.mark.parametrize("value", ["0", "-1", "1025", "2.5", "all"])
def test_threads_out_of_range(capsys, store, argv, value):
    before = store.read_bytes()
    args = [*argv[:-1], f"{argv[-1]}={value}"] + ([] if argv[0] == "device" else ["--db", str(store)])
    err = one_line_error(capsys, args, argv[-1])
    if value not in ("2.5", "all"):  # not integers: argparse's own one-line "invalid int value"
        assert f"expected an integer from 1 to {MAX_THREADS}" in err and "all usable cores" in err
    assert store.read_bytes() == before


def test_library_checks_say_the_range():
    assert check_threads(3) == 3 and check_threads(None) >= 1
    assert check_thread_option(None) is None and check_thread_option(4) == 4
    with pytest.raises(UserError, match="omit it for all usable cores"):
        check_thread_option(0)
    for bad in (-1, MAX_THREADS + 1, 2.5, True):
        with pytest.raises(UserError, match=f"from 1 to {MAX_THREADS}"):
            check_threads(bad)
    assert check_seconds(30) == 30.0 and check_seconds(MAX_TIMEOUT_S) == MAX_TIMEOUT_S
    for bad in (float("inf"), float("nan"), 0, -1, MAX_TIMEOUT_S * 2):
        with pytest.raises(UserError, match="expected seconds > 0"):
            check_seconds(bad)


@pytest.mark.parametrize("value", [float("inf"), float("nan"), 1e300, 0.0, -1.0])
def test_configs_built_from_python_check_their_timeouts_too(value):
    # run_sweep / run_scale called as a library meet the same edge as the CLI.
    from nnscale.distributed.config import Launching
    from nnscale.measure.sweep import SweepConfig

    with pytest.raises(UserError, match="--timeout"):
        SweepConfig(model="test-tiny-mlp", timeout_s=value)
    with pytest.raises(UserError, match="--compile-timeout"):
        SweepConfig(model="test-tiny-mlp", compile_timeout_s=value)
    with pytest.raises(UserError, match="--timeout"):
        Launching(nproc=(1,), timeout_s=value)
