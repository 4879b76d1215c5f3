"""`nnscale slurm` scripts: no value can change what the script runs, values with control characters
are refused, scripts are private (0600), each job gets its own rendezvous port.

The hostile-value test submits the generated script to the real cluster (scripts/ci_slurm.sh) and
checks that the commands hidden in a value did not run: the old script carried the task in a
here-document closed by a fixed word, and a value "x\\nNNSCALE_TASK\\ntouch …" ran `touch`.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from nnscale.cli import main
from nnscale.distributed.netutil import JOB_PORT_RANGE
from nnscale.distributed.slurm import SlurmJob, render_script, write_script

from ddp_helpers import skip_or_fail


def _job(tmp_path: Path, **kw) -> SlurmJob:
    fields = dict(model="test-tiny-mlp", nodes=1, gpus_per_node=0, nproc_per_node=(1,),
                  scale_args=("--batch-per-worker", "4", "--budget", "0.2", "--launches", "1"),
                  db=f"sqlite:///{tmp_path / 'r.db'}", run="r1", time="00:05:00",
                  output_dir=tmp_path)
    fields.update(kw)
    return SlurmJob(**fields)


def _hostile(marker: Path) -> str:
    """A value that ends the old here-document and runs `touch`, plus quote and $() tricks."""
    return (f"x\nNNSCALE_TASK\ntouch {marker}\necho pwned > {marker}-echo\n"
            f": '\"$(touch {marker}-subst)`touch {marker}-tick`\n")


def _cluster() -> None:
    if shutil.which("sbatch") is None:
        skip_or_fail("no SLURM here (`sbatch` not on PATH); scripts/ci_slurm.sh sets one up")


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")  # the one SLURM node: a second job would wait for it
@pytest.mark.timeout(240)
def test_hostile_values_run_nothing_under_slurm(tmp_path):
    _cluster()
    marker, db_marker = tmp_path / "pwned", tmp_path / "dbpwned"
    job = _job(tmp_path)
    # Past the validation (the first defence), as values from a future caller might come: the
    # script itself must still keep each one a word. Both hostile fields go in one job (one
    # submission costs about a minute here); each has its own marker, so a value that escaped its
    # quoting shows as that field's file.
    object.__setattr__(job, "run", _hostile(marker))
    object.__setattr__(job, "db", _hostile(db_marker) + "r.db")
    script = tmp_path / "hostile.sbatch"
    script.write_text(render_script(job))
    out = subprocess.run(["sbatch", "--parsable", "--wait", str(script)], capture_output=True,
                         text=True, timeout=220)
    job_id = out.stdout.strip().split(";")[0]
    log = (tmp_path / f"nnscale-{job_id}.out").read_text(errors="replace")
    assert not list(tmp_path.glob("*pwned*")), (list(tmp_path.glob("*pwned*")), log)
    assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    # The values reached `nnscale scale` whole, each as one argument, and were refused there (exit
    # 2): the refusal quotes the value with its hidden NNSCALE_TASK line inside.
    assert out.returncode != 0, log
    assert "NNSCALE_TASK" in log and ("bad run name" in log or "results store" in log), log


@pytest.mark.parametrize("option, value", [
    ("--run", "a\nb"), ("--run", "tab\there"), ("--db", "r.db\nNNSCALE_TASK\ntouch /tmp/x"),
    ("--partition", "debug\x1b[2J"), ("--sbatch-arg", "--comment=a\rb"), ("--input-size", "3x8\n")
])
def test_control_characters_are_refused_with_one_line(tmp_path, capsys, monkeypatch, option, value):
    monkeypatch.chdir(tmp_path)
    args = ["slurm", "test-tiny-mlp", "--nodes", "1", "--gpus-per-node", "0",
            "--batch-per-worker", "4", "--output-dir", str(tmp_path)]
    if option != "--db":
        args += ["--db", str(tmp_path / "s.db")]
    code = main(args + [f"{option}={value}"])
    err = [line for line in capsys.readouterr().err.strip().splitlines() if "warning" not in line]
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith("nnscale: error:") and ("control character" in err[0]
                                                     or "printable" in err[0]), err
    assert not list(tmp_path.glob("*.sbatch"))


def test_run_names_follow_the_stores_rule_everywhere(tmp_path):
    from nnscale.errors import UserError
    from nnscale.store import open_store

    bad = "line\nbreak"
    with pytest.raises(UserError) as slurm_error:
        _job(tmp_path, run=bad)
    with open_store(str(tmp_path / "s.db")) as store, pytest.raises(UserError) as store_error:
        store.create_run(bad)
    assert "printable" in str(slurm_error.value) and "printable" in str(store_error.value)
    _job(tmp_path, run="ünïcode name, spaces (ok)")  # what the store accepts, slurm accepts


def test_the_script_file_is_private_and_stays_in_the_output_dir(tmp_path):
    old = os.umask(0o022)
    try:
        job = _job(tmp_path, run="../../escape/name")
        path = write_script(job)
        assert path.parent == tmp_path and path.name == "nnscale-_.._escape_name.sbatch"
        assert path.stat().st_mode & 0o777 == 0o600
        path.chmod(0o644)  # an existing script is made private again when rewritten
        write_script(job)
        assert path.stat().st_mode & 0o777 == 0o600
    finally:
        os.umask(old)


def _port(text: str) -> int:
    return int(re.search(r"^export NNSCALE_PORT=(\d+)", text, re.M).group(1))


def test_each_job_gets_its_own_random_port_unless_one_is_given(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    ports = []
    for run in ("p1", "p2"):
        code = main(["slurm", "test-tiny-mlp", "--nodes", "2", "--gpus-per-node", "0",
                     "--batch-per-worker", "4", "--db", str(tmp_path / "s.db"), "--run", run,
                     "--output-dir", str(tmp_path)])
        assert code == 0, capsys.readouterr().err
        ports.append(_port((tmp_path / f"nnscale-{run}.sbatch").read_text()))
    low, high = JOB_PORT_RANGE
    assert all(low <= p < high for p in ports) and 29400 not in ports
    assert ports[0] != ports[1]
    code = main(["slurm", "test-tiny-mlp", "--nodes", "2", "--gpus-per-node", "0",
                 "--batch-per-worker", "4", "--db", str(tmp_path / "s.db"), "--run", "given",
                 "--port", "29555", "--output-dir", str(tmp_path)])
    assert code == 0
    text = (tmp_path / "nnscale-given.sbatch").read_text()
    assert _port(text) == 29555 and '--rdzv-endpoint "$head:$NNSCALE_PORT"' in text


def test_the_rendezvous_store_listens_on_every_interface_as_documented():
    """docs/distributed.md ("What the rendezvous exposes") says torch's TCPStore binds the wildcard
    address whatever host it is given; this keeps that sentence true for the installed torch."""
    from datetime import timedelta

    from torch.distributed import TCPStore

    store = TCPStore("127.0.0.1", 0, 1, True, timeout=timedelta(seconds=5), wait_for_workers=False,
                     multi_tenant=True)
    listening = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port = local.split(":")
            if state == "0A" and int(port, 16) == store.port:  # 0A: TCP_LISTEN
                listening.add(address)
    del store
    assert listening and all(set(a) == {"0"} for a in listening), listening
