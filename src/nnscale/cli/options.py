"""Options that several subcommands take, each declared once with one help text.

A subcommand adds the groups it needs (`add_store(p)`, `add_measurement(p, budget=30.0)`, ...), so
`--db` or `--interference-max` reads and checks the same in `sweep`, `tune`, `run`, `results`,
`report` and `compare`. The launch options of `scale` and `allreduce` (nodes, ranks, link cap) are
theirs (cli/scale.py). Declaring only: the values are checked where they are used (cli/sweep.py's
`config_from`, the configs' `__post_init__`), so a library call meets the same checks.
"""

from __future__ import annotations

from nnscale.format import FORMATS
from nnscale.measure.frameworks import FRAMEWORKS
from nnscale.measure.methodology import INTERFERENCE_MAX
from nnscale.records import PRECISIONS

DB_HELP = "results store: a file path, sqlite:///PATH or postgresql://... (default ./nnscale.db)"


def add_store(p) -> None:
    """--db: where the runs are stored."""
    p.add_argument("--db", metavar="URL", help=DB_HELP)


def add_format(p) -> None:
    """--format: table (default), csv or json (`nnscale.format.FORMATS`)."""
    p.add_argument("--format", choices=FORMATS, default="table")


def add_new_run(p) -> None:
    """--run NAME / --resume RUN of a command that makes one run (sweep, tune)."""
    p.add_argument("--run", metavar="NAME", help="name of the new run (default run-DATE-TIME)")
    p.add_argument("--resume", metavar="RUN", help="continue RUN, skipping its finished points")


def add_resumable_run(p) -> None:
    """--run NAME of a command that takes up an existing run of that name (run)."""
    p.add_argument("--run", metavar="NAME",
                   help="run name; an existing run is resumed (default run-DATE-TIME)")


def add_interference_max(p) -> None:
    p.add_argument("--interference-max", type=float, default=INTERFERENCE_MAX, metavar="SHARE",
                   help="warn when the load per core, other processes' CPU share or the steal share "
                   f"is above this, in (0, 1] (default {INTERFERENCE_MAX:g})")


def add_model_options(p) -> None:
    """What is measured: MODEL, --mode, --device, --framework, --threads, --input-size."""
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


def add_precision(p) -> None:
    """--precision: one precision to measure in."""
    p.add_argument("--precision", default="fp32", choices=PRECISIONS)


def add_precision_list(p) -> None:
    """--precision LIST: the precisions to try."""
    p.add_argument("--precision", metavar="LIST",
                   help=f"precisions to try, from {','.join(PRECISIONS)} (default: what the device "
                   "runs natively)")


def add_seq_len(p) -> None:
    p.add_argument("--seq-len", type=int, metavar="S", help="language models: tokens per sequence, "
                   "stored with every point (default: the model's, at most 2048)")


def add_measurement(p, budget: float) -> None:
    """How each point is measured: --budget (default `budget` seconds), --target-ci, --processes,
    --max-processes, --interference-max, --warmup, --timeout, --memory-cap."""
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
    p.add_argument("--spawn", action="store_true",
                   help="start every worker as a new interpreter (about 6 s each with torch); by "
                   "default torch CPU workers are forked from 3 pre-imported interpreters")
    add_interference_max(p)
    p.add_argument("--warmup", type=float, default=None, metavar="SECONDS",
                   help="longest warm-up per point (default 10 for sweep, 5 for tune)")
    p.add_argument("--timeout", type=float, default=None, metavar="SECONDS",
                   help="kill a worker after this long (default: start-up + compile + warm-up + 2 x budget)")
    p.add_argument("--memory-cap", metavar="SIZE", help="memory a worker may take, e.g. 4G "
                   "(CPU: address-space limit; CUDA: allocator limit). Default: what is free (CPU)")


def add_measuring_command(p, budget: float) -> None:
    """All of a command that measures points into one run of its own (sweep, tune): the model
    options, the measurement options (--budget default `budget`), --run/--resume and --db."""
    add_model_options(p)
    add_measurement(p, budget)
    add_new_run(p)
    add_store(p)
