"""Errors a user can cause and fix. The CLI prints them as one line and exits with code 2.

Everything else is a bug and keeps its traceback.

`Terminated`: SIGTERM or SIGHUP turned into an exception (`raise_on_termination`), so that the
`finally` blocks that stop child processes and close the store run as they do for Ctrl-C; without
a handler Python dies at once on these signals and runs none of them (signal(7): default action
"Term").
"""

import signal
import threading


class UserError(Exception):
    """Bad input: a wrong value, file, URL or name. The message says what is wrong and what is accepted."""

    exit_code = 2


class StoreUnavailable(UserError):
    """The results store failed past its retries (locked, disk full, server gone). Points already
    committed are kept; the message says what failed."""


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM or SIGHUP. A KeyboardInterrupt, so that code which lets Ctrl-C
    through (`except Exception` does not catch it) lets this through too."""

    def __init__(self, signum: int):
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum
        self.exit_code = 128 + signum  # the shell's convention for "ended by signal N"


TERMINATING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


def _terminate(signum, _frame) -> None:
    # Once: a second signal during the clean-up ends the process the default way (children still
    # die with it, see nnscale.lifeline).
    for sig in TERMINATING_SIGNALS:
        signal.signal(sig, signal.SIG_DFL)
    raise Terminated(signum)


def raise_on_termination() -> dict:
    """Turn SIGTERM and SIGHUP into `Terminated`; returns the handlers it replaced (for
    `signal.signal` to restore). Only the main thread may set handlers: elsewhere, nothing."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    # A signal the caller chose to ignore stays ignored (`nohup nnscale run …` must outlive its
    # terminal), as CPython leaves SIGINT alone when it starts with SIGINT ignored.
    return {sig: signal.signal(sig, _terminate) for sig in TERMINATING_SIGNALS
            if signal.getsignal(sig) is not signal.SIG_IGN}
