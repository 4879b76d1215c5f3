"""Interference: a real busy process is seen (its CPU share and pid), the one-line warning, steal
arithmetic, the CPU's bf16 capability; and the bad input of the new options (one line, exit 2)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from nnscale.cli import main
from nnscale.environment import capture_environment, interference, interference_warning, steal_share


# serial: the burner must be among the machine's busiest processes, so nothing else may run beside
# it (`make test` runs the serial tests after the parallel part, in one process).
@pytest.mark.serial
def test_a_busy_process_is_found_and_named():
    burner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)  # let it get going
        found = interference(window_s=0.5)
    finally:
        burner.kill()
        burner.wait()
    assert found["others_cpu_share"] > 0.3 / found["cores"]  # one spinning core of `cores`
    assert any(f"pid {burner.pid}" in who for who in found["busiest"])
    assert len(found["load_average"]) == 3 and found["steal_share"] is not None
    line = interference_warning(found, 0.01)
    assert line.startswith("warning: the machine is not quiet") and f"pid {burner.pid}" in line
    assert "\n" not in line


def test_quiet_readings_give_no_warning():
    quiet = {"load_average": [0.1, 0.1, 0.1], "load_per_core": 0.05, "others_cpu_share": 0.02,
             "steal_share": 0.0, "busiest": []}
    assert interference_warning(quiet, 0.25) is None
    assert "stole 30 %" in interference_warning(dict(quiet, steal_share=0.3), 0.25)


def test_steal_share_from_two_readings():
    assert steal_share((100, 10, 1000), (150, 40, 1200)) == pytest.approx(30 / 200)
    assert steal_share(None, (1, 1, 1)) is None and steal_share((1, 1, 5), (1, 1, 5)) is None


def test_the_cpus_bf16_capability_is_recorded():
    cpu = capture_environment(include_torch=False)["cpu"]
    flags = open("/proc/cpuinfo").read()
    assert cpu["bf16_native"] == ("amx_bf16" in flags or "avx512_bf16" in flags)


def one_line_error(capsys, argv, *needles):
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("argv, needles", [
    (["sweep", "test-tiny-mlp", "--processes", "0"], ("processes 0", ">= 1")),
    (["sweep", "test-tiny-mlp", "--processes", "3", "--max-processes", "2"], ("max_processes 2",)),
    (["sweep", "test-tiny-mlp", "--budget", "0.3"], ("too small for 3 processes", "minimum is 0.6 s")),
    (["tune", "test-tiny-mlp", "--budget", "0.1", "--processes", "1"], ("minimum is 0.2 s",)),
    (["sweep", "test-tiny-mlp", "--interference-max", "0"], ("--interference-max 0.0", "(0, 1]")),
    (["sweep", "test-tiny-mlp", "--interference-max", "1.5"], ("--interference-max 1.5",)),
    (["run", "--processes", "0"], ("--processes 0", ">= 1")),
    (["run", "--interference-max", "-1"], ("--interference-max -1.0",)),
])
def test_bad_input_is_one_line(capsys, tmp_path, argv, needles):
    one_line_error(capsys, [*argv, "--db", str(tmp_path / "x.db")], *needles)
    assert not (tmp_path / "x.db").exists() or argv[0] == "run"
