"""`nnscale slurm MODEL --nodes N --gpus-per-node G [--submit]`: a scaling study as a SLURM job."""

from __future__ import annotations

import sys
from argparse import Namespace
from pathlib import Path

from nnscale.cli.scale import add_workload_options, config_from_args, print_points, workload_argv
from nnscale.distributed.config import parse_nproc
from nnscale.distributed.slurm import (SlurmJob, check_store, default_run_name, follow, submit,
                                       write_script)
from nnscale.errors import UserError
from nnscale.store import DEFAULT_URL, open_store, resolve_url
from nnscale.store.url import without_password


def add_parser(sub) -> None:
    p = sub.add_parser("slurm", help="write (and --submit) an sbatch job running `scale` on nodes")
    p.add_argument("model", help="zoo name, torchvision:NAME or timm:NAME")
    p.add_argument("--nodes", type=int, required=True, help="nodes to scale up to (1, 2, 4, … N)")
    p.add_argument("--gpus-per-node", type=int, required=True, help="0 for a CPU job")
    p.add_argument("--nproc-per-node", help="workers per node at 1 node, e.g. 1,2,4,8 (default: "
                                            "powers of 2 up to the GPUs; 1 on CPU)")
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if GPUs, else cpu")
    p.add_argument("--cpus-per-node", type=int, help="CPU cores per node (--cpus-per-task)")
    p.add_argument("--partition")
    p.add_argument("--time", help="sbatch --time, e.g. 01:00:00")
    p.add_argument("--account")
    p.add_argument("--sbatch-arg", action="append", default=[], metavar="OPT",
                   help="another sbatch option, e.g. --sbatch-arg=--exclusive (repeatable)")
    p.add_argument("--port", type=int, help="c10d rendezvous port on each step's first node "
                                             "(default: a random free port per job)")
    add_workload_options(p)
    p.add_argument("--db", help="results store; PostgreSQL on clusters (default sqlite:///nnscale.db);"
                                " a password is passed as PGPASSWORD, never written")
    p.add_argument("--run", help="run name (default: slurm-MODEL-TIME-PID)")
    p.add_argument("--output-dir", default=".", help="where the script and the job's log go")
    p.add_argument("--submit", action="store_true", help="submit with sbatch and follow the job")
    p.set_defaults(handle=handle)


def _nproc(args) -> tuple[int, ...]:
    if args.nproc_per_node:
        return parse_nproc(args.nproc_per_node)
    values, n = [], 1
    while n < max(args.gpus_per_node, 1):
        values.append(n)
        n *= 2
    return tuple(values + [max(args.gpus_per_node, 1)])


def make_job(args) -> tuple[SlurmJob, list[str], object]:
    """The job from the arguments, every scale option checked here (UserError) before a submission."""
    device = args.device or ("cuda" if args.gpus_per_node else "cpu")
    if device == "cuda" and not args.gpus_per_node:
        raise UserError("--device cuda needs --gpus-per-node 1 or more")
    if device == "cpu" and args.gpus_per_node:
        raise UserError("--device cpu with --gpus-per-node > 0 would hold GPUs unused; give "
                        "--gpus-per-node 0")
    nproc = _nproc(args)
    # The scale configurations of the first and the last step, for their checks (batch options,
    # divisibility); the last one also describes the whole series when its points are printed.
    for nodes in sorted({1, args.nodes}):
        probe = Namespace(**{**vars(args), "device": device}, nproc=",".join(map(str, nproc)),
                          nnodes=nodes, node_rank=0, local_addr=None,
                          rdzv_endpoint="127.0.0.1:1" if nodes > 1 else None)
        cfg = config_from_args(probe)
    # Without its password (handed on as PGPASSWORD), an SQLite path made absolute: the job runs
    # elsewhere.
    db, _password = without_password(resolve_url(args.db or DEFAULT_URL))
    warnings = check_store(db)
    out = Path(args.output_dir)
    if not out.is_dir():
        raise UserError(f"--output-dir {out}: not a directory")
    job = SlurmJob(model=args.model, nodes=args.nodes, gpus_per_node=args.gpus_per_node,
                   nproc_per_node=nproc, scale_args=tuple(workload_argv(args)), db=db,
                   run=args.run or default_run_name(args.model), partition=args.partition,
                   time=args.time, account=args.account, cpus_per_node=args.cpus_per_node,
                   port=args.port, sbatch_args=tuple(args.sbatch_arg), output_dir=out)
    return job, warnings, cfg


def handle(args) -> int:
    job, warnings, cfg = make_job(args)
    for message in warnings:
        print(f"nnscale: warning: {message}", file=sys.stderr)
    _, password = without_password(resolve_url(args.db or DEFAULT_URL))
    full_db = args.db or DEFAULT_URL  # with its password: for this process only
    open_store(full_db).close()  # the store must open here too, before anything is submitted
    script = write_script(job)
    print(f"wrote {script}")
    if password is not None:
        print("the --db password is not in the script: --submit hands it to the job as "
              "PGPASSWORD; to submit by hand, export PGPASSWORD or use ~/.pgpass first")
    if not args.submit:
        print(f"submit it with: sbatch {script}")
        return 0
    job_id = submit(script, password)
    print(f"submitted job {job_id}; run {job.run!r} in {job.db}; following (Ctrl-C stops "
          "following, not the job)")
    state = follow(job_id, job.output_dir / f"nnscale-{job_id}.out")
    with open_store(full_db, create=False) as store:
        points = store.measurements(job.run) if job.run in {r.name for r in store.runs()} else []
    if points:
        print()
        print_points(points, cfg, "table")
    if not state.startswith("COMPLETED"):
        print(f"nnscale: error: job {job_id} ended {state}; its log: "
              f"{job.output_dir / f'nnscale-{job_id}.out'}", file=sys.stderr)
        return 1
    print(f"\njob {job_id} {state}; {len(points)} point(s) in run {job.run!r}")
    return 0
