"""`nnscale compare RUN_A RUN_B`: every point's change in median throughput from A to B, whether it
is significant (the 95 % CIs do not overlap), and the regressions. The work is `compare_runs`."""

from __future__ import annotations

from nnscale.cli import options
from nnscale.errors import UserError
from nnscale.format import render


def add_parser(sub) -> None:
    p = sub.add_parser("compare", help="per-point change between two runs, with significance")
    p.add_argument("run_a", metavar="RUN_A", help="the baseline run")
    p.add_argument("run_b", metavar="RUN_B", help="the run compared with it")
    options.add_store(p)
    options.add_format(p)
    p.add_argument("--fail-on-regression", action="store_true",
                   help="exit with code 1 when any point regressed (for CI)")
    p.set_defaults(handle=handle)


def compare_runs(run_a: str, run_b: str, db: str | None = None):
    """The `report.compare.Change` of every point of either run."""
    from nnscale.report.comparison import compare
    from nnscale.store import open_store

    with open_store(db, create=False) as store:
        a = store.measurements(run_a)
        b = store.measurements(run_b)
    return compare(a, b)


def handle(args) -> int:
    from nnscale.report import comparison as C

    if args.run_a == args.run_b:
        raise UserError(f"RUN_A and RUN_B are both {args.run_a!r}: give two different runs")
    changes = compare_runs(args.run_a, args.run_b, args.db)
    if args.format == "table":
        print(f"A = {args.run_a}, B = {args.run_b}; change = (B - A) / A of the median samples/s;"
              " significant = the 95 % CIs do not overlap\n")
        print(render(C.rows(changes), C.COLUMNS, "table"))
        print()
        print(C.summary(changes))
    else:
        print(render(C.rows(changes, raw=True), C.RAW_COLUMNS, args.format))
    regressed = any(c.regression for c in changes)
    return 1 if regressed and args.fail_on_regression else 0
