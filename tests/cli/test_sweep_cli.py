"""`nnscale sweep` and `nnscale tune` on bad input: one line on stderr, exit code 2, nothing stored
lost. (Sweeps that run workers are tested in tests/measure/test_measure_worker.py.)"""

from __future__ import annotations

import sqlite3

import pytest
import torch

from nnscale.cli import main


def one_line_error(capsys, argv, *needles):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own errors (a wrong choice or type) exit directly
        code = e.code
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("batch,needle", [
    ("0", "bad batch size 0"), ("-4", "bad batch size -4"), ("abc", "bad batch size 'abc'"),
    ("1,,2", "bad batch size ''"), ("2.5", "bad batch size '2.5'"), ("", "empty --batch"),
])
def test_bad_batch(capsys, tmp_path, batch, needle):
    db = tmp_path / "r.db"
    one_line_error(capsys, ["sweep", "test-tiny-mlp", "--batch", batch, "--db", str(db)], needle, "auto")
    assert not db.exists()


@pytest.mark.parametrize("argv,needles", [
    (["--precision", "tf32"], ("tf32", "on cpu use fp32, bf16 or fp16")),
    (["--precision", "int8"], ("invalid choice",)),
    (["--device", "tpu"], ("unknown device 'tpu'",)),
    (["--device", "cuda:x"], ("unknown device",)),
    (["--budget", "-1"], ("budget_s",)),
    (["--budget", "abc"], ("--budget",)),
    (["--target-ci", "2"], ("target_rel_ci",)),
    (["--threads", "-2"], ("--threads",)),
    (["--mode", "testing"], ("unknown mode 'testing'",)),
    (["--input-size", "3x2x2"], ("does not fit test-tiny-mlp",)),
    (["--memory-cap", "lots"], ("bad memory size",)),
    (["--db", "foo://bar"], ("unsupported store URL scheme 'foo'",)),
    (["--db", "postgresql://u:secret@host:notaport/db"], ("store URL",)),
])
def test_bad_option(capsys, argv, needles):
    err = one_line_error(capsys, ["sweep", "test-tiny-mlp", *argv], *needles)
    assert "secret" not in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu(capsys):
    one_line_error(capsys, ["sweep", "test-tiny-mlp", "--device", "cuda"], "sees no CUDA GPU", "--device cpu")


def test_unknown_model_and_missing_model(capsys):
    one_line_error(capsys, ["sweep", "test-tiny-mpl"], "unknown model", "did you mean test-tiny-mlp")
    one_line_error(capsys, ["sweep"], "give a MODEL")


def test_corrupt_or_unusable_database_is_left_alone(capsys, tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"my precious notes\n" * 20)
    one_line_error(capsys, ["sweep", "test-tiny-mlp", "--db", str(bad)], "not an SQLite database")
    assert bad.read_bytes() == b"my precious notes\n" * 20
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    one_line_error(capsys, ["sweep", "test-tiny-mlp", "--db", str(other)], "holds other tables")
    missing_dir = str(tmp_path / "no" / "dir.db")
    one_line_error(capsys, ["sweep", "test-tiny-mlp", "--db", missing_dir], "does not exist")
    one_line_error(capsys, ["sweep", "test-tiny-mlp", "--db", str(tmp_path)], "is a directory")


def test_unknown_run_and_run_conflicts(capsys, tmp_path):
    from nnscale.store import open_store

    db = tmp_path / "r.db"
    with open_store(str(db)) as store:
        store.create_run("first")
    one_line_error(capsys, ["sweep", "test-tiny-mlp", "--resume", "nope", "--db", str(db)],
                   "no run named 'nope'", "first")
    one_line_error(capsys, ["sweep", "--resume", "first", "--db", str(db)], "not started by `nnscale sweep`")
    one_line_error(capsys, ["sweep", "test-tiny-mlp", "--run", "first", "--db", str(db)], "already exists")
    one_line_error(capsys, ["sweep", "test-tiny-mlp", "--run", "a", "--resume", "first"], "not both")
    one_line_error(capsys, ["sweep", "test-tiny-mlp", "--resume", "x", "--db", str(tmp_path / "new.db")],
                   "no results store")
    with open_store(str(db), create=False) as store:
        assert [r.name for r in store.runs()] == ["first"]


@pytest.mark.parametrize("argv,needle", [
    (["--precision", "fp32,tf32"], "tf32"),
    (["--precision", "fp8"], "unknown precision 'fp8'"),
    (["--batch", "auto"], "not auto"),
    (["--compile-timeout", "0"], "--compile-timeout"),
])
def test_tune_bad_option(capsys, argv, needle):
    one_line_error(capsys, ["tune", "test-tiny-mlp", *argv], needle)
