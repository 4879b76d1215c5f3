"""`nnscale report RUN -o DIR`: a run's report as index.html (self-contained), report.md,
points.csv, report.json and figures/*.svg. The work is `write_run_report`, callable from Python."""

from __future__ import annotations

import json
from pathlib import Path

from nnscale.cli import options
from nnscale.errors import UserError
from nnscale.report.predictions import check_rows
from nnscale.glue.report import prediction_rows, write_run_report


def add_parser(sub) -> None:
    p = sub.add_parser("report", help="plots and tables of a run: HTML, Markdown, CSV, JSON")
    p.add_argument("run", nargs="?", help="run name (default: the newest run in the store)")
    p.add_argument("-o", "--out", metavar="DIR",
                   help="directory to write into (default: report-RUN in the current directory)")
    options.add_store(p)
    p.add_argument("--predictions", metavar="FILE",
                   help="predictions to draw beside the measured points: the output of "
                        "`nnscale predict --format json` (or a JSON list of them)")
    p.add_argument("--title", help="the report's title (default: the run's name)")
    p.add_argument("--no-netstats", action="store_true",
                   help="leave out the network statistics beside the seed's (they import torch)")
    p.set_defaults(handle=handle)


def load_predictions(path: str | None) -> list[dict] | None:
    """Predicted rows from a JSON file: what `nnscale predict --format json` prints, a list of
    such outputs (several configurations), or a plain list of rows."""
    if path is None:
        return None
    try:
        data = json.loads(Path(path).read_text())
    except OSError as e:
        raise UserError(f"cannot read predictions {path}: {e.strerror or e}") from None
    except ValueError as e:
        raise UserError(f"predictions {path} are not JSON: {e}") from None
    parts = [prediction_rows(x) for x in (data if isinstance(data, list) else [data])]
    if any(p is None for p in parts):
        raise UserError(f"predictions {path}: expected the JSON of `nnscale predict --format json`"
                        " (or a list of them, or a list of row objects)")
    rows = [r for p in parts for r in p]
    check_rows(rows, f"predictions {path}")
    return rows


def handle(args) -> int:
    paths = write_run_report(args.run, args.out, db=args.db,
                             predictions=load_predictions(args.predictions), title=args.title,
                             netstats=not args.no_netstats)
    print(paths["html"])
    return 0
