"""`nnscale slurm`: the script, its refusals, and a real submission to the cluster of
scripts/ci_slurm.sh (skipped where there is no SLURM, failed under CI=true)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from nnscale.cli import main
from nnscale.distributed import slurm
from nnscale.distributed.config import DEFAULT_LAUNCHES
from nnscale.distributed.slurm import SlurmJob, check_store, render_script
from nnscale.errors import UserError
from nnscale.store import open_store

from ddp_helpers import cli_env, run_cli, skip_or_fail


def _cluster() -> None:
    if shutil.which("sbatch") is None:
        skip_or_fail("no SLURM here (`sbatch` not on PATH); scripts/ci_slurm.sh sets one up")
    out = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    if out.returncode != 0 or not {"idle", "mix", "alloc"} & set(out.stdout.split()):
        skip_or_fail(f"no idle SLURM node: {out.stdout.strip() or out.stderr.strip()} "
                     "(run scripts/ci_slurm.sh)")


def test_script_runs_one_task_per_node_with_c10d_on_the_first_host(tmp_path):
    job = SlurmJob("resnet152", nodes=8, gpus_per_node=4, nproc_per_node=(1, 2, 4),
                   scale_args=("--batch-per-worker", "32"), db="postgresql://u@h/db", run="r1",
                   partition="gpu", time="02:00:00", output_dir=tmp_path)
    text = render_script(job)
    assert "#SBATCH --nodes=8" in text and "#SBATCH --gpus-per-node=4" in text
    assert "#SBATCH --ntasks-per-node=1" in text and "#SBATCH --partition=gpu" in text
    assert "#SBATCH --exclusive" in text and "--gpus-per-node=4 bash -c" in text
    assert "for n in 1 2 4 8; do" in text
    assert 'head=$(scontrol show hostnames "$SLURM_STEP_NODELIST" | head -n1)' in text
    assert '--node-rank "$SLURM_NODEID" --rdzv-endpoint "$head:$NNSCALE_PORT"' in text
    assert f"export NNSCALE_PORT={job.port} " in text and job.port != 29400
    assert "<<" not in text  # no here-document: a value cannot end it (test_slurm_injection.py)
    assert "--device cuda --db postgresql://u@h/db --run r1 --batch-per-worker 32" in text
    assert "NNSCALE_NPROC=1,2,4; else export NNSCALE_NPROC=4" in text
    assert subprocess.run(["bash", "-n"], input=text, text=True).returncode == 0


def test_sqlite_on_a_network_file_system_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(slurm, "filesystem_type", lambda path: "nfs4")
    with pytest.raises(UserError, match="network file system"):
        check_store(str(tmp_path / "r.db"))
    monkeypatch.setattr(slurm, "filesystem_type", lambda path: "ext4")
    (warning,) = check_store(str(tmp_path / "r.db"))
    assert "PostgreSQL" in warning
    assert check_store("postgresql://u:p@h/db") == []


def test_bad_scale_options_are_refused_before_submitting(tmp_path, capsys):
    code = main(["slurm", "test-tiny-mlp", "--nodes", "2", "--gpus-per-node", "0",
                 "--nproc-per-node", "1,2", "--global-batch", "3", "--db", str(tmp_path / "s.db"),
                 "--output-dir", str(tmp_path), "--submit"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and "--global-batch 3" in err[-1]
    assert not list(tmp_path.glob("*.sbatch"))


def test_sbatch_missing_is_a_one_line_error(tmp_path):
    env = cli_env(PATH="/nonexistent")
    result, _ = run_cli("slurm", "test-tiny-mlp", "--nodes", "1", "--gpus-per-node", "0",
                        "--batch-per-worker", "4", "--db", str(tmp_path / "s.db"), "--output-dir",
                        str(tmp_path), "--submit", env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if "warning" not in line]
    assert len(lines) == 1 and "`sbatch` is not on PATH" in lines[0], result.stderr


@pytest.mark.slow
def test_an_option_sbatch_rejects_is_a_one_line_error(tmp_path):
    _cluster()
    result, _ = run_cli("slurm", "test-tiny-mlp", "--nodes", "1", "--gpus-per-node", "0",
                        "--batch-per-worker", "4", "--partition", "no-such-partition",
                        "--db", str(tmp_path / "s.db"), "--output-dir", str(tmp_path), "--submit")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stderr.strip().splitlines() if "warning" not in line]
    assert len(lines) == 1 and "sbatch rejected the job" in lines[0], result.stderr
    assert "partition" in lines[0]


@pytest.mark.slow
@pytest.mark.xdist_group("slurm")  # the one SLURM node: a second job would wait for it
@pytest.mark.timeout(300)
def test_submit_two_cpu_processes_and_find_the_point_in_the_store(tmp_path):
    _cluster()
    db = tmp_path / "slurm.db"
    result, seconds = run_cli(
        "slurm", "test-tiny-mlp", "--nodes", "1", "--gpus-per-node", "0", "--nproc-per-node", "2",
        "--device", "cpu", "--global-batch", "16", "--budget", "1", "--launches", "1",
        "--time", "00:10:00",
        "--breakdown", "separate", "--breakdown-iters", "5",
        "--db", f"sqlite:///{db}", "--run", "slurm-ci", "--output-dir", str(tmp_path), "--submit",
        timeout=280)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    assert "COMPLETED" in result.stdout and "time [min]" in result.stdout
    with open_store(str(db), create=False) as store:
        (point,) = store.measurements("slurm-ci")
        run = store.run("slurm-ci")
    assert point.status in ("ok", "unstable") and point.workload.world_size == 2
    # --launches reached `nnscale scale` in the job: 1 launch, where the default is 3 (one launch
    # of the job's 2 processes, not 2: the rounds themselves are test_launch_rounds').
    assert point.stats.processes.processes == 1 != DEFAULT_LAUNCHES
    s = point.stats
    assert s.distributed.scaling == "strong" and s.distributed.global_batch == 16 and point.workload.batch_size == 8
    assert point.workload.nnodes == 1 and s.launch.backend == "gloo"
    assert "separate" in s.distributed.breakdown_method and s.distributed.breakdown_iters == 5
    assert s.launch.slurm_job_id and run.command_line.startswith("nnscale scale test-tiny-mlp")
    (script,) = tmp_path.glob("*.sbatch")
    assert "srun" in script.read_text()
