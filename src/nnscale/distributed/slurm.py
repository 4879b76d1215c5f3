"""SLURM: an sbatch script that runs `nnscale scale` on 1, 2, 4, … nodes, submitting and following it.

The script (one job, N nodes) runs one job step per node count n. A step is `srun --nodes n
--ntasks-per-node 1`: one task per node, and each task runs `nnscale scale … --nnodes n --node-rank
$SLURM_NODEID --rdzv-endpoint <first host of the step>:PORT`, which starts torchrun with the c10d
rendezvous on that host. Node rank 0 stores the points, all steps into the same run, so points on
n nodes find their 1-worker and 1-node baselines. At 1 node the step measures every --nproc-per-node
value (how a node scales with its GPUs); at more nodes, full nodes only.

Store: PostgreSQL is the store for clusters. SQLite needs every process that opens the file on one
host with working POSIX locks: WAL mode "does not work over a network filesystem"
(https://www.sqlite.org/wal.html, §"Disadvantages"), so an SQLite file on NFS, Lustre, GPFS … is
refused, and one on a local disk is accepted with a warning (the job's first node must be this host).

Script safety: every value written into the script is checked first (no control characters, the
run name by the store's rule, `nnscale.store.names`), and no value shapes the script: the task is a
fixed `bash -c` text and the command it runs is a bash array of `shlex.quote`d words, so a value is
always one word, whatever it holds. The script is written mode 0600: it names the store.
Passwords: a password in a --db URL is not written; `nnscale slurm --submit` hands it to sbatch as
PGPASSWORD, which the job and its steps inherit (sbatch --export=ALL, srun likewise).
Rendezvous port: a random free port per job unless --port is given (docs/distributed.md,
"What the rendezvous exposes").
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from nnscale.distributed.launch import SRC_DIR
from nnscale.distributed.netutil import choose_port
from nnscale.errors import UserError
from nnscale.store import resolve_url
from nnscale.store.names import check_no_control, check_run_name

NETWORK_FS = ("nfs", "nfs4", "cifs", "smb3", "smbfs", "lustre", "gpfs", "beegfs", "ceph",
              "glusterfs", "fuse.glusterfs", "fuse.sshfs", "fuse.beegfs", "9p", "afs", "panfs",
              "wekafs", "orangefs", "pvfs2")
# The fixed text each task runs: `bash -c TASK_SCRIPT nnscale-task WORD…` runs the words with the
# task's own node rank and its step's first host (expanded by the task's shell, not the batch one).
TASK_SCRIPT = ('head=$(scontrol show hostnames "$SLURM_STEP_NODELIST" | head -n1); '
               'exec "$@" --nproc "$NNSCALE_NPROC" --nnodes "$SLURM_STEP_NUM_NODES" '
               '--node-rank "$SLURM_NODEID" --rdzv-endpoint "$head:$NNSCALE_PORT"')
FINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY",
                "PREEMPTED", "BOOT_FAIL", "DEADLINE")


@dataclass(frozen=True, slots=True)
class SlurmJob:
    model: str
    nodes: int
    gpus_per_node: int  # 0: a CPU job
    nproc_per_node: tuple[int, ...]
    scale_args: tuple[str, ...]  # options passed on to `nnscale scale` (batch, precision, …)
    db: str
    run: str
    partition: str | None = None
    time: str | None = None
    account: str | None = None
    cpus_per_node: int | None = None
    port: int | None = None  # None: a random free port (netutil.choose_port), fixed at creation
    sbatch_args: tuple[str, ...] = ()
    output_dir: Path = Path(".")

    def __post_init__(self) -> None:
        if self.nodes < 1:
            raise UserError(f"--nodes {self.nodes}: expected a positive integer")
        if self.gpus_per_node < 0:
            raise UserError(f"--gpus-per-node {self.gpus_per_node}: expected 0 (CPU) or more")
        if self.gpus_per_node and max(self.nproc_per_node) > self.gpus_per_node:
            raise UserError(f"--nproc-per-node {max(self.nproc_per_node)} is more than "
                            f"--gpus-per-node {self.gpus_per_node}: one worker per GPU")
        if self.port is None:
            object.__setattr__(self, "port", choose_port())
        if not 1 <= self.port <= 65535:
            raise UserError(f"--port {self.port}: expected 1 to 65535")
        check_run_name(self.run, "--run")
        values = [("MODEL", self.model), ("--db", self.db), ("--partition", self.partition),
                  ("--time", self.time), ("--account", self.account),
                  ("--output-dir", self.output_dir)]
        values += [("--sbatch-arg", a) for a in self.sbatch_args]
        values += [("option", a) for a in self.scale_args]
        for option, value in values:
            if value is not None:
                check_no_control(option, value)

    @property
    def device(self) -> str:
        return "cuda" if self.gpus_per_node else "cpu"

    def node_counts(self) -> list[int]:
        counts, n = [], 1
        while n < self.nodes:
            counts.append(n)
            n *= 2
        return counts + [self.nodes]


def filesystem_type(path: Path) -> str | None:
    """The type of the file system holding `path` (longest mount point in /proc/mounts)."""
    path = path.resolve()
    best, fstype = "", None
    try:
        lines = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) < 3:
            continue
        mount = parts[1].replace("\\040", " ")
        inside = str(path) == mount or str(path).startswith(mount.rstrip("/") + "/")
        if inside and len(mount) > len(best):
            best, fstype = mount, parts[2]
    return fstype


def check_store(db: str) -> list[str]:
    """UserError for SQLite on a network file system; warnings for SQLite elsewhere."""
    target = resolve_url(db)
    if target.backend != "sqlite":
        return []
    if target.sqlite_path is None:
        raise UserError("--db: an in-memory store cannot receive a batch job's results; give a "
                        "postgresql:// URL (or an SQLite file on this host's local disk)")
    fstype = filesystem_type(target.sqlite_path.parent)
    if fstype in NETWORK_FS or (fstype or "").startswith("nfs"):
        raise UserError(f"--db {target.sqlite_path} is on a network file system ({fstype}); SQLite's "
                        "locking and WAL do not work across hosts (sqlite.org/wal.html): use "
                        "PostgreSQL, --db postgresql://USER@HOST/DATABASE")
    return [f"SQLite store {target.sqlite_path}: the job's first node writes it, so it must be this "
            "host (a one-host cluster); on a real cluster use PostgreSQL (--db postgresql://…)"]


def _q(s) -> str:
    return shlex.quote(str(s))


def _directive(option: str, value) -> str:
    text = str(value)
    if not text or any(c.isspace() for c in text):
        raise UserError(f"{option} {text!r}: SLURM option values cannot be empty or contain spaces")
    return f"#SBATCH {option}={text}"


def render_script(job: SlurmJob) -> str:
    """The sbatch script. Each task runs the fixed TASK_SCRIPT with the command's words as its
    arguments, so $SLURM_NODEID and the step's node list are the task's, not the batch shell's, and
    no value can change what the script does (module doc)."""
    lines = ["#!/bin/bash", _directive("--job-name", f"nnscale-{job.model}"),
             f"#SBATCH --nodes={job.nodes}", "#SBATCH --ntasks-per-node=1",
             _directive("--output", job.output_dir.resolve() / "nnscale-%j.out")]
    if job.gpus_per_node:
        # Whole nodes: a benchmark shares them with nobody, and the workers get every core.
        lines += [f"#SBATCH --gpus-per-node={job.gpus_per_node}", "#SBATCH --exclusive"]
    cpus = job.cpus_per_node or (None if job.gpus_per_node else max(job.nproc_per_node))
    if cpus:
        lines.append(f"#SBATCH --cpus-per-task={cpus}")
    named = (("--partition", job.partition), ("--time", job.time), ("--account", job.account))
    for opt, value in named:
        if value:
            lines.append(_directive(opt, value))
    for arg in job.sbatch_args:
        if not arg.startswith("-") or any(c.isspace() for c in arg):
            raise UserError(f"--sbatch-arg {arg!r}: give one sbatch option, e.g. --exclusive or "
                            "--qos=high")
        lines.append(f"#SBATCH {arg}")
    inner = [sys.executable, "-m", "nnscale", "scale", job.model, "--device", job.device,
             "--db", job.db, "--run", job.run, *job.scale_args]
    for what, value in (("python", sys.executable), ("source directory", SRC_DIR),
                        ("working directory", Path.cwd())):
        check_no_control(what, value)
    lines += [
        "# Written by `nnscale slurm` (docs/distributed.md): one job step per node count, one task",
        "# per node, each task running `nnscale scale`, which starts torchrun (c10d rendezvous).",
        "set -euo pipefail",
        f"export PYTHONPATH={_q(SRC_DIR)}${{PYTHONPATH:+:$PYTHONPATH}}",
        f"cd {_q(Path.cwd())}",
        f"export NNSCALE_PORT={int(job.port)}  # the c10d rendezvous port on each step's first host",
        f"TASK_SCRIPT={_q(TASK_SCRIPT)}",
        f"TASK=({' '.join(_q(a) for a in inner)})",
        f"for n in {' '.join(map(str, job.node_counts()))}; do",
        "  if [ \"$n\" -eq 1 ]; then export NNSCALE_NPROC="
        f"{','.join(map(str, job.nproc_per_node))}; "
        f"else export NNSCALE_NPROC={max(job.nproc_per_node)}; fi",
        # Steps do not inherit --cpus-per-task from sbatch in every Slurm version: say it again.
        '  srun --nodes="$n" --ntasks="$n" --ntasks-per-node=1 --kill-on-bad-exit=1 \\',
        '    --cpus-per-task="${SLURM_CPUS_PER_TASK:-$SLURM_CPUS_ON_NODE}"'
        + (f" --gpus-per-node={job.gpus_per_node}" if job.gpus_per_node else "")
        + ' bash -c "$TASK_SCRIPT" nnscale-task "${TASK[@]}"',
        "done",
    ]
    return "\n".join(lines) + "\n"


def script_path(job: SlurmJob) -> Path:
    """Where the script goes: the run name made a plain file name (no "/", no "..")."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", job.run).lstrip(".") or "run"
    return job.output_dir / f"nnscale-{safe}.sbatch"


def write_script(job: SlurmJob) -> Path:
    """Write the script, readable by its owner only (0600, whatever the umask): it names the store."""
    path = script_path(job)
    text = render_script(job)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w") as f:
            os.fchmod(f.fileno(), 0o600)  # an existing file keeps its mode through O_CREAT
            f.write(text)
    except OSError as e:
        raise UserError(f"cannot write the sbatch script {path}: {e.strerror}") from None
    return path


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise UserError(f"`{name}` is not on PATH: run this on a SLURM login node (or without "
                        "--submit, and submit the written script there with sbatch)")
    return path


def _run(cmd: list[str], what: str, env: dict | None = None) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
    except subprocess.TimeoutExpired:
        raise UserError(f"{what} did not answer within 120 s: is slurmctld running and "
                        "reachable?") from None


def submit(script: Path, password: str | None = None) -> str:
    """Submit with sbatch; the job id, or UserError with sbatch's own message. A store password
    goes to the job as PGPASSWORD in sbatch's environment (never in a file or an argv)."""
    env = None if password is None else dict(os.environ, PGPASSWORD=password)
    out = _run([_tool("sbatch"), "--parsable", str(script)], "sbatch", env)
    if out.returncode != 0:
        lines = [line for line in out.stderr.strip().splitlines() if line.strip()]
        raise UserError(f"sbatch rejected the job: {lines[-1] if lines else f'exit {out.returncode}'}")
    return out.stdout.strip().split(";")[0]


def job_state(job_id: str) -> tuple[str, str]:
    """(state, exit code) from `scontrol show job` (works without accounting). A job the controller
    no longer knows (purged MinJobAge seconds after it ended) is "PURGED"."""
    out = _run([_tool("scontrol"), "show", "job", "-o", job_id], "scontrol")
    if out.returncode != 0 and "Invalid job id" in out.stderr:
        return "PURGED", "?"
    fields = dict(f.split("=", 1) for f in out.stdout.split() if "=" in f)
    return fields.get("JobState", "UNKNOWN"), fields.get("ExitCode", "?")


def follow(job_id: str, output: Path, echo=print, poll_s: float = 1.0,
           wait_s: float | None = None) -> str:
    """Print the job's output, line by line as it grows, until the job ends; its final state."""
    offset, start, partial = 0, time.monotonic(), ""
    while True:
        state, code = job_state(job_id)
        final = state.split()[0] in FINAL_STATES + ("PURGED",)
        if output.exists():
            with open(output, errors="replace") as f:
                f.seek(offset)
                text = partial + f.read()
                offset = f.tell()
            lines = text.split("\n")
            partial = "" if final else lines.pop()  # an unfinished line waits for its end
            for line in lines:
                if line or not final:
                    echo(f"[job {job_id}] {line}")
        if final:
            return f"{state} (exit code {code})"
        if wait_s is not None and time.monotonic() - start > wait_s:
            return f"{state} (still running; stopped following after {wait_s:g} s)"
        time.sleep(poll_s)


def default_run_name(model: str) -> str:
    return f"slurm-{model.replace(':', '_')}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
