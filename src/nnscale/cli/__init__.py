"""The `nnscale` command line: one module per subcommand, each with `add_parser` and `handle`.

Handlers only parse and print; the work is done by functions callable from Python (asv's pattern).
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from nnscale import __version__
from nnscale.errors import Terminated, UserError, raise_on_termination

# Subcommand names, each the module nnscale.cli.NAME, in the order `nnscale --help` lists them.
# Only the chosen command's module is imported: most of them import torch (seconds), and the pure
# ones (`predict`, `plan`, `results`, `compare`) should not pay for it.
COMMANDS = ("models", "stats", "run", "sweep", "tune", "results", "device", "report", "compare",
            "predict", "plan", "scale", "allreduce", "slurm")


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, where to look) and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _chosen(argv: list[str]) -> tuple[str, ...]:
    """The commands whose parsers are needed for `argv`: the one named first, else all of them
    (for `--help`, a missing or a misspelt command, which argparse answers by listing them all)."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return (first,) if first in COMMANDS else COMMANDS


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv` (default: every command's)."""
    parser = _Parser(prog="nnscale", description="How a neural network's speed scales: with batch "
                     "size, precision, GPUs and nodes, and on hardware you do not have yet.")
    parser.add_argument("--version", action="version", version=f"nnscale {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for name in COMMANDS if argv is None else _chosen(argv):
        importlib.import_module(f"nnscale.cli.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(argv).parse_args(argv)
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
