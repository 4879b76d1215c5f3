"""`nnscale run`: the study. For now its first step: the network statistics table beside the seed's."""

from __future__ import annotations

from nnscale.cli.stats import print_paper_table


def add_parser(sub) -> None:
    p = sub.add_parser("run", help="run the study (today: the network statistics table)")
    p.set_defaults(handle=handle)


def handle(args) -> int:
    print_paper_table("table")
    return 0
