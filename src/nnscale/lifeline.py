"""Processes of a launch die with the nnscale that started them, however it ends (SIGKILL included).

`launch.launch` reaps torchrun and every rank in a `finally`, which cannot run when nnscale is
killed outright. Two mechanisms close that gap, each on its own (why both: see below):

- PR_SET_PDEATHSIG (prctl(2), Linux): the kernel sends the chosen signal to a process when the
  thread that forked it exits. torchrun is started as `python -m nnscale.lifeline
  torch.distributed.run ARGS…`, which asks for SIGKILL before torchrun's code runs; each worker asks
  for it too (its parent is torchrun). A parent that died before the prctl call is caught by
  comparing getppid() with the parent expected (prctl(2): "the parent has already exited").
- A parent watch: a daemon thread polls that the nnscale process named in NNSCALE_PARENT (pid and
  start time, so that a reused pid does not count) still exists, and ends the process if not. It
  covers a worker whose direct parent survives nnscale (a launcher between them that does not die
  with it) and systems without prctl. The start time is field 22 of /proc/PID/stat (proc(5)).

No signal handler or clean-up runs in a process ended this way: it holds nothing that outlives it
(a worker's results are files in the launch directory, which its parent removes).

Two savings for torchrun, ~0.9 s a launch on the 2-core test machine (bench/torchrun_exit.py,
6 alternating pairs: rank 0's result to torchrun's exit 0.97 → 0.18 s, start to the first rank
2.35 → 2.05 s): it leaves without the interpreter's finalization once its main has returned
(`_exit_without_finalizing`), and its rendezvous names methods without `inspect.stack()`
(`_cheaper_rendezvous_records`). What is left of the tail is the agent's poll of its workers
(`--monitor-interval 0.2`, kept: the poll and its store round trip run beside the measured workers)
and the rendezvous shutdown; the exit barrier of a single node passes in ~1 ms.
"""

from __future__ import annotations

import ctypes
import os
import runpy
import signal
import sys
import threading
import time

PARENT_ENV = "NNSCALE_PARENT"  # "PID:STARTTIME" of the nnscale process that started the launch
PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
WATCH_INTERVAL_S = 0.5


def start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (proc(5) field 22), None if it is gone
    or a zombie (state Z or X, field 3: killed, not yet reaped by its own parent)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read().decode(errors="replace")
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may contain spaces: split after its end.
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X", "x") else fields[19]


def parent_token(pid: int | None = None) -> str:
    """NNSCALE_PARENT for the children of process `pid` (default: this one)."""
    pid = os.getpid() if pid is None else pid
    return f"{pid}:{start_time(pid) or ''}"


def _alive(token: str) -> bool:
    pid, _, started = token.partition(":")
    now = start_time(int(pid))
    return now is not None and (not started or now == started)


def die_with_parent(expected_ppid: int | None = None) -> None:
    """SIGKILL this process when its parent exits; exit now if the parent already has."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the parent watch alone
        pass
    if expected_ppid is not None and os.getppid() != expected_ppid:
        os._exit(1)  # the parent died before the prctl call took effect


def watch_parent(token: str | None = None, interval_s: float = WATCH_INTERVAL_S) -> None:
    """End this process (SIGKILL to itself) once the process in `token` (default: NNSCALE_PARENT)
    is gone. Does nothing without a token."""
    token = token if token is not None else os.environ.get(PARENT_ENV, "")
    if not token or not token.split(":")[0].isdigit():
        return

    def watch() -> None:
        while _alive(token):
            time.sleep(interval_s)
        # As PDEATHSIG would: no handler, no clean-up. A group leader (a worker started in its own
        # session) takes its group along: children it started would otherwise outlive it.
        if os.getpgrp() == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=watch, name="nnscale-parent-watch", daemon=True).start()


def _exit_without_finalizing(code: int) -> None:
    """Leave as a normal exit would, less the interpreter's finalization: the exit functions run
    (logging's flush, weakref finalizers, multiprocessing's children), then `os._exit`.

    Why: once torch is imported, finalizing the interpreter (tearing down its modules, a garbage
    collection of everything torch built) costs 0.6–0.8 s of CPU on the 2-core test machine (a
    `python -c "import torch"` exits in ~0.7 s, in ~0.03 s with `os._exit`; `gc.freeze()` leaves
    ~0.17 s), 0.7–1.2 s more under load, and every launch waited for it after its workers had
    finished. Nothing torchrun does is left for that stage: its agent has stopped the workers,
    passed the exit barrier (torch/distributed/elastic/agent/server/api.py,
    `SimpleElasticAgent._invoke_run` → `_exit_barrier`) and shut the rendezvous down
    (torch/distributed/launcher/api.py, `launch_agent`'s `finally`) before `main()` returns; the
    rendezvous keep-alive timer opts out of exit-time clean-up itself
    (torch/distributed/elastic/rendezvous/utils.py, `_PeriodicTimer.start`: `atexit = False`)."""
    import atexit

    atexit._run_exitfuncs()  # what Py_FinalizeEx runs first; CPython's own atexit module
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _cheaper_rendezvous_records() -> None:
    """torchrun's c10d rendezvous names the calling method in each of its event records with
    `inspect.stack()[depth].function`, twice a call (torch/distributed/elastic/rendezvous/
    dynamic_rendezvous.py, `get_method_name`): `inspect.stack()` builds every frame's source
    context, and the 9 calls of a launch cost 0.35–0.4 s of torchrun's CPU (on the 2-core test
    machine), ~0.15 s of it after the workers have finished (the rendezvous shutdown). The same name
    straight from the frame; the original is kept where its code is not the one described here."""
    try:
        from torch.distributed.elastic.rendezvous import dynamic_rendezvous as dr
    except ImportError:  # torch's own import error comes again, from torchrun itself
        return
    original = getattr(dr, "get_method_name", None)
    code = getattr(original, "__code__", None)
    if code is None or code.co_varnames[:1] != ("depth",) or "stack" not in code.co_names:
        return

    def get_method_name(depth: int = 2) -> str:
        # inspect.stack()[0] is get_method_name's own frame, as sys._getframe(0) is this one's
        frame = sys._getframe(0)
        for _ in range(depth):
            frame = frame.f_back
            if frame is None:
                return "no_method_name"
        return frame.f_code.co_name

    dr.get_method_name = get_method_name


def main(argv: list[str]) -> None:
    """`python -m nnscale.lifeline PPID MODULE ARGS…`: run MODULE as `python -m` would,
    dying with process PPID. A module that returns (torchrun's success) ends the process at once
    (`_exit_without_finalizing`); one that raises leaves as Python would (a traceback, exit 1)."""
    die_with_parent(int(argv[0]))
    watch_parent()
    if argv[1] == "torch.distributed.run":
        _cheaper_rendezvous_records()
    sys.argv = [argv[1], *argv[2:]]
    try:
        runpy.run_module(argv[1], run_name="__main__", alter_sys=True)
    except SystemExit as e:
        if e.code not in (None, 0):
            raise
    _exit_without_finalizing(0)


if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit("usage: python -m nnscale.lifeline PPID MODULE [ARGS…] (used by nnscale)")
    main(sys.argv[1:])
