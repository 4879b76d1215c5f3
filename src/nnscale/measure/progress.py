"""Live output of a sweep: a table row per finished point, and a progress line with an ETA.

Rows go to `out` (stdout), progress to `err` (stderr), so `nnscale sweep ... > table.txt` keeps a
clean table while the terminal shows the progress. On a terminal the progress is one line, a bar
and the counts, that rich's `Live` redraws in place once a second and erases before each row;
otherwise it is a plain line per point with no terminal codes. The rows are laid out by
`nnscale.format.text_table` at fixed widths. The ETA is the points left times the mean wall time of
the points measured so far, and before the first one, times the budget's bound (start-up + warm-up
+ measurement).
"""

from __future__ import annotations

import contextlib
import math
import sys
import threading
import time
from typing import TextIO

from rich.console import Console
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from nnscale.format import binary_bytes, si, text_table
from nnscale.measure.frameworks import SPECS
from nnscale.records import Measurement, Workload

# (key, header, width); widths fit typical values, longer cells simply push the line wider.
COLUMNS = (
    ("mode", "mode", 9), ("batch", "batch", 6), ("config", "config", 16), ("status", "status", 8),
    ("samples_per_s", "img/s", 10), ("ci", "±CI", 6), ("step_ms", "step ms", 9),
    ("p99_ms", "p99 ms", 9), ("memory", "peak mem", 10), ("flops", "FLOP/s", 7),
    ("mfu", "MFU", 6), ("iters", "iters", 6),
)
# A study measures many nets' points in interleaved rounds (measure/rounds.py): its rows lead with
# the network, which a sweep's title says once.
MODEL_COLUMN = ("model", "network", 18)
_LEFT = {"model", "mode", "config", "status"}


def config_label(w: Workload) -> str:
    """'fp32 cl compile'; other frameworks than torch lead with their name ('jax fp32 jit')."""
    fw = [] if w.framework == "torch" else [w.framework]
    comp = [_compile_label(w.framework)] if w.compile else []
    return " ".join(fw + [w.precision] + (["cl"] if w.channels_last else []) + comp)


def _compile_label(framework: str) -> str:
    """What `compile` is called (the framework's spec); "compile" for a stored name nnscale no
    longer knows (e.g. "torch-ddp[...]")."""
    spec = SPECS.get(framework)
    return spec.compile_label if spec and spec.compile_label else "compile"


def _num(v, fmt: str) -> str:
    return "" if v is None or isinstance(v, float) and not math.isfinite(v) else format(v, fmt)


def rate(v) -> str:
    """Throughput cells: 4 significant digits, whole numbers with thousands separators."""
    if v is None or not math.isfinite(v):
        return ""
    return f"{v:,.0f}" if v >= 1000 else f"{v:.4g}"


def display_row(m: Measurement) -> dict[str, str]:
    """A point's cells as the live table and `nnscale results` show them."""
    t, c, w = m.stats.timing, m.stats.compute, m.workload
    return {
        "mode": w.mode, "batch": str(w.batch_size), "config": config_label(w), "status": m.status,
        "samples_per_s": rate(m.stats.throughput.samples_per_s),
        "ci": "" if t.rel_ci is None else f"{100 * t.rel_ci:.1f}%",
        "step_ms": _num(t.median_ms, ".4g"),
        "p99_ms": _num(t.p99_ms, ".4g"),
        "memory": binary_bytes(c.peak_memory_bytes) if c.peak_memory_bytes is not None else "",
        "flops": si(c.achieved_flop_per_s) if c.achieved_flop_per_s else "",
        "mfu": "" if c.mfu is None else f"{100 * c.mfu:.1f}%",
        "iters": _num(t.iterations, "d"),
    }


def _justify(key: str, text: str) -> str:
    return "left" if key in _LEFT else "right"


def _columns(with_model: bool) -> tuple:
    return (MODEL_COLUMN, *COLUMNS) if with_model else COLUMNS


def format_row(cells: dict[str, str], with_model: bool = False) -> str:
    cols = _columns(with_model)
    return text_table([cells], [(k, h) for k, h, _ in cols], widths=[n for _, _, n in cols],
                      header=False, justify=_justify)


def header(with_model: bool = False) -> str:
    cols = _columns(with_model)
    return text_table([], [(k, h) for k, h, _ in cols], widths=[n for _, _, n in cols],
                      justify=_justify)


def duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class NullProgress:
    """Progress that shows nothing (the Python API's default)."""

    def begin(self, title: str, total: int | None, per_point_s: float) -> None: ...
    def point_start(self, workload: Workload, detail: str = "") -> None: ...
    def point_done(self, m: Measurement, wall_s: float, reused: bool = False) -> None: ...
    def process_done(self, wall_s: float, processes_left: int) -> None: ...
    def note(self, text: str) -> None: ...
    def end(self) -> None: ...


class TerminalProgress(NullProgress):
    """Rows to `out`, progress to `err` (module docstring)."""

    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr, tty: bool | None = None,
                 refresh_s: float = 1.0) -> None:
        self.out, self.err = out, err
        self.tty = err.isatty() if tty is None else tty
        self.refresh_s = refresh_s
        # soft_wrap: a note is one line however narrow the terminal (or 80 columns off one).
        self.console = Console(file=err, force_terminal=self.tty, soft_wrap=True, highlight=False,
                               markup=False, emoji=False)
        self._lock = threading.Lock()
        self._live: Live | None = None
        self.total: int | None = None
        self.done = 0
        self.per_point_s = 0.0
        self._walls: list[float] = []
        self._current = ""
        self._point_t0 = self._t0 = time.monotonic()
        self.with_model = False  # rows lead with the network (a study's: MODEL_COLUMN)
        self._process_walls: list[float] = []
        self._processes_left = 0

    def eta_s(self) -> float | None:
        if self._process_walls:  # points in rounds (measure/rounds.py): by processes, not points
            left, per = self._processes_left, sum(self._process_walls) / len(self._process_walls)
        elif self.total is None:
            return None
        else:
            left = self.total - self.done
            per = sum(self._walls) / len(self._walls) if self._walls else self.per_point_s
        running = time.monotonic() - self._point_t0 if self._current else 0.0
        return max(0.0, left * per - min(running, per))

    def status_line(self) -> str:
        total = "?" if self.total is None else str(self.total)
        now = time.monotonic()
        point = f" · {self._current} {duration(now - self._point_t0)}" if self._current else ""
        return (f"{self.done}/{total}{point} · elapsed {duration(now - self._t0)}"
                f" · ETA {duration(self.eta_s())}")

    def _status(self) -> Table:
        # Called by Live's refresh thread without our lock (Live.stop joins that thread while we
        # hold it): it only reads numbers and one string.
        line = Table.grid(padding=(0, 1))
        cells = [Text(self.status_line(), no_wrap=True, overflow="crop")]
        if self.total:
            cells.insert(0, ProgressBar(total=self.total, completed=self.done, width=20))
        for _ in cells:
            line.add_column(no_wrap=True)
        line.add_row(*cells)
        return line

    def _start_live(self) -> None:  # with the lock held
        if self.tty and self._live is None:
            self._live = Live(console=self.console, get_renderable=self._status, transient=True,
                              refresh_per_second=1 / self.refresh_s, redirect_stdout=False,
                              redirect_stderr=False)
            self._live.start(refresh=True)

    def _stop_live(self) -> None:  # with the lock held; erases the line (transient)
        if self._live is not None:
            self._live.stop()
            self._live = None

    @contextlib.contextmanager
    def _line_erased(self):
        """Erase the progress line while a row goes to `out` (the same terminal, most often)."""
        live = self._live is not None
        self._stop_live()
        try:
            yield
        finally:
            if live:
                self._start_live()

    def _say(self, text: str) -> None:
        # Above the live line on a terminal, a plain line elsewhere.
        self.console.print(Text(text))

    def begin(self, title: str, total: int | None, per_point_s: float) -> None:
        self.total, self.per_point_s = total, per_point_s
        self._t0 = time.monotonic()
        with self._lock:
            self._say(title)
            with self._line_erased():
                self.out.write(header(self.with_model) + "\n")
                self.out.flush()
            self._start_live()

    def point_start(self, workload: Workload, detail: str = "") -> None:
        """A point (or, `detail`, one process of it: "round 2, process 2") begins."""
        with self._lock:
            net = f"{workload.model} " if self.with_model else ""
            self._current = f"{net}{workload.mode} bs {workload.batch_size} {config_label(workload)}"
            self._current += f" ({detail})" if detail else ""
            self._point_t0 = time.monotonic()
            if self._live is not None:
                self._live.refresh()
            elif not self.tty:
                # In rounds (`detail`) a point ends only in its last round: count the processes too.
                count = (f"{self.done}/{self.total or '?'} done, process {len(self._process_walls) + 1}"
                         if detail else f"{self.done + 1}/{self.total or '?'}")
                self._say(f"[{count}] measuring {self._current} · ETA {duration(self.eta_s())}")

    def point_done(self, m: Measurement, wall_s: float, reused: bool = False) -> None:
        with self._lock:
            self.done += 1
            if not reused:
                self._walls.append(wall_s)
            self._current = ""
            row = format_row(dict(display_row(m), model=m.workload.model), self.with_model)
            note = "  (stored before; resumed)" if reused else ""
            if m.error and m.status != "ok":
                note += f"  {m.error}"
            with self._line_erased():
                self.out.write(row + note + "\n")
                self.out.flush()

    def process_done(self, wall_s: float, processes_left: int) -> None:
        """One process of a point measured in rounds ended; `processes_left` the rounds still plan."""
        with self._lock:
            self._process_walls.append(wall_s)
            self._processes_left = processes_left
            self._current = ""

    def note(self, text: str) -> None:
        with self._lock:
            self._say(text)

    def end(self) -> None:
        with self._lock:
            self._stop_live()
