"""Two runs point by point: the change in median throughput, and whether it is significant.

Points are joined on `Workload.key()` (same network, mode, batch, precision, device, ... ). A change
counts as significant when the two 95 % confidence intervals of the median throughput do not
overlap. That test is conservative: non-overlapping 95 % intervals imply a difference at a level
well below 5 %, while overlapping ones do not prove there is none (Schenker & Gentleman (2001),
"On judging the significance of differences by examining the overlap between confidence
intervals", The American Statistician 55(3):182-186). A report therefore says "no significant
change", never "no change". A regression is a significant slowdown, or a point that ran in the
first run and fails (OOM, error, timeout) in the second.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnscale.records import MEASURED_STATUSES, Measurement, Workload
from nnscale.report import points as P
from nnscale.report.tables import ci, fmt

REGRESSION = "regression"
IMPROVEMENT = "improvement"
SAME = "no significant change"
NO_CI = "no CI: cannot tell"
ONLY_A = "only in A"
ONLY_B = "only in B"
BOTH_FAILED = "failed in both"


def cis_overlap(a: tuple[float | None, float | None], b: tuple[float | None, float | None]
                ) -> bool | None:
    """Whether the closed intervals a and b share a point; None if either bound is missing."""
    if None in a or None in b:
        return None
    return a[0] <= b[1] and b[0] <= a[1]


@dataclass(frozen=True, slots=True)
class Change:
    workload: Workload
    a: Measurement | None
    b: Measurement | None
    change: float | None  # (B - A) / A of the median throughput; None unless both measured
    significant: bool | None  # None: a CI is missing, or a side has no number
    verdict: str

    @property
    def regression(self) -> bool:
        return self.verdict == REGRESSION


def _speed(m: Measurement) -> tuple[float | None, tuple[float | None, float | None]]:
    """A measured point's speed and its CI, higher is faster: samples/s; for a point without a
    sample rate (an all-reduce), operations per second, 1000 / its median time in ms."""
    if P.rate(m) is not None:
        return P.rate(m), P.rate_ci(m)
    t = m.stats.timing
    med, lo, hi = P.num(t.median_ms), P.num(t.median_ci_low_ms), P.num(t.median_ci_high_ms)
    inverse = lambda v: 1000.0 / v if v is not None and v > 0 else None  # noqa: E731
    return inverse(med), (inverse(hi), inverse(lo))  # a decreasing map: the bounds swap


def _ran(m: Measurement) -> bool:
    return m.status in MEASURED_STATUSES and _speed(m)[0] is not None


def _judge(a: Measurement | None, b: Measurement | None) -> tuple[float | None, bool | None, str]:
    if a is None:
        return None, None, ONLY_B
    if b is None:
        return None, None, ONLY_A
    ok_a, ok_b = _ran(a), _ran(b)
    if not ok_a and not ok_b:
        return None, None, BOTH_FAILED
    if ok_a and not ok_b:
        return None, True, REGRESSION  # it ran, now it does not: the worst slowdown there is
    if ok_b and not ok_a:
        return None, True, IMPROVEMENT
    (ra, ca), (rb, cb) = _speed(a), _speed(b)
    change = (rb - ra) / ra
    overlap = cis_overlap(ca, cb)
    if overlap is None:
        return change, None, NO_CI
    if overlap:
        return change, False, SAME
    return change, True, REGRESSION if rb < ra else IMPROVEMENT


def compare(a: list[Measurement], b: list[Measurement]) -> list[Change]:
    """Every point of either run, in A's order then B's new points, with its verdict."""
    by_a = {m.workload.key(): m for m in a}
    by_b = {m.workload.key(): m for m in b}
    keys = list(dict.fromkeys([*by_a, *by_b]))
    out = []
    for k in keys:
        ma, mb = by_a.get(k), by_b.get(k)
        change, significant, verdict = _judge(ma, mb)
        out.append(Change((ma or mb).workload, ma, mb, change, significant, verdict))
    return out


COLUMNS = (
    ("model", "network"), ("mode", "mode"), ("framework", "framework"),
    ("precision", "precision"), ("batch_size", "batch"), ("world_size", "workers"),
    ("a", "A samples/s"), ("a_ci", "A 95 % CI"), ("b", "B samples/s"), ("b_ci", "B 95 % CI"),
    ("change", "change"), ("significant", "significant"), ("verdict", "verdict"),
)


def _side(m: Measurement | None) -> tuple[str, str]:
    if m is None:
        return "–", "–"
    if not _ran(m):
        return m.status, "–"
    if P.rate(m) is None:  # an all-reduce: its time, in ms
        t = m.stats.timing
        return f"{fmt(P.num(t.median_ms))} ms", ci(P.num(t.median_ci_low_ms), P.num(t.median_ci_high_ms))
    return fmt(P.rate(m)), ci(*P.rate_ci(m))


def rows(changes: list[Change], raw: bool = False) -> list[dict]:
    """Table rows: formatted text, or with `raw` the numbers (for JSON and CSV)."""
    out = []
    for c in changes:
        w = c.workload
        row = {"model": w.model, "mode": w.mode, "framework": w.engine,
               "precision": w.precision, "batch_size": w.batch_size, "world_size": w.world_size}
        if raw:
            for side, m in (("a", c.a), ("b", c.b)):
                lo, hi = P.rate_ci(m) if m is not None else (None, None)
                row |= {f"{side}_status": m.status if m else None,
                        side: P.rate(m) if m is not None and P.measured(m) else None,
                        f"{side}_ci_low": lo, f"{side}_ci_high": hi}
            row |= {"change": c.change, "significant": c.significant, "verdict": c.verdict,
                    "regression": c.regression, "key": w.key()}
        else:
            (a, a_ci), (b, b_ci) = _side(c.a), _side(c.b)
            row |= {"a": a, "a_ci": a_ci, "b": b, "b_ci": b_ci,
                    "change": "–" if c.change is None else f"{100 * c.change:+.1f} %",
                    "significant": {True: "yes", False: "no", None: "–"}[c.significant],
                    "verdict": c.verdict.upper() if c.regression else c.verdict}
        out.append(row)
    return out


RAW_COLUMNS = tuple((k, k) for k in (
    "model", "mode", "framework", "precision", "batch_size", "world_size", "a_status", "a",
    "a_ci_low", "a_ci_high", "b_status", "b", "b_ci_low", "b_ci_high", "change", "significant",
    "verdict", "regression", "key"))


def summary(changes: list[Change]) -> str:
    """One line: how many points got slower, faster, or did not change significantly."""
    counts: dict[str, int] = {}
    for c in changes:
        counts[c.verdict] = counts.get(c.verdict, 0) + 1
    order = (REGRESSION, IMPROVEMENT, SAME, NO_CI, BOTH_FAILED, ONLY_A, ONLY_B)
    parts = [f"{counts[v]} {v}{'s' if v in (REGRESSION, IMPROVEMENT) and counts[v] != 1 else ''}"
             for v in order if counts.get(v)]
    return f"{len(changes)} points: " + (", ".join(parts) or "none")
