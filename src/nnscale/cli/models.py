"""`nnscale models [PATTERN]`: the zoo, with each model's statistics."""

from __future__ import annotations

from nnscale.format import FORMATS, render, si
from nnscale.netstats import network_stats
from nnscale.zoo import list_models, model_info

COLUMNS = (
    ("name", "model"),
    ("family", "family"),
    ("input", "input"),
    ("params", "params"),
    ("macs", "MACs"),
    ("conv_layers", "conv"),
    ("conv_depth", "depth"),
    ("fc_layers", "fc"),
    ("source", "source"),
)


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the model zoo with statistics")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern, e.g. 'resnet*'")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(handle=handle)


def model_rows(pattern: str = "*") -> list[dict]:
    """The rows `nnscale models` prints, raw numbers; callable from Python."""
    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        s = network_stats(name)
        rows.append({
            "name": name, "family": info.family, "input": "x".join(map(str, info.input_shape)),
            "params": s.params_total, "macs": s.macs, "conv_layers": s.conv_layers,
            "conv_depth": s.conv_depth, "fc_layers": s.fc_layers, "source": info.source,
            "paper": info.paper,
        })
    return rows


def handle(args) -> int:
    rows = model_rows(args.pattern)
    if not rows:
        print(f"no model matches {args.pattern!r}; `nnscale models` lists all")
        return 0
    if args.format == "table":
        rows = [dict(r, params=si(r["params"]), macs=si(r["macs"])) for r in rows]
    print(render(rows, COLUMNS, args.format))
    return 0
