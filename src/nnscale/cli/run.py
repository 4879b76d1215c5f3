"""`nnscale run`: the whole study in one command (statistics, peaks, sweeps, scaling, prediction,
report). The work is `nnscale.study.runner.run_study`, callable from Python."""

from __future__ import annotations

from dataclasses import replace

from nnscale.cli import options
from nnscale.measure.methodology import check_interference_max
from nnscale.study.config import BUILTIN, load_study, parse_duration_s


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run a study end to end and write its report")
    p.add_argument("--study", default="quick",
                   help=f"{' or '.join(BUILTIN)} (default quick), or a YAML study file")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto (cuda when present)")
    p.add_argument("--budget", help="the whole study's time, seconds or 30s/10m/1h "
                                    "(default: the study's own)")
    options.add_resumable_run(p)
    options.add_store(p)
    p.add_argument("--out", help="report directory (default report-RUN)")
    p.add_argument("--processes", type=int, help="fresh worker processes per point (default: the "
                   "study's, 3 for the built-in ones); a noisy point gets up to twice as many")
    options.add_interference_max(p)
    p.set_defaults(handle=handle)


def handle(args) -> int:
    from nnscale.errors import UserError
    from nnscale.study.runner import run_study
    from nnscale.zoo import model_info

    study = load_study(args.study, check_net=model_info)
    if args.budget is not None:
        study = replace(study, budget_s=parse_duration_s(args.budget, "--budget"))
    if args.processes is not None:
        if args.processes < 1:
            raise UserError(f"bad --processes {args.processes}: expected an integer >= 1 "
                            "(3 or more for an interval across processes)")
        study = replace(study, processes=args.processes, max_processes=2 * args.processes)
    check_interference_max(args.interference_max)
    study = replace(study, interference_max=args.interference_max)
    if args.device not in ("auto", "cpu", "cuda") and not args.device.startswith("cuda:"):
        raise UserError(f"--device {args.device!r}: expected cpu, cuda or auto")
    result = run_study(study, run=args.run, db=args.db, device=args.device, out=args.out)
    for note in result.notes:
        print(f"note: {note}")
    bad = sum(1 for m in result.measurements if m.status not in ("ok",))
    print(f"{len(result.measurements)} points in run {result.run!r} ({bad} flagged: see the report)")
    print(f"report: {result.report_dir / 'index.html'}")
    return 0
