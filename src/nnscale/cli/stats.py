"""`nnscale stats MODEL` and `nnscale stats --paper`: network statistics."""

from __future__ import annotations

import sys

from nnscale.errors import UserError
from nnscale.format import FORMATS, binary_bytes, render, si
from nnscale.netstats import network_stats, parse_input_size
from nnscale.netstats.paper import paper_rows
from nnscale.zoo import model_info

SUMMARY = (
    ("params_total", "parameters"),
    ("params_trainable", "trainable parameters"),
    ("params_weights", "weights (conv+linear, no biases; Sze et al.)"),
    ("macs", "MACs per image (every matmul: conv, linear, attention)"),
    ("macs_conv_linear", "MACs per image, conv + linear layers only"),
    ("forward_flops", "forward FLOPs per image"),
    ("training_flops", "training FLOPs per image (forward + backward)"),
    ("conv_layers", "conv layers"),
    ("conv_depth", "depth in conv layers (longest path)"),
    ("fc_layers", "fully connected layers"),
    ("activation_bytes", "activation memory per image (fp32, saved for backward)"),
)
LAYERS = (("name", "layer"), ("type", "type"), ("output_shape", "output"), ("params", "params"),
          ("macs", "MACs"), ("macs_share", "share"))
PAPER = (("network", "network"), ("model", "model"), ("input", "input"),
         ("seed_conv_layers", "seed conv"), ("conv_layers", "conv"), ("conv_depth", "depth"),
         ("seed_fc_layers", "seed fc"), ("fc_layers", "fc"), ("seed_params", "seed params"),
         ("params", "params"), ("seed_macs", "seed MACs"), ("macs", "MACs"), ("note", "why"))


def add_parser(sub) -> None:
    p = sub.add_parser("stats", help="parameters, MACs, FLOPs, depth and layers of a model")
    p.add_argument("model", nargs="?", help="zoo name, torchvision:NAME or timm:NAME")
    p.add_argument("--input-size", help="CxHxW (or HxW, or S); default: the model's own")
    p.add_argument("--seq-len", type=int, metavar="S",
                   help="language models: the sequence length to count at (default: the model's, "
                   "at most 2048)")
    p.add_argument("--per-layer", action="store_true", help="add the per-layer table")
    p.add_argument("--paper", action="store_true", help="the seed's table beside computed values")
    p.add_argument("--format", choices=FORMATS, default="table")
    p.set_defaults(handle=handle)


LM_SUMMARY = (
    ("seq_len", "sequence length"),
    ("params_total", "parameters"),
    ("params_non_embedding", "parameters without embeddings"),
    ("params_embedding", "embedding parameters"),
    ("forward_flops_per_token", "forward FLOPs per token (FlopCounterMode)"),
    ("training_flops_per_token", "training FLOPs per token (FlopCounterMode)"),
    ("analytic_training_flops_per_token", "training FLOPs per token, 6N + 12·L·d·s (PaLM app. B)"),
    ("training_flops_rel_diff", "counted / analytic − 1"),
    ("attention_flops_share", "attention share of training FLOPs (full s×s scores)"),
    ("decode_flops_per_token", "decode FLOPs per token at this context"),
    ("activation_bytes_per_token", "activation memory per token (Korthikanti et al. 2022, 16-bit)"),
    ("activation_bytes_per_token_checkpointed", "same with activation checkpointing (layer inputs)"),
    ("recompute_bytes_per_token", "+ one layer while it is recomputed"),
    ("activation_bytes_per_token_measured", "saved for backward per token, fp32, measured"),
    ("kv_cache_bytes_per_token_bf16", "KV cache per token (bf16)"),
    ("kv_cache_bytes_per_token_fp32", "KV cache per token (fp32)"),
)


def print_lm_stats(args) -> int:
    """`nnscale stats LM [--seq-len S]`: netstats.lm's statistics (one line, exit 2, on bad input)."""
    from nnscale.netstats.lm import check_seq_len, lm_stats

    if args.input_size is not None or args.per_layer:
        raise UserError(f"{args.model} is a language model: give --seq-len S, not --input-size or "
                        "--per-layer")
    if args.seq_len is not None:
        check_seq_len(args.model, args.seq_len)  # before transformers is loaded
    data = lm_stats(args.model, args.seq_len).to_dict()
    if args.format != "table":
        print(render([data], [("model", "model")] + list(LM_SUMMARY), args.format))
        return 0
    pretty = {}
    for k, v in data.items():
        if k.endswith("_bytes_per_token") or "_bytes_per_token_" in k:
            pretty[k] = binary_bytes(v)
        elif k in ("training_flops_rel_diff", "attention_flops_share"):
            pretty[k] = f"{100 * v:+.3f} %" if k.endswith("diff") else f"{100 * v:.1f} %"
        else:
            pretty[k] = si(v) if isinstance(v, (int, float)) and v >= 10_000 else v
    print(f"{args.model} at sequence length {data['seq_len']} (FLOPs counted on fake tensors; "
          "attention counted over the full s×s scores, causal or not)")
    print(render([{"what": h, "value": pretty[k]} for k, h in LM_SUMMARY],
                 (("what", "statistic"), ("value", "value"))))
    return 0


def print_paper_table(fmt: str = "table") -> None:
    rows = paper_rows()
    if fmt == "table":
        big = ("seed_params", "params", "seed_macs", "macs")
        rows = [{k: (si(v) if k in big and v is not None else v) for k, v in r.items()} for r in rows]
        print("The seed's network table (Sze et al. 2017, Table III) beside nnscale's counts\n")
    print(render(rows, PAPER, fmt))


def handle(args) -> int:
    if args.paper:
        if args.model:
            raise UserError("give either MODEL or --paper, not both")
        print_paper_table(args.format)
        return 0
    if not args.model:
        raise UserError("stats needs a MODEL (see `nnscale models`) or --paper")
    if args.seq_len is not None or model_info(args.model).is_lm:
        return print_lm_stats(args)
    shape = None
    if args.input_size is not None:
        shape = parse_input_size(args.input_size, model_info(args.model).input_shape)
    stats = network_stats(args.model, shape)
    data = stats.to_dict(per_layer=args.per_layer)
    if args.format == "json":
        import json

        print(json.dumps(data, indent=2))
        return 0
    if args.format == "csv":  # the notes (how it was counted) stay out of the CSV itself
        for note in stats.notes:
            print(f"nnscale: note: {note}", file=sys.stderr)
    if args.format == "csv" and args.per_layer:
        print(render(data["layers"], LAYERS, "csv"))
        return 0
    if args.format == "csv":
        print(render([data], [("model", "model"), ("input_shape", "input")] + list(SUMMARY), "csv"))
        return 0
    print(f"{stats.model} at {'x'.join(map(str, stats.input_shape))}")
    for note in stats.notes:
        print(f"note: {note}")
    pretty = {k: si(v) if isinstance(v, int) and v >= 10_000 else v for k, v in data.items()}
    pretty["activation_bytes"] = binary_bytes(stats.activation_bytes)
    pretty["conv_depth"] = "n/a (not traceable)" if stats.conv_depth is None else stats.conv_depth
    print(render([{"what": h, "value": pretty[k]} for k, h in SUMMARY],
                 (("what", "statistic"), ("value", "value"))))
    if args.per_layer:
        layers = [dict(r, output_shape="x".join(map(str, r["output_shape"])), macs=si(r["macs"]),
                       params=si(r["params"]), macs_share=f"{100 * r['macs_share']:.1f} %")
                  for r in data["layers"]]
        print()
        print(render(layers, LAYERS))
    return 0
