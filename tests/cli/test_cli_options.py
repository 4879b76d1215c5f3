"""Options several subcommands take are declared once (cli/options.py): the same flag has the same
help, default, type and choices in every command that takes it."""

from __future__ import annotations

import argparse

import pytest

from nnscale.cli import build_parser
from nnscale.cli.options import DB_HELP


def _actions(command: str) -> dict[str, argparse.Action]:
    parser = build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {flag: a for a in sub.choices[command]._actions for flag in a.option_strings}


def _same(a: argparse.Action, b: argparse.Action) -> tuple:
    return tuple((getattr(a, k), getattr(b, k)) for k in ("help", "default", "type", "choices",
                                                         "metavar", "dest"))


@pytest.mark.parametrize("command", ["sweep", "tune", "run", "results", "report", "compare"])
def test_every_store_reading_command_declares_db_alike(command):
    db = _actions(command)["--db"]
    assert (db.help, db.metavar, db.default) == (DB_HELP, "URL", None)


MEASURING = ("--mode", "--device", "--framework", "--threads", "--input-size", "--target-ci",
             "--processes", "--max-processes", "--interference-max", "--warmup", "--timeout",
             "--memory-cap", "--run", "--resume", "--db")


@pytest.mark.parametrize("flag", MEASURING)
def test_sweep_and_tune_share_their_measurement_options(flag):
    pairs = _same(_actions("sweep")[flag], _actions("tune")[flag])
    assert all(x == y for x, y in pairs), pairs


def test_the_budget_option_is_one_declaration_with_each_commands_default():
    sweep, tune = _actions("sweep")["--budget"], _actions("tune")["--budget"]
    assert (sweep.default, tune.default) == (30.0, 10.0)
    assert sweep.help.replace("30", "N") == tune.help.replace("10", "N")


@pytest.mark.parametrize("flag", ["--interference-max", "--run"])
def test_run_declares_its_shared_options_alike(flag):
    run, sweep = _actions("run")[flag], _actions("sweep")[flag]
    if flag == "--run":  # `run` resumes a run of that name; sweep makes a new one (--resume)
        assert (run.metavar, sweep.metavar) == ("NAME", "NAME")
        assert "an existing run is resumed" in run.help and "new run" in sweep.help
    else:
        assert all(x == y for x, y in _same(run, sweep))


@pytest.mark.parametrize("command", ["results", "compare"])
def test_format_is_one_declaration(command):
    fmt = _actions(command)["--format"]
    assert (fmt.choices, fmt.default) == (("table", "json", "csv"), "table")
