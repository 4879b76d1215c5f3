"""Reports of a run: plots, tables and files from stored records. Never imports a framework.

`build_report(measurements, environment, predictions=..., netstats_rows=..., title=...)` makes a
`Report` (plots as SVG text, tables as rows) and `write_report(report, out_dir)` writes it as
index.html (self-contained), report.md, points.csv, report.json and figures/*.svg. `compare(a, b)`
joins two runs' points and says which changed significantly. See docs/report.md.
"""

from nnscale.report.build import build_report
from nnscale.report.comparison import Change, cis_overlap, compare
from nnscale.report.document import Highlight, Plot, Report, Table
from nnscale.report.write import write_report

__all__ = [
    "Change",
    "Highlight",
    "Plot",
    "Report",
    "Table",
    "build_report",
    "cis_overlap",
    "compare",
    "write_report",
]
