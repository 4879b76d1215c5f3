"""`nnscale sweep MODEL`: measure a model over batch sizes, one isolated worker per point, and store
every point the moment it is measured (`nnscale.measure.sweep.run_sweep` does the work)."""

from __future__ import annotations

import sys

from nnscale.errors import UserError
from nnscale.measure.frameworks import FRAMEWORKS
from nnscale.measure.methodology import INTERFERENCE_MAX, MeasurePolicy
from nnscale.measure.progress import TerminalProgress
from nnscale.measure.recorder import stored_config
from nnscale.measure.sweep import SweepConfig, resolve, run_sweep
from nnscale.measure.validate import (check_seconds, check_thread_option, parse_batches,
                                      parse_modes, parse_size)
from nnscale.netstats import parse_input_size
from nnscale.records import PRECISIONS
from nnscale.store import open_store
from nnscale.store.url import redact_command
from nnscale.zoo import model_info

DEFAULT_BATCHES = "1,2,4,8,16,32"


def add_common(p, budget: float) -> None:
    """Options `sweep` and `tune` share."""
    p.add_argument("model", nargs="?", help="zoo name, torchvision:NAME or timm:NAME (see `nnscale models`)")
    p.add_argument("--mode", default="inference", help="inference, training or both (default "
                   "inference); language models also decode, or all (prefill, decode, training)")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    p.add_argument("--framework", default="torch", choices=FRAMEWORKS,
                   help="torch (default); tensorflow or jax (the Keras twin of the model; extras "
                   "nnscale[tensorflow] / nnscale[jax]); onnxruntime (the exported torch model, "
                   "inference only; extra nnscale[onnx])")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="intra-op threads, 1 to 1024, set in every worker and recorded (default: "
                   "all usable cores)")
    p.add_argument("--input-size", help="CxHxW (or HxW, or S); default: the model's own")
    p.add_argument("--budget", type=float, default=budget, metavar="SECONDS",
                   help=f"measurement time per point, shared by its processes (default {budget:g})")
    p.add_argument("--target-ci", type=float, default=0.02, metavar="FRACTION",
                   help="stop when the point's 95%% CI (across its processes) is within ± this "
                   "(default 0.02)")
    p.add_argument("--processes", type=int, default=3, metavar="K",
                   help="fresh worker processes per point, each warmed up on its own; the CI covers "
                   "the variation between them (default 3; 1: one process, a within-process CI)")
    p.add_argument("--max-processes", type=int, default=None, metavar="K",
                   help="more processes for a point whose CI is still wider than --target-ci "
                   "(default 2 x --processes)")
    p.add_argument("--interference-max", type=float, default=INTERFERENCE_MAX, metavar="SHARE",
                   help="warn when the load per core, other processes' CPU share or the steal share "
                   f"is above this, in (0, 1] (default {INTERFERENCE_MAX:g})")
    p.add_argument("--warmup", type=float, default=None, metavar="SECONDS",
                   help="longest warm-up per point (default 10 for sweep, 5 for tune)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="kill a worker after this long (default: start-up + compile + warm-up + 2 x budget)")
    p.add_argument("--memory-cap", metavar="SIZE", help="memory a worker may take, e.g. 4G "
                   "(CPU: address-space limit; CUDA: allocator limit). Default: what is free (CPU)")
    p.add_argument("--run", metavar="NAME", help="name of the new run (default run-DATE-TIME)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN, skipping its finished points")
    p.add_argument("--db", metavar="URL", help="results store: a file path, sqlite:///PATH or "
                   "postgresql://... (default ./nnscale.db)")


def policy_from(args, warmup_default: float) -> MeasurePolicy:
    warmup = warmup_default if args.warmup is None else args.warmup
    most = 2 * args.processes if args.max_processes is None else args.max_processes
    return MeasurePolicy(target_rel_ci=args.target_ci, budget_s=args.budget, warmup_max_s=warmup,
                         processes=args.processes, max_processes=most)


def common_kwargs(args) -> dict:
    """Config fields from the shared options (checked: UserError on bad values)."""
    if args.model is None:
        raise UserError("give a MODEL (see `nnscale models`), or --resume RUN")
    shape = None
    if args.input_size is not None:
        shape = parse_input_size(args.input_size, model_info(args.model).input_shape)
    else:
        model_info(args.model)  # unknown model: a one-line error now
    check_thread_option(args.threads, "--threads")
    if args.timeout is not None:
        check_seconds(args.timeout, "--timeout")
    return {
        "model": args.model, "modes": parse_modes(args.mode), "device": args.device,
        "threads": args.threads or 0, "input_shape": shape, "timeout_s": args.timeout,
        "memory_cap_bytes": None if args.memory_cap is None else parse_size(args.memory_cap),
        "framework": args.framework, "interference_max": args.interference_max,
    }


def command_line() -> str:
    """This process's command line as stored with a run: a password in a --db URL hidden."""
    return redact_command(["nnscale", *sys.argv[1:]])


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="measure speed over batch sizes; store every point")
    add_common(p, budget=30.0)
    p.add_argument("--batch", default=DEFAULT_BATCHES, metavar="LIST|auto",
                   help=f"batch sizes, e.g. 1,2,4,8, or auto (largest that fits) (default {DEFAULT_BATCHES})")
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)
    p.add_argument("--channels-last", action="store_true", help="NHWC memory format")
    p.add_argument("--seq-len", type=int, metavar="S", help="language models: tokens per sequence, "
                   "stored with every point (default: the model's, at most 2048)")
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
    if args.resume and args.run:
        raise UserError("give either --run NAME (a new run) or --resume RUN, not both")
    config = None if args.resume and args.model is None else config_from(args)
    if config is not None:
        resolve(config)  # device, precision, input: checked before the store is touched
    # With a MODEL, --resume of a run killed before its first commit starts it (open_run).
    with open_store(args.db, create=not args.resume, fill_empty=config is not None) as store:
        if config is None:
            config = SweepConfig.from_dict(stored_config(store, args.resume, "sweep"))
        result = run_sweep(config, store, TerminalProgress(), run=args.resume or args.run,
                           resume=bool(args.resume), command_line=command_line())
        where = store.url
    for mode, batch in result.knees.items():
        text = "none (no point measured)" if batch is None else f"batch {batch}"
        print(f"knee ({mode}): {text} — the smallest batch reaching 95 % of the best throughput")
    failed = sum(m.status not in ("ok",) for m in result.measurements)
    print(f"{len(result.measurements)} points in run {result.run!r} of {where}"
          + (f" ({failed} not ok: see the status column)" if failed else ""))
    return 0
