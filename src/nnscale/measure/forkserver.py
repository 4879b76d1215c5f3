"""Fresh worker processes without a fresh interpreter's start-up: forked from pre-imported images.

Why: every point is measured in k >= 3 fresh processes (`nnscale.measure.processes`), and on the
2-core development VM a fresh `python -m nnscale.measure.worker` spends about 6 s before its first
step — 2.5 s importing torch, 3.5 s importing torchvision (which imports torch._dynamo) — against
0.5–2 s of measurement. In `make run` 481 s of the points' 562 s wall went to start-up
(docs/methodology.md). A fork server (the pattern of `multiprocessing`'s "forkserver" start method
and of Python's own test runner) imports the framework once and forks each worker from it, so a
worker starts in milliseconds and the time goes to measuring.

What stays fresh: each worker is a new process in its own session, with its own heap allocations,
thread pool (the image never runs an operator, so OpenMP's pool is created in the child, at the
child's thread count), model, data and seed. The only other threads an image has are the BLAS pools
NumPy's OpenBLAS starts as it loads when given more than one thread (none at 1 thread: a test
checks the image is then single-threaded); OpenBLAS shuts its pool down before every fork itself
(its `openblas_fork_handler` registers `blas_thread_shutdown_` with pthread_atfork(3)), and the
child starts it again when it needs it. What the children of one image share is that image's
layout of the imported libraries (one ASLR draw); layout alone can move a benchmark by several per
cent (Mytkowicz et al. 2009, "Producing wrong data without doing anything obviously wrong!",
ASPLOS), so a point's processes are forked round-robin from `IMAGES` (3) independently started
interpreters: its interval still spans layouts. `MeasurePolicy.worker_start = "spawn"` (`--spawn`)
starts every worker as a new interpreter instead, as pyperf does.

Only torch on CPU is forked: TensorFlow, JAX and ONNX Runtime start threads of their own as they
load (seen in /proc/self/task), and fork(2) copies only the calling thread (a lock held by another
thread stays held in the child); CUDA must not be
initialised before a fork (CUDA semantics), and a GPU point's start-up is small against its run.

Protocol. The image (`python -m nnscale.measure.forkserver FD PARENT_TOKEN`) holds one end of a Unix
socket pair. Per worker the parent sends one JSON line and three file descriptors (SCM_RIGHTS,
unix(7)): the worker's stdin, stdout and stderr pipes. The image forks; the child makes itself a
session leader, puts the pipes on fds 0–2 and runs the worker exactly as a spawned one would
(`worker.run_worker`). The image answers `{"pid": P}`, waits for the child and answers
`{"exit": code}` (negative: killed by that signal, as subprocess reports it). The parent times the
worker out and kills its process group itself. The image dies with its parent (PR_SET_PDEATHSIG and
its parent check, `nnscale.lifeline`), and each child with its image and, through the parent
watch, with the measuring parent.
"""

from __future__ import annotations

import atexit
import contextlib
import gc
import json
import os
import selectors
import socket
import subprocess
import sys
import threading
import time

from nnscale.lifeline import die_with_parent, parent_token, watch_parent

IMAGES = 3  # independently started interpreters per environment (module docstring)
# A forked worker's start: fork, the spec, building the model — 0.1 s for the seed's MNIST nets, up
# to ~0.8 s for AlexNet's 61 M parameters (2-core VM); a spawned torch worker takes ~6 s.
FORKED_START_S = 1.0
READY_TIMEOUT_S = 120.0  # importing torch and torchvision on a slow, loaded machine
EXIT_WAIT_S = 30.0  # after its pipes closed, the time a worker may take to exit


def forkable(framework: str, device: str) -> bool:
    """May a worker of this framework on this device be forked from an image (module docstring)?"""
    return framework == "torch" and device == "cpu"


def forks(worker_start: str, framework: str, device: str) -> bool:
    """Will a worker with this `MeasurePolicy.worker_start` be forked (when a session is open)?"""
    return worker_start == "fork" and forkable(framework, device)


# ---------------------------------------------------------------- the image (server) side


def _preload() -> None:
    """Import everything a torch CPU worker imports before its first step — and run nothing."""
    import nnscale.measure.point  # noqa: F401
    import nnscale.records  # noqa: F401
    from nnscale.measure.backends.base import get_backend
    from nnscale.zoo.registry import list_models

    import torchvision  # noqa: F401 - the zoo imports it only to build a model (torchvision_models.py)
    import torchvision.models.resnet  # noqa: F401 - resnet_v1.py's base

    get_backend("torch")
    list_models()  # imports the zoo's definition modules (transformers, timm)


def _send(sock: socket.socket, obj: dict) -> None:
    sock.sendall((json.dumps(obj) + "\n").encode())


def _child(sock: socket.socket, fds: list[int], env: dict[str, str], token: str) -> None:
    """In the forked child: become the worker. Never returns into the image's loop."""
    code = 1
    try:
        sock.close()
        os.setsid()  # its own process group: the parent kills it and what it starts as one
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        os.environ.clear()
        os.environ.update(env)  # the variables read at run time (test faults, NNSCALE_*)
        # End with the measuring parent (the image's parent), taking this worker's process group
        # along: what it started (compile workers) too. Not PR_SET_PDEATHSIG on the image: the
        # image dies with the parent at once, and a worker killed with it would orphan its children.
        watch_parent(token)
        from nnscale.measure.worker import run_worker

        run_worker(json.loads(sys.stdin.read()))  # ends the process with os._exit
    except BaseException as exc:  # noqa: BLE001 - nothing may return into the image's loop
        try:
            os.write(2, f"forked worker failed: {exc!r}\n".encode())
        except OSError:
            pass
    finally:
        os._exit(code)


def serve(fd: int, token: str) -> None:
    """The image's loop (module docstring)."""
    sock = socket.socket(fileno=fd)
    try:
        _preload()
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which then spawns
        _send(sock, {"error": f"{type(exc).__name__}: {exc}"})
        return
    pidfile = os.environ.get("NNSCALE_TEST_PIDFILE")  # tests: prove no image outlives its command
    if pidfile:
        with open(pidfile, "a") as f:
            f.write(f"{os.getpid()}\n")
    _send(sock, {"ready": os.getpid()})
    while True:
        try:
            header, fds, _flags, _addr = socket.recv_fds(sock, 1 << 20, 3)
        except OSError:
            return
        if not header:
            return  # the parent closed its end: done
        job = json.loads(header.decode())
        # The Python docs' advice for fork without exec (gc.freeze): move the image's objects into
        # the permanent generation, so that the child's collections never write to them — each
        # write to an inherited page is a copy-on-write fault inside a timed step.
        gc.freeze()
        pid = os.fork()
        if pid == 0:
            _child(sock, list(fds), job["env"], token)
        for f in fds:
            os.close(f)
        _send(sock, {"pid": pid})
        _, status = os.waitpid(pid, 0)
        _send(sock, {"exit": os.waitstatus_to_exitcode(status)})


def main(argv: list[str]) -> None:
    fd, token = int(argv[0]), argv[1]
    # PR_SET_PDEATHSIG alone (die_with_parent checks the parent is still there after setting it):
    # no parent-watch thread here, so that the image is single-threaded whenever it forks.
    die_with_parent(int(token.split(":")[0]))
    serve(fd, token)
    os._exit(0)


# ---------------------------------------------------------------- the parent side


class ImageFailed(Exception):
    """The image could not be started or stopped answering; the caller spawns instead."""


class _Image:
    """One pre-imported interpreter with the environment `env`."""

    def __init__(self, env: dict[str, str]) -> None:
        self.dead = False
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock = mine
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "nnscale.measure.forkserver", str(theirs.fileno()), parent_token()],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        theirs.close()
        self.lines = mine.makefile("rb")
        ready = self.reply(READY_TIMEOUT_S)
        if "ready" not in ready:
            self.close()
            raise ImageFailed(ready.get("error", "no answer"))

    def reply(self, timeout_s: float | None) -> dict:
        self.sock.settimeout(timeout_s)
        try:
            line = self.lines.readline()
        except (OSError, TimeoutError) as exc:
            raise ImageFailed(f"image did not answer: {exc}") from None
        if not line:
            raise ImageFailed(f"image exited (code {self.proc.poll()})")
        return json.loads(line)

    def fork(self, env: dict[str, str]) -> ForkedWorker:
        r_in, w_in = os.pipe()
        r_out, w_out = os.pipe()
        r_err, w_err = os.pipe()
        try:
            socket.send_fds(self.sock, [json.dumps({"env": env}).encode()], [r_in, w_out, w_err])
        except OSError as exc:
            for f in (r_in, w_in, r_out, w_out, r_err, w_err):
                os.close(f)
            raise ImageFailed(f"image gone: {exc}") from None
        for f in (r_in, w_out, w_err):
            os.close(f)
        return ForkedWorker(self, self.reply(READY_TIMEOUT_S)["pid"], w_in, r_out, r_err)

    def alive(self) -> bool:
        return not self.dead and self.proc.poll() is None

    def close(self) -> None:
        self.dead = True
        try:
            self.sock.close()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()


class ForkedWorker:
    """A forked worker, driven like a `subprocess.Popen` (pid, communicate, wait, returncode), so
    that `runner.run_point` treats both kinds of worker alike."""

    def __init__(self, image: _Image, pid: int, stdin: int, stdout: int, stderr: int) -> None:
        self.image, self.pid, self.returncode = image, pid, None
        self._stdin = stdin
        self._out = {stdout: bytearray(), stderr: bytearray()}  # in this order: stdout, stderr
        self._open = {stdout, stderr}

    def communicate(self, input: str | None = None, timeout: float | None = None) -> tuple[str, str]:
        """Write `input`, read both pipes to their end; raise subprocess.TimeoutExpired after
        `timeout` (the output so far is kept: a second call, after a kill, returns it all)."""
        if self._stdin is not None:
            try:
                if input:
                    os.write(self._stdin, input.encode())  # a spec is far below a pipe's 64 KiB
            except BrokenPipeError:
                pass
            os.close(self._stdin)
            self._stdin = None
        deadline = None if timeout is None else time.monotonic() + timeout
        with selectors.DefaultSelector() as sel:
            for fd in self._open:
                sel.register(fd, selectors.EVENT_READ)
            while self._open:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    raise subprocess.TimeoutExpired("forked worker", timeout)
                for key, _ in sel.select(left):
                    chunk = os.read(key.fd, 1 << 16)
                    if chunk:
                        self._out[key.fd] += chunk
                    else:  # end of file: the worker (and all it started) closed this pipe
                        sel.unregister(key.fd)
                        os.close(key.fd)
                        self._open.discard(key.fd)
        self.wait()
        out, err = (bytes(b).decode(errors="replace") for b in self._out.values())
        return out, err

    def wait(self) -> int:
        if self.returncode is None:
            try:
                self.returncode = int(self.image.reply(EXIT_WAIT_S)["exit"])
            except ImageFailed:  # the image is out of step with us: retire it, the pool starts another
                self.image.close()
                self.returncode = -9
        return self.returncode


class WorkerPool:
    """Images by environment, each point's processes forked from them in turn.

    Images exist only inside `session()` (a sweep, a tune, a study; sessions nest): outside one a
    worker is spawned, and the last session to end stops the images, so that nothing nnscale
    started outlives the command that needed it."""

    def __init__(self, images: int = IMAGES) -> None:
        self.images = images
        self._pools: dict[tuple, list[_Image]] = {}
        self._turn: dict[tuple, int] = {}
        self._lock = threading.Lock()
        self._depth = 0
        self.image_start_s = 0.0  # seconds spent starting images so far (the study's pacer skips them)
        self.failure: str | None = None  # why images did not work here (then every worker spawns)

    @contextlib.contextmanager
    def session(self):
        with self._lock:
            self._depth += 1
        try:
            yield self
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0:
                    self._close()

    def start(self, env: dict[str, str]) -> ForkedWorker | None:
        """A worker forked from an image of `env`, or None (spawn it): outside a session, or when
        images do not work here."""
        with self._lock:
            if self._depth == 0 or self.failure is not None:
                return None
            key = tuple(sorted(env.items()))
            pool = self._pools.setdefault(key, [])
            pool[:] = [image for image in pool if image.alive()]
            turn = self._turn.get(key, 0)
            self._turn[key] = turn + 1
            try:
                if len(pool) < self.images and turn >= len(pool) or not pool:
                    began = time.monotonic()
                    try:  # started when first needed: no start-up up front
                        pool.append(_Image(env))
                    finally:
                        self.image_start_s += time.monotonic() - began
                return pool[turn % len(pool)].fork(env)
            except ImageFailed as exc:
                self.failure = str(exc)
                self._close()
                return None

    def _close(self) -> None:
        for pool in self._pools.values():
            for image in pool:
                image.close()
        self._pools.clear()

    def close(self) -> None:
        with self._lock:
            self._close()


POOL = WorkerPool()
atexit.register(POOL.close)


if __name__ == "__main__":
    main(sys.argv[1:])
