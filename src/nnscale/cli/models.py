"""`nnscale models [PATTERN]`: the zoo, with each model's statistics.

Vision models are counted at their input (netstats); language models are listed from their shapes
(`nnscale.zoo.lm_shapes`, exact analytic counts): parameters with the embeddings apart, layers,
hidden size, heads. Listing needs no `transformers`; building one does (`nnscale stats MODEL`).
"""

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
LM_COLUMNS = (
    ("name", "model"),
    ("family", "family"),
    ("params", "params"),
    ("params_non_embedding", "non-embedding"),
    ("params_embedding", "embedding"),
    ("layers", "layers"),
    ("hidden_size", "hidden"),
    ("heads", "heads"),
    ("kv_heads", "KV heads"),
    ("max_seq_len", "context"),
    ("source", "source"),
)
ALL_COLUMNS = COLUMNS[:-1] + tuple(c for c in LM_COLUMNS if c not in COLUMNS) + COLUMNS[-1:]


def _lm_row(name: str, info) -> dict:
    s = info.lm_shape
    return {
        "name": name, "family": info.family, "input": "x".join(map(str, info.input_shape)),
        "params": s.params_total(), "params_non_embedding": s.params_non_embedding(),
        "params_embedding": s.params_embedding(), "layers": s.num_layers, "hidden_size": s.hidden_size,
        "heads": s.num_heads, "kv_heads": s.num_kv_heads, "max_seq_len": s.max_seq_len,
        "source": info.source, "paper": info.paper,
    }


def model_rows(pattern: str = "*") -> list[dict]:
    """The rows `nnscale models` prints, raw numbers; callable from Python."""
    rows = []
    for name in list_models(pattern):
        info = model_info(name)
        if info.is_lm:
            rows.append(_lm_row(name, info))
            continue
        s = network_stats(name)
        rows.append({
            "name": name, "family": info.family, "input": "x".join(map(str, info.input_shape)),
            "params": s.params_total, "macs": s.macs, "conv_layers": s.conv_layers,
            "conv_depth": s.conv_depth, "fc_layers": s.fc_layers, "source": info.source,
            "paper": info.paper,
        })
    return rows


def add_parser(sub) -> None:
    p = sub.add_parser("models", help="list the model zoo with statistics")
    p.add_argument("pattern", nargs="?", default="*", help="shell-style name pattern, e.g. 'resnet*'")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(handle=handle)


def handle(args) -> int:
    rows = model_rows(args.pattern)
    if not rows:
        print(f"no model matches {args.pattern!r}; `nnscale models` lists all")
        return 0
    lms = [r for r in rows if r["family"] == "lm"]
    vision = [r for r in rows if r["family"] != "lm"]
    if args.format != "table":  # one list: language models' own fields beside the vision ones
        columns = ALL_COLUMNS if lms else COLUMNS
        print(render(rows, columns, args.format))
        return 0
    big = ("params", "macs", "params_non_embedding", "params_embedding")
    tables = []
    if vision:
        tables.append(render([{k: si(v) if k in big else v for k, v in r.items()} for r in vision],
                             COLUMNS))
    if lms:
        tables.append("language models (parameters: total = non-embedding + embedding)\n"
                      + render([{k: si(v) if k in big else v for k, v in r.items()} for r in lms],
                               LM_COLUMNS))
    print("\n\n".join(tables))
    return 0
