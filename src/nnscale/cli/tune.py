"""`nnscale tune MODEL`: try the precision / memory-format / compile combinations the device
supports and report the fastest configuration per batch size (`nnscale.measure.tune.run_tune`)."""

from __future__ import annotations

from nnscale.cli import options
from nnscale.cli.measuring import common_kwargs, measure, policy_from
from nnscale.errors import UserError
from nnscale.format import render
from nnscale.measure.progress import config_label, rate
from nnscale.measure.tune import TuneConfig, candidates, run_tune
from nnscale.cli.values import parse_batches
from nnscale.measure.validate import check_seconds
from nnscale.records import MEASURED_STATUSES, PRECISIONS

SUMMARY = (("mode", "mode"), ("batch", "batch"), ("best", "fastest configuration"),
           ("samples_per_s", "img/s"), ("speedup", "vs fp32 NCHW eager"), ("tried", "tried"))


def add_parser(sub) -> None:
    p = sub.add_parser("tune", help="find the fastest precision / memory format / compile setting")
    options.add_measuring_command(p, budget=10.0)
    p.add_argument("--batch", default="1,16", metavar="LIST", help="batch sizes (default 1,16)")
    options.add_precision_list(p)
    p.add_argument("--no-compile", action="store_true", help="do not try torch.compile")
    p.add_argument("--compile-timeout", type=float, default=300.0, metavar="SECONDS",
                   help="longest compilation before a candidate counts as timed out (default 300)")
    p.set_defaults(handle=handle)


def config_from(args) -> TuneConfig:
    batches = parse_batches(args.batch)
    if batches is None:
        raise UserError("tune needs explicit batch sizes (e.g. --batch 1,16), not auto")
    precisions = None
    if args.precision:
        precisions = tuple(dict.fromkeys(p.strip() for p in args.precision.split(",")))
        bad = [p for p in precisions if p not in PRECISIONS]
        if bad:
            raise UserError(f"unknown precision {bad[0]!r} in --precision: expected a list of "
                            f"{', '.join(PRECISIONS)}")
    check_seconds(args.compile_timeout, "--compile-timeout")
    return TuneConfig(**common_kwargs(args), batches=batches, precisions=precisions,
                      compile=(False,) if args.no_compile else None,
                      compile_timeout_s=args.compile_timeout, policy=policy_from(args, 5.0))


def summary_rows(result) -> list[dict]:
    rows = []
    for c in result.choices:
        best = c.best
        rows.append({
            "mode": c.mode, "batch": c.batch_size,
            "best": config_label(best.workload) if best else "none ran",
            "samples_per_s": rate(best.stats.throughput.samples_per_s) if best else "",
            "speedup": f"{c.speedup:.2f}x" if c.speedup else "",
            "tried": f"{sum(m.status in MEASURED_STATUSES for m in c.tried)}/{len(c.tried)} ran",
        })
    return rows


def handle(args) -> int:
    # candidates: device, precisions, input checked before the store is touched
    result, where = measure(args, "tune", TuneConfig, config_from, candidates, run_tune)
    print()
    print(render(summary_rows(result), SUMMARY))
    print(f"\nall points in run {result.run!r} of {where} (`nnscale results {result.run}`)")
    return 0
