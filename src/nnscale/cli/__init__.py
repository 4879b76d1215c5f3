"""The `nnscale` command line: one module per subcommand, each with `add_parser` and `handle`.

Handlers only parse and print; the work is done by functions callable from Python (asv's pattern).
"""

from __future__ import annotations

import argparse
import signal
import sys

from nnscale import __version__
from nnscale.cli import (allreduce, compare, device, models, plan, predict, report, results, run, scale,
                         slurm, stats, sweep, tune)
from nnscale.errors import Terminated, UserError, raise_on_termination

_COMMANDS = (models, stats, run, sweep, tune, results, device, report, compare, predict, plan, scale, allreduce, slurm)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, where to look) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="nnscale", description="How a neural network's speed scales: with batch "
                     "size, precision, GPUs and nodes, and on hardware you do not have yet.")
    parser.add_argument("--version", action="version", version=f"nnscale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for command in _COMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = raise_on_termination()  # SIGTERM/SIGHUP run the same clean-up as Ctrl-C
    try:
        return int(args.handle(args) or 0)
    except UserError as exc:
        print(f"nnscale: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `nnscale models | head`
        sys.stderr.close()
        return 0
    except Terminated as exc:
        print(f"nnscale: {exc}; points already measured are stored", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("nnscale: interrupted", file=sys.stderr)
        return 130
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
