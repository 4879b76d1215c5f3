"""Leave-one-out validation of the model on a run's measured points.

For each usable point (points.extract_points): fit the per-link alpha and B, the cap efficiency, the
overlap and the overhead (calibrate.py) to all the other points, predict the one left out, and report
the error (predicted / measured - 1). The free parameters are chosen for each fit from the points it
sees (calibrate.default_free), so a fit never has more unknowns than points. Single-device points are inputs (the compute), not targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from nnscale.errors import UserError
from nnscale.predict.calibrate import Point, extract_points, fit_points, predict_point
from nnscale.predict.model import ModelProfile
from nnscale.records import Measurement

TARGET = 0.10  # the bar: every leave-one-out error within 10 %


@dataclass(frozen=True, slots=True)
class LooRow:
    label: str
    kind: str
    world_size: int
    measured_ms: float
    predicted_ms: float
    error: float  # predicted / measured - 1
    fitted: str  # the free parameters of the fit that predicted it

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Validation:
    run: str
    rows: tuple[LooRow, ...]
    skipped: tuple[str, ...]

    @property
    def max_abs_error(self) -> float:
        return max(abs(r.error) for r in self.rows)

    @property
    def mean_abs_error(self) -> float:
        return sum(abs(r.error) for r in self.rows) / len(self.rows)

    @property
    def passed(self) -> bool:
        return self.max_abs_error <= TARGET


def leave_one_out(points: Sequence[Point], run: str = "run", skipped: Sequence[str] = ()) -> Validation:
    if len(points) < 3:
        raise UserError(f"{run} has {len(points)} usable point(s); leave-one-out needs at least 3 "
                        "(`nnscale allreduce` points or training points at world_size >= 2)")
    rows = []
    for i, held in enumerate(points):
        rest = [p for j, p in enumerate(points) if j != i]
        result = fit_points(rest, source=f"{run} without {held.label}")
        predicted = predict_point(result.params, held)
        rows.append(LooRow(held.label, held.kind, held.world_size, 1e3 * held.measured_s, 1e3 * predicted,
                           predicted / held.measured_s - 1, ",".join(result.free) or "-"))
    return Validation(run, tuple(rows), tuple(skipped))


def validate_leave_one_out(records: Sequence[Measurement], profiles: dict[str, ModelProfile] | None = None,
                           run: str = "run") -> Validation:
    """Leave-one-out over a run's stored records (see the module docstring)."""
    points, skipped = extract_points(records, profiles)
    return leave_one_out(points, run, skipped)


def markdown(v: Validation) -> str:
    """The validation as a Markdown table, for docs/benchmarks.md."""
    lines = [f"Leave-one-out over run `{v.run}`: {len(v.rows)} points, max |error| "
             f"{100 * v.max_abs_error:.1f} %, mean {100 * v.mean_abs_error:.1f} % "
             f"({'within' if v.passed else 'NOT within'} the {100 * TARGET:.0f} % target)", "",
             "| point | measured ms | predicted ms | error | fitted without it |", "|---|---|---|---|---|"]
    lines += [f"| {r.label} | {r.measured_ms:.3f} | {r.predicted_ms:.3f} | {100 * r.error:+.1f} % | {r.fitted} |"
              for r in v.rows]
    return "\n".join(lines)
