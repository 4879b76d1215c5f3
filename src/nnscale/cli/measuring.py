"""What `nnscale sweep` and `nnscale tune` do alike with their arguments: the config's shared fields
(measure/config.py) and policy from the options of cli/options.py `add_model_options` and
`add_measurement`, and the run started, or resumed with or without the options given again."""

from __future__ import annotations

import sys
from collections.abc import Callable

from nnscale.cli.values import check_thread_option, parse_modes, parse_size
from nnscale.measure.validate import check_seconds
from nnscale.errors import UserError
from nnscale.measure.methodology import MeasurePolicy
from nnscale.measure.progress import TerminalProgress
from nnscale.measure.recorder import stored_config
from nnscale.netstats import parse_input_size
from nnscale.store import open_store
from nnscale.store.url import redact_command
from nnscale.zoo import model_info


def policy_from(args, warmup_default: float) -> MeasurePolicy:
    warmup = warmup_default if args.warmup is None else args.warmup
    most = 2 * args.processes if args.max_processes is None else args.max_processes
    return MeasurePolicy(target_rel_ci=args.target_ci, budget_s=args.budget, warmup_max_s=warmup,
                         processes=args.processes, max_processes=most,
                         worker_start="spawn" if args.spawn else "fork")


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


def measure(args, kind: str, config_cls, config_from: Callable, check: Callable, run: Callable):
    """(result, store URL) of `run(config, store, progress, ...)` — run_sweep or run_tune — for
    `nnscale KIND`: a new run (--run NAME), or --resume RUN with the options given again or, without
    a MODEL, with the ones it was started with. `check(config)` looks at device, precision and input
    before the store is touched."""
    if args.resume and args.run:
        raise UserError("give either --run NAME (a new run) or --resume RUN, not both")
    config = None if args.resume and args.model is None else config_from(args)
    if config is not None:
        check(config)
    # With a MODEL, --resume of a run killed before its first commit starts it (recorder.open_run).
    with open_store(args.db, create=not args.resume, fill_empty=config is not None) as store:
        if config is None:
            config = config_cls.from_dict(stored_config(store, args.resume, kind))
        result = run(config, store, TerminalProgress(), run=args.resume or args.run,
                     resume=bool(args.resume), command_line=command_line())
        return result, store.url
