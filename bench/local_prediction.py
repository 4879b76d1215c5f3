"""Benchmark: the prediction at the one configuration a CPU study also measures, four calibrations.

The study's local prediction (pytorch-mnist-net, batch 64, 2 workers of 1 pinned thread) is fitted
to the run's all-reduces. Which all-reduces, and how the model reads them, decides its error
(docs/prediction.md, "The measured curve"). Per repetition, into a fresh store:

1. `nnscale scale MODEL --nproc 1,2 --batch-per-worker B` (run `r`);
2. `nnscale allreduce --nproc 2 --sizes ...` twice into `r`, once back to back and once
   `--compute-before 20` (the study's calibration), their order alternated between repetitions;
3. the scale points copied into run `b2b` with the back-to-back calls and into run `after` with
   the calls after compute; each predicted at the measured configuration by
   `glue.predict.prediction_report` (what the study's report calls), with the measured curve (the
   model now) and without it (`calibrate.measured_calls` giving nothing: the alpha-beta line
   alone, the model before).

Prints, per repetition and calibration, predicted / measured - 1 in samples/s, and the max |error|
per calibration over the repetitions. Needs 2 cores; about 2.5 min a repetition on the 2-core VM.

    python bench/local_prediction.py --reps 5
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = "1K,4K,16K,64K,256K,1M,4M,16M"  # the study's calibration sizes (study.runner)


def nnscale(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "nnscale", *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)


def measure(db: str, model: str, batch: int, rep: int) -> None:
    nnscale("scale", model, "--nproc", "1,2", "--batch-per-worker", str(batch), "--db", db, "--run", "r")
    order = ("20", "0") if rep % 2 == 0 else ("0", "20")
    for ms in order:
        nnscale("allreduce", "--nproc", "2", "--sizes", SIZES, "--compute-before", ms, "--db", db, "--run", "r")


def errors(db: str, model: str, batch: int) -> dict[str, float]:
    """Prediction error at the measured 2-worker point, per calibration."""
    from nnscale.glue.predict import PredictRequest, prediction_report
    from nnscale.predict import calibrate
    from nnscale.records import ALLREDUCE
    from nnscale.store import open_store

    with open_store(db, create=False) as store:
        records = store.measurements("r")
        for name, after in (("b2b", False), ("after", True)):
            run_id = store.create_run(name)
            for m in records:
                if m.workload.kind != ALLREDUCE or (m.workload.compute_before_ms > 0) == after:
                    store.add_measurement(run_id, m)
    two = next(m for m in records if m.workload.kind != ALLREDUCE and m.workload.world_size == 2)
    measured = two.stats.throughput.samples_per_s
    out = {}
    real = calibrate.measured_calls
    for run in ("b2b", "after"):
        for curve in (True, False):
            calibrate.measured_calls = real if curve else (lambda points: ())
            try:
                report = prediction_report(PredictRequest(model=model, device=f"measured:{run}", store=db,
                                                          gpus_per_node=2, nodes="1", batch_per_gpu=batch))
            finally:
                calibrate.measured_calls = real
            predicted = report["rows"][-1]["samples_per_s"]
            out[f"{'after 20 ms of compute' if run == 'after' else 'back to back'}, "
                f"{'measured curve' if curve else 'alpha-beta line'}"] = predicted / measured - 1
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--model", default="pytorch-mnist-net")
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    table: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            db = str(Path(tmp) / f"rep{rep}.db")
            measure(db, args.model, args.batch, rep)
            for name, e in errors(db, args.model, args.batch).items():
                table.setdefault(name, []).append(e)
                print(f"rep {rep}: {name}: {100 * e:+.1f} %", flush=True)
    for name, es in table.items():
        print(f"{name}: {', '.join(f'{100 * e:+.1f}' for e in es)} %; max |error| "
              f"{100 * max(abs(e) for e in es):.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
