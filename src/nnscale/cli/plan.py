"""`nnscale plan`: the fastest DP x FSDP x TP x PP layout of a language model on N GPUs, and why the
others lose.

    nnscale plan llama3-70b --device h100 --gpus 256 --seq-len 8192 --global-batch 512
    nnscale plan --published        the published runs the layout model is held to

The model is `nnscale.predict.plan` / `layout` / `memory` (no torch); see docs/prediction.md.
"""

from __future__ import annotations

import argparse
import json

from nnscale.errors import UserError
from nnscale.format import FORMATS, render, si
from nnscale.predict import published_lm
from nnscale.predict.catalogue import load_catalogue
from nnscale.predict.layout import Cluster, Training
from nnscale.predict.memory import largest_micro_batch, shape_by_name
from nnscale.predict.plan import plan, why_it_loses

COLUMNS = (("rank", "#"), ("layout", "layout"), ("micro_batch", "micro-batch"), ("recompute", "checkpointing"),
           ("memory_gib", "GiB/GPU"), ("tokens_per_s", "tokens/s"), ("tokens_per_s_per_gpu", "per GPU"),
           ("mfu", "MFU"), ("step_s", "step s"), ("why", "why it loses"))
PUB_COLUMNS = (("key", "case"), ("role", "role"), ("layout", "layout"), ("gpus", "GPUs"),
               ("published", "published"), ("predicted", "predicted"), ("error", "error"),
               ("loo_error", "leave-one-out"), ("published_memory_gib", "GiB pub."),
               ("predicted_memory_gib", "GiB pred."), ("unit", "unit"))


def _int_at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be >= 1")
    return value


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(_int_at_least_one(x) for x in text.split(",") if x.strip())


def add_parser(sub) -> None:
    p = sub.add_parser("plan", help="rank DP x FSDP x TP x PP layouts of a language model on N GPUs")
    p.add_argument("model", nargs="?", help="language model from the zoo (nnscale models), e.g. llama3-70b")
    p.add_argument("--device", default="h100", help="catalogue device (nnscale predict --list)")
    p.add_argument("--gpus", type=_int_at_least_one, help="GPUs in all")
    p.add_argument("--gpus-per-node", type=_int_at_least_one, default=8)
    p.add_argument("--nics-per-node", type=_int_at_least_one, help="NICs per node (default: one per GPU)")
    p.add_argument("--intra-link", help="link inside a node (default: the device's own)")
    p.add_argument("--inter-link", default="ib-ndr", help="link between nodes (default ib-ndr, 400 Gb/s)")
    p.add_argument("--seq-len", type=_int_at_least_one, help="tokens per sequence (default 2048, or "
                   "the model's maximum if shorter)")
    p.add_argument("--global-batch", type=_int_at_least_one, help="sequences per step (default: --gpus)")
    p.add_argument("--micro-batch", type=_int_list, help="micro-batch sizes to try, e.g. 1,2,4")
    p.add_argument("--tp", type=_int_at_least_one, help="fix the tensor-parallel degree")
    p.add_argument("--pp", type=_int_at_least_one, help="fix the pipeline-parallel degree")
    p.add_argument("--dp", type=_int_at_least_one, help="fix the data-parallel degree")
    p.add_argument("--efficiency", type=float,
                   help="fraction of the dense bf16 peak on matrix work (default: calibrated on "
                        "torchtitan's Llama 3.1 8B run, see --published)")
    p.add_argument("--top", type=_int_at_least_one, default=5, help="layouts to show (table)")
    p.add_argument("--catalogue", help="YAML file adding to or overriding the shipped catalogue")
    p.add_argument("--published", action="store_true", help="the published runs beside the model")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(handle=handle)


def _pub_cells(r: dict) -> dict:
    ratio = r["unit"].startswith("ratio")

    def num(x):
        return None if x is None else (f"{x:.3f}" if ratio else f"{x:,.0f}" if x >= 100 else f"{x:.1f}")

    def err(x):
        return None if x is None else (f"{100 * x:+.1f} pt" if ratio else f"{100 * x:+.1f} %")

    return dict(r, published=num(r["published"]), predicted=num(r["predicted"]), error=err(r["error"]),
                loo_error=err(r["loo_error"]),
                published_memory_gib=None if r.get("published_memory_gib") is None else f"{r['published_memory_gib']:.1f}",
                predicted_memory_gib=None if r.get("predicted_memory_gib") is None else f"{r['predicted_memory_gib']:.1f}")


def published_table(cat, fmt: str = "table") -> str:
    """The published language-model runs beside the layout model (also under `predict --published`)."""
    rows = published_lm.reproduction(cat)
    if fmt != "table":
        return render(rows, PUB_COLUMNS + (("efficiency", "efficiency"), ("loo_efficiency", "loo efficiency"),
                                           ("stack", "stack"), ("source", "source")), fmt)
    head = ("language models: efficiency per software stack (fraction of the dense peak), each "
            "calibrated on its 'calibrate' case: " + ", ".join(
                f"{k} {v:.3f}" for k, v in published_lm.efficiencies(cat).items()))
    return head + "\n" + render([_pub_cells(r) for r in rows], PUB_COLUMNS) + \
        f"\n{published_lm.error_band(rows)}"


def handle(args) -> int:
    cat = load_catalogue(args.catalogue)
    if args.published:
        print(published_table(cat, args.format))
        return 0
    if not args.model or not args.gpus:
        raise UserError("plan needs MODEL and --gpus N (or --published)")
    shape = shape_by_name(args.model)
    args.seq_len = args.seq_len or min(2048, shape.max_seq_len)
    if args.seq_len > shape.max_seq_len:
        raise UserError(f"--seq-len {args.seq_len} is over {shape.name}'s maximum of {shape.max_seq_len}")
    device = cat.device(args.device)
    intra = cat.link(args.intra_link or device.intra_link)
    inter = cat.link(args.inter_link)
    if args.gpus > args.gpus_per_node and args.gpus % args.gpus_per_node:
        raise UserError(f"--gpus {args.gpus} is not a whole number of nodes of {args.gpus_per_node}")
    rows_pub = published_lm.reproduction(cat)
    eff = args.efficiency if args.efficiency is not None else published_lm.efficiencies(cat)["torchtitan"]
    if not 0 < eff <= 1:
        raise UserError(f"--efficiency must be in (0, 1], got {eff:g}")
    cluster = Cluster(device, intra, inter, min(args.gpus_per_node, args.gpus),
                      args.nics_per_node or args.gpus_per_node)
    train = Training(seq_len=args.seq_len, global_batch=args.global_batch or args.gpus, efficiency=eff)
    cands = plan(shape, cluster, args.gpus, train, args.tp, args.pp, args.dp, args.micro_batch)
    best = cands[0]
    rows = [dict(c.row(), rank=i + 1, why=why_it_loses(c, best) if best.terms else None)
            for i, c in enumerate(cands)]
    band = published_lm.error_band(rows_pub)
    if args.format == "json":
        print(json.dumps({"model": shape.name, "device": device.name, "gpus": args.gpus,
                          "seq_len": args.seq_len, "global_batch": train.global_batch,
                          "efficiency": eff, "error_band": band, "layouts": rows}, indent=2))
        return 0
    if args.format == "csv":
        print(render(rows, COLUMNS + tuple((k, k) for k in ("dp", "fsdp", "tp", "pp", "v", "fits",
                                                              "bubble_s", "tp_s", "fsdp_exposed_s",
                                                              "dp_exposed_s", "recompute_s")), "csv"))
        return 0
    print(f"{shape.name} on {args.gpus} x {device.name} ({cluster.gpus_per_node} per node, {intra.name}; "
          f"{cluster.nics_per_node} x {inter.name} per node), sequence {args.seq_len}, global batch "
          f"{train.global_batch}, efficiency {eff:.3f}; {len(cands)} layouts, "
          f"{sum(c.terms is not None for c in cands)} fit {device.memory_bytes / 2**30:.0f} GiB")
    print(f"error band: {band}")
    if best.terms is None:
        print("no layout fits; the smallest:")
    else:  # how far its micro-batch could grow (more micro-batch, fewer micro-batches per step)
        lay = best.layout
        per_rank = train.global_batch // lay.dp
        most = largest_micro_batch(shape, lay, args.seq_len, device.memory_bytes,
                                   micro_batches_for=lambda b: max(1, per_rank // b), limit=per_rank,
                                   recompute=best.recompute)
        print(f"largest micro-batch that fits the best layout ({lay.label()}, {best.recompute}): {most}")

    def cells(r):
        out = dict(r, memory_gib=f"{r['memory_gib']:.1f}")
        if r.get("tokens_per_s") is not None:
            out.update(tokens_per_s=si(r["tokens_per_s"]), tokens_per_s_per_gpu=f"{r['tokens_per_s_per_gpu']:,.0f}",
                       mfu=f"{100 * r['mfu']:.1f} %", step_s=f"{r['step_s']:.2f}")
        return out

    print(render([cells(r) for r in rows[:args.top]], COLUMNS))
    rest = rows[args.top:]
    if rest:
        reasons: dict[str, list[dict]] = {}
        for r in rest:
            reasons.setdefault(r["why"].split(" (")[0].split(":")[0], []).append(r)
        print(f"\nthe other {len(rest)} lose to: " + "; ".join(
            f"{k} ({len(v)}, e.g. {v[0]['layout']} b{v[0]['micro_batch']} {v[0]['recompute']}: {v[0]['why']})"
            for k, v in sorted(reasons.items(), key=lambda kv: -len(kv[1]))))
    return 0
