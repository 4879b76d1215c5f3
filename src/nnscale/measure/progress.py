"""Live output of a sweep: a table row per finished point, and a progress line with an ETA.

Rows go to `out` (stdout), progress to `err` (stderr), so `nnscale sweep ... > table.txt` keeps a
clean table while the terminal shows the progress. On a terminal the progress is one line redrawn
in place (carriage return and ANSI "erase line", ECMA-48 EL) once a second; otherwise it is a
plain line per point. The ETA is the points left times the mean wall time of the points measured
so far, and before the first one, times the budget's bound (start-up + warm-up + measurement).
"""

from __future__ import annotations

import math
import shutil
import sys
import threading
import time
from typing import TextIO

from nnscale.format import binary_bytes, si
from nnscale.records import Measurement, Workload

# (key, header, width); widths fit typical values, longer cells simply push the line wider.
COLUMNS = (
    ("mode", "mode", 9), ("batch", "batch", 6), ("config", "config", 16), ("status", "status", 8),
    ("samples_per_s", "img/s", 10), ("ci", "±CI", 6), ("step_ms", "step ms", 9),
    ("p99_ms", "p99 ms", 9), ("memory", "peak mem", 10), ("flops", "FLOP/s", 7),
    ("mfu", "MFU", 6), ("iters", "iters", 6),
)
_LEFT = {"mode", "config", "status"}


# What `compile` is called per framework (docs/methodology.md, "Frameworks").
COMPILE_WORDS = {"tensorflow": "xla", "jax": "jit"}


def config_label(w: Workload) -> str:
    """'fp32 cl compile'; other frameworks than torch lead with their name ('jax fp32 jit')."""
    fw = [] if w.framework == "torch" else [w.framework]
    comp = [COMPILE_WORDS.get(w.framework, "compile")] if w.compile else []
    return " ".join(fw + [w.precision] + (["cl"] if w.channels_last else []) + comp)


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


def format_row(cells: dict[str, str]) -> str:
    parts = [cells.get(k, "").ljust(n) if k in _LEFT else cells.get(k, "").rjust(n) for k, _, n in COLUMNS]
    return "  ".join(parts).rstrip()


def header() -> str:
    return format_row({k: h for k, h, _ in COLUMNS}) + "\n" + "  ".join("-" * n for _, _, n in COLUMNS)


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
    def point_start(self, workload: Workload) -> None: ...
    def point_done(self, m: Measurement, wall_s: float, reused: bool = False) -> None: ...
    def note(self, text: str) -> None: ...
    def end(self) -> None: ...


class TerminalProgress(NullProgress):
    """Rows to `out`, progress to `err` (module docstring)."""

    def __init__(self, out: TextIO = sys.stdout, err: TextIO = sys.stderr, tty: bool | None = None,
                 refresh_s: float = 1.0) -> None:
        self.out, self.err = out, err
        self.tty = err.isatty() if tty is None else tty
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None
        self.total: int | None = None
        self.done = 0
        self.per_point_s = 0.0
        self._walls: list[float] = []
        self._current = ""
        self._point_t0 = self._t0 = time.monotonic()

    def eta_s(self) -> float | None:
        if self.total is None:
            return None
        per = sum(self._walls) / len(self._walls) if self._walls else self.per_point_s
        running = time.monotonic() - self._point_t0 if self._current else 0.0
        return max(0.0, (self.total - self.done) * per - min(running, per))

    def status_line(self) -> str:
        total = "?" if self.total is None else str(self.total)
        bar = ""
        if self.total:
            filled = int(20 * self.done / self.total)
            bar = "[" + "#" * filled + "." * (20 - filled) + "] "
        now = time.monotonic()
        point = f" · {self._current} {duration(now - self._point_t0)}" if self._current else ""
        return (f"{bar}{self.done}/{total}{point} · elapsed {duration(now - self._t0)}"
                f" · ETA {duration(self.eta_s())}")

    def _draw(self) -> None:  # with the lock held
        if self.tty:
            width = shutil.get_terminal_size((100, 20)).columns - 1
            self.err.write("\r\x1b[K" + self.status_line()[:width])
            self.err.flush()

    def _clear(self) -> None:
        if self.tty:
            self.err.write("\r\x1b[K")
            self.err.flush()

    def _tick(self) -> None:
        while not self._stop.wait(self.refresh_s):
            with self._lock:
                self._draw()

    def begin(self, title: str, total: int | None, per_point_s: float) -> None:
        self.total, self.per_point_s = total, per_point_s
        self._t0 = time.monotonic()
        with self._lock:
            self.err.write(title + "\n")
            self.out.write(header() + "\n")
            self.out.flush()
            self._draw()
        if self.tty and self._ticker is None:
            self._ticker = threading.Thread(target=self._tick, name="nnscale-progress", daemon=True)
            self._ticker.start()

    def point_start(self, workload: Workload) -> None:
        with self._lock:
            self._current = f"{workload.mode} bs {workload.batch_size} {config_label(workload)}"
            self._point_t0 = time.monotonic()
            if self.tty:
                self._draw()
            else:
                self.err.write(f"[{self.done + 1}/{self.total or '?'}] measuring {self._current}"
                               f" · ETA {duration(self.eta_s())}\n")
                self.err.flush()

    def point_done(self, m: Measurement, wall_s: float, reused: bool = False) -> None:
        with self._lock:
            self.done += 1
            if not reused:
                self._walls.append(wall_s)
            self._current = ""
            self._clear()
            row = format_row(display_row(m))
            note = "  (stored before; resumed)" if reused else ""
            if m.error and m.status != "ok":
                note += f"  {m.error}"
            self.out.write(row + note + "\n")
            self.out.flush()
            self._draw()

    def note(self, text: str) -> None:
        with self._lock:
            self._clear()
            self.err.write(text + "\n")
            self._draw()

    def end(self) -> None:
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        with self._lock:
            self._clear()
