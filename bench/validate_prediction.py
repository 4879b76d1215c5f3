"""Leave-one-out validation of the performance model on real measured runs (issue 5).

Measures into one store:
- run `local`: `nnscale scale MODEL --nproc 1,2` at each batch per worker (--batch, default 8,32; one
  `nnscale scale` per batch, `--batch-per-worker` takes one number) and `nnscale allreduce --nproc 2`
  (--sizes, default 16K,64K,256K,1M,4M) on this machine (gloo over loopback, no cap), its calls
  timed after 20 ms of compute as the study's calibration times them (--compute-before; the
  calls as a DDP step meets them, docs/prediction.md "The measured curve"); the
  world_size = 1 points are the compute references;
- run `caps`: two "nodes" in two network namespaces joined by a veth pair (10.213.0.1/24 and
  10.213.0.2/24, nothing else, no route off the pair), one worker each on its own share of the
  cores, `tc tbf` on both ends at each cap (bucket: 1 ms of tokens, at least 32 kbit); `nnscale
  allreduce` and `nnscale scale` (each batch) with `--bandwidth-cap RATE --bandwidth-cap-burst
  BURST`, so every point carries its cap and its bucket (workload fields link_cap_bit_per_s and
  link_cap_burst_bytes).
Then runs `validate_stored_run(["local", "caps"], DB)` (leave-one-out over both runs pooled) and
prints the Markdown of nnscale.predict.leave_one_out.markdown: the configurations (the training steps,
held to the 10 % target) and the calibration inputs (the all-reduce points, a diagnostic).

Needs root and iproute2 (ip, tc). The namespaces (and with them the veth pair and its qdiscs) are
deleted in a finally block, and every process this script started is killed if still alive.

    sudo .venv/bin/python bench/validate_prediction.py --db /tmp/validate.db

With --reuse-db PATH it measures nothing (no root needed) and validates the runs `local` and `caps`
already stored in PATH, e.g. after a change to the model:

    .venv/bin/python bench/validate_prediction.py --reuse-db /tmp/validate.db
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

SRC = str(Path(__file__).resolve().parents[1] / "src")
ADDR = {"a": "10.213.0.1", "b": "10.213.0.2"}
PORT = 29481


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def env() -> dict[str, str]:
    e = dict(os.environ)
    e["PYTHONPATH"] = SRC + (os.pathsep + e["PYTHONPATH"] if e.get("PYTHONPATH") else "")
    return e


def sh(*args: str) -> None:
    subprocess.run(list(args), check=True, capture_output=True, text=True, timeout=30)


CHILDREN: list[subprocess.Popen] = []


def spawn(argv: list[str], cpus: set[int] | None = None) -> subprocess.Popen:
    def pre():
        if cpus:
            os.sched_setaffinity(0, cpus)
    p = subprocess.Popen(argv, env=env(), text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         start_new_session=True, preexec_fn=pre)  # noqa: PLW1509 (no threads here)
    CHILDREN.append(p)
    return p


def finish(procs: list[subprocess.Popen], timeout: float) -> None:
    try:
        outs = [p.communicate(timeout=timeout) for p in procs]
    finally:
        kill(procs)
    for p, (_, err) in zip(procs, outs):
        if p.returncode != 0:
            raise SystemExit(f"failed ({p.returncode}): {' '.join(p.args)}\n{err[-3000:]}")


def kill(procs) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)  # its own session: torchrun and its workers too
            except ProcessLookupError:
                pass
            p.wait()


def burst(rate: str) -> str:
    """tbf's bucket: 1 ms of tokens at RATE, at least 32 kbit. tc-tbf(8): a bucket smaller than the
    tokens arriving per timer tick cannot deliver the rate; with the 32 kbit of
    tests/distributed/test_two_nodes.py the 1000mbit cap delivered about 370 Mbit/s here."""
    units = {"kbit": 1e3, "mbit": 1e6, "gbit": 1e9}
    for unit, f in units.items():
        if rate.endswith(unit):
            return f"{max(32, round(float(rate[: -len(unit)]) * f / 1e3 / 1e3))}kbit"
    raise SystemExit(f"cap {rate!r}: give RATE in kbit, mbit or gbit")


def nnscale(*args: str) -> list[str]:
    return [sys.executable, "-m", "nnscale", *args]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--db", default="/tmp/nnscale-validate.db")
    ap.add_argument("--model", default="pytorch-mnist-net")
    ap.add_argument("--batch", default="8,32", help="batches per worker, one `nnscale scale` each")
    ap.add_argument("--caps", default="1000mbit,200mbit,50mbit")
    ap.add_argument("--sizes", default="16K,64K,256K,1M,4M", help="all-reduce sizes")
    ap.add_argument("--budget", type=float, default=3.0)
    ap.add_argument("--compute-before", type=float, default=20.0, metavar="MS",
                    help="the local all-reduces' compute before each call, as the study's calibration "
                         "(0: back to back; the capped runs always time back to back)")
    ap.add_argument("--reuse-db", metavar="PATH",
                    help="measure nothing: validate the runs local and caps already stored in PATH")
    args = ap.parse_args()
    if args.reuse_db:
        if not os.path.exists(args.reuse_db):
            raise SystemExit(f"{args.reuse_db} does not exist")
        return validate(os.path.abspath(args.reuse_db))
    if os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("tc"):
        raise SystemExit("needs root and iproute2 (ip, tc)")
    if os.path.exists(args.db):
        raise SystemExit(f"{args.db} exists; give a new --db")  # one fresh store per validation
    db = os.path.abspath(args.db)
    budget = str(args.budget)
    try:
        batches = [str(int(b)) for b in args.batch.split(",") if b.strip()]
    except ValueError:
        raise SystemExit(f"--batch {args.batch!r}: give batches per worker like 8,32") from None

    for batch in batches:
        log(f"local: scale {args.model} --nproc 1,2 --batch-per-worker {batch}")
        finish([spawn(nnscale("scale", args.model, "--nproc", "1,2", "--batch-per-worker", batch,
                              "--budget", budget, "--db", db, "--run", "local"))], 600)
    log(f"local: allreduce --nproc 2 --compute-before {args.compute_before:g}")
    finish([spawn(nnscale("allreduce", "--nproc", "2", "--sizes", args.sizes, "--budget", budget,
                          "--compute-before", str(args.compute_before), "--db", db, "--run", "local"))], 600)

    tag = uuid.uuid4().hex[:6]
    ns = {"a": f"nnsA-{tag}", "b": f"nnsB-{tag}"}
    dev = {"a": f"nnv{tag}a", "b": f"nnv{tag}b"}
    made: list[str] = []
    cores = sorted(os.sched_getaffinity(0))
    share = [set(cores[: max(1, len(cores) // 2)]), set(cores[len(cores) // 2:]) or set(cores)]
    try:
        for side in "ab":
            sh("ip", "netns", "add", ns[side])
            made.append(ns[side])
        sh("ip", "link", "add", dev["a"], "type", "veth", "peer", "name", dev["b"])
        for side in "ab":
            sh("ip", "link", "set", dev[side], "netns", ns[side])
            sh("ip", "-n", ns[side], "addr", "add", f"{ADDR[side]}/24", "dev", dev[side])
            sh("ip", "-n", ns[side], "link", "set", dev[side], "up")
            sh("ip", "-n", ns[side], "link", "set", "lo", "up")
        port = PORT
        for rate in args.caps.split(","):
            for side in "ab":  # tbf shapes what leaves an interface: cap both directions
                sh("ip", "netns", "exec", ns[side], "tc", "qdisc", "replace", "dev", dev[side], "root",
                   "tbf", "rate", rate, "burst", burst(rate), "latency", "400ms")
            jobs = [["allreduce", "--sizes", args.sizes]]
            jobs += [["scale", args.model, "--batch-per-worker", batch] for batch in batches]
            for what in jobs:
                port += 1
                log(f"{rate}: {' '.join(what)} on two nodes")
                common = [*what, "--nproc", "1", "--nnodes", "2", "--bandwidth-cap", rate,
                          "--bandwidth-cap-burst", burst(rate), "--budget", budget, "--timeout", "240",
                          "--rdzv-endpoint", f"{ADDR['a']}:{port}", "--db", db, "--run", "caps"]
                procs = [spawn(["ip", "netns", "exec", ns[side], *nnscale(*common, "--node-rank", str(rank))],
                               share[rank]) for rank, side in enumerate("ab")]
                finish(procs, 300)
    finally:
        kill(CHILDREN)
        for name in made:
            subprocess.run(["ip", "netns", "del", name], capture_output=True, timeout=30, check=False)

    return validate(db)


def validate(db: str) -> int:
    """Leave-one-out over runs local and caps pooled, then each alone; 0 if the pooled configurations
    (the training steps) pass."""
    sys.path.insert(0, SRC)
    from nnscale.predict.leave_one_out import markdown
    from nnscale.glue.predict import validate_stored_run

    v = validate_stored_run(["local", "caps"], db)
    print(markdown(v))  # the configurations (held to the target), then the calibration inputs
    if v.skipped:
        print("\nskipped: " + "; ".join(v.skipped))
    for run in ("local", "caps"):  # each setup alone: loopback and the veth pair differ in alpha and B
        print("\n" + markdown(validate_stored_run(run, db)))
    return 0 if v.passed else 1


if __name__ == "__main__":
    sys.exit(main())
