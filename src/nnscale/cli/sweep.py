"""`nnscale sweep MODEL`: measure a model over batch sizes, one isolated worker per point, and store
every point the moment it is measured (`nnscale.measure.sweep.run_sweep` does the work)."""

from __future__ import annotations

from nnscale.cli import options
from nnscale.cli.measuring import common_kwargs, measure, policy_from
from nnscale.errors import UserError
from nnscale.measure.sweep import SweepConfig, resolve, run_sweep
from nnscale.cli.values import parse_batches

DEFAULT_BATCHES = "1,2,4,8,16,32"


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="measure speed over batch sizes; store every point")
    options.add_measuring_command(p, budget=30.0)
    p.add_argument("--batch", default=DEFAULT_BATCHES, metavar="LIST|auto",
                   help=f"batch sizes, e.g. 1,2,4,8, or auto (largest that fits) (default {DEFAULT_BATCHES})")
    options.add_precision(p)
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    options.add_seq_len(p)
    p.add_argument("--activation-checkpointing", action="store_true",
                   help="language models' training: recompute each block's activations in backward")
    p.add_argument("--compile", action="store_true",
                   help="torch: torch.compile; tensorflow: XLA (jit_compile); jax: always jax.jit "
                   "(compile time is reported apart)")
    p.set_defaults(handle=handle)


def config_from(args) -> SweepConfig:
    kwargs = common_kwargs(args)
    if args.seq_len is not None:  # a language model's input: (S,), checked against its maximum
        from nnscale.netstats.lm import check_seq_len

        if args.input_size is not None:
            raise UserError("give --seq-len (language models) or --input-size (images), not both")
        check_seq_len(args.model, args.seq_len)
        kwargs["input_shape"] = (args.seq_len,)
    return SweepConfig(
        **kwargs, batches=parse_batches(args.batch), precision=args.precision,
        channels_last=args.channels_last, compile=args.compile, policy=policy_from(args, 10.0),
        activation_checkpointing=args.activation_checkpointing,
    )


def handle(args) -> int:
    # resolve: device, precision, input checked before the store is touched
    result, where = measure(args, "sweep", SweepConfig, config_from, resolve, run_sweep)
    for mode, batch in result.knees.items():
        text = "none (no point measured)" if batch is None else f"batch {batch}"
        print(f"knee ({mode}): {text} — the smallest batch reaching 95 % of the best throughput")
    failed = sum(m.status not in ("ok",) for m in result.measurements)
    print(f"{len(result.measurements)} points in run {result.run!r} of {where}"
          + (f" ({failed} not ok: see the status column)" if failed else ""))
    return 0
