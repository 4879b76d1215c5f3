"""Benchmark: the prediction at the one configuration a CPU study also measures, five calibrations.

The study's local prediction (pytorch-mnist-net, batch 64, 2 workers of 1 pinned thread) is fitted
to the run's all-reduces and starts from one worker's compute. Which all-reduces, how the model
reads them (docs/prediction.md, "The measured curve") and whose compute it starts from (the lone
worker, or the loaded reference: "Co-located workers") decide its error. Per repetition, into a
fresh store:

1. `nnscale scale MODEL --nproc 1,2 --batch-per-worker B --loaded-reference` (run `r`): the lone
   worker, two one-worker copies at once, and the 2-worker point, interleaved over 3 launches;
2. `nnscale allreduce --nproc 2 --sizes ...` twice into `r`, once back to back and once
   `--compute-before 20` (the study's calibration), their order alternated between repetitions;
3. the scale points copied into runs with the back-to-back calls or the calls after compute, with
   or without the loaded reference; each predicted at the measured configuration by
   `glue.predict.prediction_report` (what the study's report calls), with the measured curve (the
   model now) or without it (`calibrate.measured_calls` giving nothing: the alpha-beta line alone).

Prints, per repetition and calibration, predicted / measured - 1 in samples/s, the loaded
reference's compute over the lone worker's (the co-location factor), and the max |error| per calibration over the
repetitions. Needs 2 cores; about 3 min a repetition on the 2-core VM.

    python bench/local_prediction.py --reps 6
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
    nnscale("scale", model, "--nproc", "1,2", "--batch-per-worker", str(batch), "--loaded-reference",
            "--db", db, "--run", "r")
    order = ("20", "0") if rep % 2 == 0 else ("0", "20")
    for ms in order:
        nnscale("allreduce", "--nproc", "2", "--sizes", SIZES, "--compute-before", ms, "--db", db, "--run", "r")


# (name, all-reduces after compute?, with the loaded reference?, measured curve?)
CALIBRATIONS = (("after compute, curve, loaded reference (the model now)", True, True, True),
                ("after compute, curve, lone worker", True, False, True),
                ("after compute, line, loaded reference", True, True, False),
                ("back to back, curve, loaded reference", False, True, True),
                ("back to back, line, lone worker (session 9's model)", False, False, False))


def errors(db: str, model: str, batch: int) -> tuple[dict[str, float], float]:
    """Prediction error at the measured 2-worker point, per calibration; and the loaded reference's
    compute over the lone worker's (points.loaded_ratio, the model's co-location factor)."""
    from nnscale.glue.predict import PredictRequest, prediction_report
    from nnscale.predict import calibrate
    from nnscale.predict.points import loaded_ratio
    from nnscale.records import ALLREDUCE
    from nnscale.store import open_store

    with open_store(db, create=False) as store:
        records = store.measurements("r")
        for i, (_, after, loaded, _) in enumerate(CALIBRATIONS):
            run_id = store.create_run(f"c{i}")
            for m in records:
                w = m.workload
                if (w.kind == ALLREDUCE and (w.compute_before_ms > 0) != after) or (w.loaded and not loaded):
                    continue
                store.add_measurement(run_id, m)
    two = next(m for m in records if m.workload.kind != ALLREDUCE and m.workload.world_size == 2)
    lone = next(m for m in records if m.workload.kind != ALLREDUCE and m.workload.world_size == 1
                and not m.workload.loaded)
    busy = next(m for m in records if m.workload.loaded)
    measured = two.stats.throughput.samples_per_s
    out = {}
    real = calibrate.measured_calls
    for i, (name, _, _, curve) in enumerate(CALIBRATIONS):
        calibrate.measured_calls = real if curve else (lambda points: ())
        try:
            report = prediction_report(PredictRequest(model=model, device=f"measured:c{i}", store=db,
                                                      gpus_per_node=2, nodes="1", batch_per_gpu=batch))
        finally:
            calibrate.measured_calls = real
        out[name] = report["rows"][-1]["samples_per_s"] / measured - 1
    return out, loaded_ratio(busy, lone)


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
            errs, ratio = errors(db, args.model, args.batch)
            table.setdefault("co-location factor - 1", []).append(ratio - 1)
            print(f"rep {rep}: co-location factor (loaded / lone compute): {ratio:.3f}", flush=True)
            for name, e in errs.items():
                table.setdefault(name, []).append(e)
                print(f"rep {rep}: {name}: {100 * e:+.1f} %", flush=True)
    for name, es in table.items():
        print(f"{name}: {', '.join(f'{100 * e:+.1f}' for e in es)} %; max |error| "
              f"{100 * max(abs(e) for e in es):.1f} %")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
