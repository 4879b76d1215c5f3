"""One progress display for the whole study: overall ETA and the current point.

The sweep engine reports each point to a progress object (`nnscale.measure.progress`); a study runs
many sweeps, so this one keeps a single count and clock across them instead of starting anew at
each sweep, and the other steps (scaling, all-reduce, report) announce themselves as notes.
"""

from __future__ import annotations

import time

from nnscale.measure.progress import TerminalProgress, duration, header


class StudyProgress(TerminalProgress):
    def __init__(self, total_points: int, per_point_s: float, budget_s: float, **kw) -> None:
        super().__init__(**kw)
        self.total, self.per_point_s, self.budget_s = total_points, per_point_s, budget_s
        self._study_t0 = time.monotonic()
        self._header_done = False
        self.with_model = True  # the points of many nets, interleaved (measure/rounds.py)

    def elapsed_s(self) -> float:
        return time.monotonic() - self._study_t0

    def begin(self, title: str, total: int | None, per_point_s: float) -> None:
        # Keep the study's total and clock; print the sweep's title and, once, the table header.
        with self._lock:
            self._say(title)
            if not self._header_done:
                with self._line_erased():
                    self.out.write(header(True) + "\n")
                    self.out.flush()
                self._header_done = True
            self._start_live()

    def end(self) -> None:  # a sweep ended; the study goes on, and so does its progress line
        pass

    def step(self, number: int, of: int, title: str) -> None:
        left = max(0.0, self.budget_s - self.elapsed_s())
        self.note(f"[step {number}/{of}] {title} · elapsed {duration(self.elapsed_s())}"
                  f" · budget left {duration(left)}")

    def finish(self) -> None:
        super().end()
