"""Benchmark: does a study reproduce? The same study twice, back to back, into two runs; then
`nnscale compare` between them and the share of points whose 95 % intervals overlap.

A benchmark is trusted when the same command tomorrow gives a number inside today's interval. Two
honest 95 % intervals of the same quantity overlap almost always (two independent estimates with
equal standard errors are disjoint only when they differ by more than 2·1.96·se, i.e. by more than
2.77 standard errors of their difference: probability 0.6 %). So the target is: >= 90 % of the
points' intervals overlap, and `nnscale compare` finds no significant change.

    python bench/reproducibility.py                                  # the default study (quick)
    python bench/reproducibility.py --nets alexnet,resnet50 --frameworks torch --budget 5m
    python bench/reproducibility.py --study my-study.yaml --db repro.db
    python bench/reproducibility.py --sweep "torchvision:resnet18 --mode inference --batch 16 --budget 20" --repeat 6

With `--sweep ARGS --repeat N` it runs `nnscale sweep ARGS` N times back to back instead (each a
fresh `nnscale` process and run) and counts, point by point, the pairs of runs whose intervals are
disjoint: of N runs' honest 95 % intervals, hardly any of the N(N-1)/2 pairs should be.

Each run is `nnscale.study.runner.run_study` (workers are fresh processes, as in `nnscale run`);
the comparison is the real `nnscale compare RUN_A RUN_B --format json` command. Prints, per run,
the study time and the share of stable points, then the overlap share and compare's verdicts.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
sys.path.insert(0, str(SRC))


def study_from(args):
    from nnscale.study.config import load_study, parse_duration_s
    from nnscale.zoo import model_info

    study = load_study(args.study, check_net=model_info)
    if args.nets:
        nets = tuple(n.strip() for n in args.nets.split(",") if n.strip())
        for n in nets:
            model_info(n)
        fnets = tuple(n for n in (study.framework_nets or nets) if n in nets) or None
        study = replace(study, nets=nets, framework_nets=fnets,
                        scale_net=study.scale_net if study.scale_net in nets else nets[0])
    if args.frameworks:
        study = replace(study, frameworks=tuple(args.frameworks.split(",")))
    if args.budget:
        study = replace(study, budget_s=parse_duration_s(args.budget, "--budget"))
    return study


def sweep_points(measurements) -> list:
    from nnscale.records import SWEEP

    return [m for m in measurements if m.workload.kind == SWEEP]


def stored_run(name: str, db: str) -> dict:
    """A run measured before (its study time is not known here)."""
    from nnscale.store import open_store

    with open_store(db, create=False) as store:
        sweeps = sweep_points(store.measurements(name))
    return {"run": name, "study_s": None, "points": len(sweeps),
            "ok": sum(m.status == "ok" for m in sweeps), "notes": []}


def one_run(study, name: str, db: str, out: Path, device: str) -> dict:
    from nnscale.study.runner import run_study

    t0 = time.monotonic()
    result = run_study(study, run=name, db=db, device=device, out=out / name,
                       command_line=f"bench/reproducibility.py ({name})")
    wall = time.monotonic() - t0
    sweeps = sweep_points(result.measurements)
    ok = sum(m.status == "ok" for m in sweeps)
    return {"run": name, "study_s": wall, "points": len(sweeps), "ok": ok, "notes": list(result.notes)}


def compare(a: str, b: str, db: str) -> list[dict]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    out = subprocess.run([sys.executable, "-m", "nnscale", "compare", a, b, "--db", db, "--format", "json"],
                         env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def overlap_summary(rows: list[dict]) -> dict:
    both = [r for r in rows if r["a"] is not None and r["b"] is not None]
    with_ci = [r for r in both if None not in (r["a_ci_low"], r["a_ci_high"], r["b_ci_low"], r["b_ci_high"])]
    overlap = [r for r in with_ci if r["a_ci_low"] <= r["b_ci_high"] and r["b_ci_low"] <= r["a_ci_high"]]
    verdicts: dict[str, int] = {}
    for r in rows:
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
    return {"points_in_both": len(both), "with_intervals": len(with_ci), "overlapping": len(overlap),
            "overlap_share": len(overlap) / len(with_ci) if with_ci else None,
            "significant": sum(bool(r["significant"]) for r in rows), "verdicts": verdicts,
            "disjoint": [f"{r['model']} {r['mode']} {r['framework']} batch {r['batch_size']} "
                         f"x{r['world_size']}: {r['change']:+.1%}" for r in with_ci if r not in overlap]}


def repeat_sweep(args, db: str) -> int:
    """The issue's experiment: one sweep command N times; disjoint pairs per point."""
    import itertools
    import shlex

    from nnscale.store import open_store

    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(SRC), os.environ.get("PYTHONPATH")])))
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    names = [f"rep-{stamp}-{i + 1}" for i in range(args.repeat)]
    walls = []
    for name in names:
        t0 = time.monotonic()
        subprocess.run([sys.executable, "-m", "nnscale", "sweep", *shlex.split(args.sweep), "--run", name,
                        "--db", db], env=env, check=True, stdout=subprocess.DEVNULL)
        walls.append(time.monotonic() - t0)
    with open_store(db, create=False) as store:
        runs = [{m.workload.key(): m for m in store.measurements(n)} for n in names]
    summary = []
    for key, first in runs[0].items():
        ms = [r.get(key) for r in runs]
        if any(m is None or m.status not in ("ok", "unstable") for m in ms):
            continue
        cis = [(m.stats.throughput.samples_per_s_ci_low, m.stats.throughput.samples_per_s_ci_high)
               for m in ms]
        pairs = list(itertools.combinations(range(len(ms)), 2))
        disjoint = [(i, j) for i, j in pairs if cis[i][1] < cis[j][0] or cis[j][1] < cis[i][0]]
        rates = [m.stats.throughput.samples_per_s for m in ms]
        w = first.workload
        print(f"{w.model} {w.mode} batch {w.batch_size}: medians "
              + ", ".join(f"{r:.4g}" for r in rates)
              + f" (spread {100 * (max(rates) - min(rates)) / min(rates):.1f} %)")
        for n, m, (lo, hi) in zip(names, ms, cis, strict=True):
            s = m.stats
            print(f"  {n}: {s.throughput.samples_per_s:.4g} [{lo:.4g}, {hi:.4g}] ±{100 * s.timing.rel_ci:.1f} % "
                  f"({s.processes.processes or 1} processes, {s.processes.worker_start or 'spawn'}; one "
                  f"process alone ±{100 * (s.processes.rel_ci_within or 0):.1f} %) {m.status}")
        print(f"  disjoint pairs: {len(disjoint)} of {len(pairs)}")
        summary.append({"key": key, "rates": rates, "cis": cis, "disjoint": len(disjoint),
                        "pairs": len(pairs)})
    print(json.dumps({"runs": names, "wall_s": walls, "points": summary, "db": db}, indent=1))
    return 0 if all(p["disjoint"] <= 1 for p in summary) else 1


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--study", default="quick", help="quick (default), paper or a YAML study file")
    p.add_argument("--nets", help="only these nets of the study, comma-separated (a subset)")
    p.add_argument("--frameworks", help="only these frameworks, comma-separated")
    p.add_argument("--budget", help="each run's study budget (default: the study's)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--db", default=None, help="results store (default: a new SQLite file under --out)")
    p.add_argument("--out", default="repro-out", help="reports and the default store go here")
    p.add_argument("--against", metavar="RUN", help="run A is this stored run of --db (e.g. the one "
                   "`make run` made, ./nnscale.db): only run B is measured")
    p.add_argument("--sweep", metavar="ARGS", help="instead of a study: `nnscale sweep ARGS`, --repeat times")
    p.add_argument("--repeat", type=int, default=6, help="runs of --sweep (default 6)")
    args = p.parse_args()
    if args.sweep:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        return repeat_sweep(args, args.db or str(out / "repro.db"))
    study = study_from(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    db = args.db or str(out / "repro.db")
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    if args.against:  # run A is already stored (e.g. the run `make run` just made): measure B only
        names = (args.against, f"repro-{stamp}-B")
        runs = [stored_run(args.against, db), one_run(study, names[1], db, out, args.device)]
    else:
        names = (f"repro-{stamp}-A", f"repro-{stamp}-B")
        runs = [one_run(study, n, db, out, args.device) for n in names]
    rows = compare(*names, db)
    s = overlap_summary(rows)
    for r in runs:
        took = "study time not known (stored before)" if r["study_s"] is None else f"study {r['study_s']:.0f} s"
        print(f"{r['run']}: {took}, {r['ok']}/{r['points']} sweep points stable "
              f"({100 * r['ok'] / max(r['points'], 1):.0f} %)")
    share = "n/a" if s["overlap_share"] is None else f"{100 * s['overlap_share']:.0f} %"
    print(f"intervals overlap: {s['overlapping']}/{s['with_intervals']} points ({share}); "
          f"nnscale compare: {s['significant']} significant changes; verdicts {s['verdicts']}")
    for d in s["disjoint"]:
        print(f"  disjoint: {d}")
    print(json.dumps({"study": study.name, "runs": runs, "summary": s, "db": db}, indent=1))
    return 0 if s["overlap_share"] is not None and s["overlap_share"] >= 0.9 else 1


if __name__ == "__main__":
    sys.exit(main())
