"""The one launch-and-store loop of `nnscale scale` and `nnscale allreduce`.

Both launch the workers per world size (`launch`), turn rank 0's results into points and store
each as it completes. With `rounds` > 1 (scale's --launches), every world size is launched once per
round, round after round (1, 2, 4, 1, 2, 4, ...): the machine's drift over the run then falls on
every world size alike (the A B A B rule of benchmarking, docs/methodology.md), and a world size's
point is built from its `rounds` results once its last round is done.

A launch that fails is stored as its world size's point with its status ("error", "timeout",
"oom") and the loop stops there with `WorldSizeFailed`; points stored before stay stored, and every
other world size with launches already measured is built from those and stored too (its point says
how many of the rounds it had: scaling._point). A SIGTERM of nnscale (`Terminated`) stores those
partial points the same way before it ends the run; a SIGKILL stores nothing more.
Multi-node: every node runs the loop with the same configuration and so the same rounds; only node
rank 0 stores, and only a single-node run is resumed (the other nodes could not know what rank 0
skipped).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from nnscale.distributed.config import Launching, check_workers
from nnscale.distributed.launch import LaunchFailed, launch, launch_spec
from nnscale.environment import cpu_jiffies, steal_share
from nnscale.errors import Terminated
from nnscale.records import Measurement, Workload

# The key each result gets from the loop: what rank 0 could not know about its own launch.
LAUNCH_FACTS = "launch_facts"


class WorldSizeFailed(Exception):
    """A world size failed; `points` are those measured (and stored) before it, plus the failed one."""

    def __init__(self, message: str, points: list[Measurement]):
        super().__init__(message)
        self.points = points


@dataclass(frozen=True, slots=True)
class Sink:
    """Where points go: a store run (node rank 0), and whom to tell."""

    store: object | None = None  # nnscale.store.Store
    run_id: int | None = None
    run_name: str | None = None
    on_point: Callable[[Measurement], None] | None = None
    on_warning: Callable[[str], None] | None = None

    def storing(self, launching: Launching) -> bool:
        return self.store is not None and launching.node_rank == 0

    def warn(self, message: str) -> None:
        if self.on_warning:
            self.on_warning(message)


@dataclass(frozen=True, slots=True)
class Launch:
    """One world size: what the workers are asked (`job`; `later_job` in rounds after the first,
    None: the same; `key`, what identifies the job to them), how a failure is stored (`failed`,
    with `failed_stats`), how rank 0's results, one per round so far, become points
    (`points(results, points_so_far)`), and `resume_key`: the workload key that, finished in an
    earlier invocation of the run, skips this world size (None: never skipped)."""

    nproc: int
    job: dict
    key: dict
    failed: Workload
    points: Callable[[list[dict], list[Measurement]], list[Measurement]]
    failed_stats: dict | None = None
    resume_key: str | None = None
    later_job: dict | None = None


def what(w: Workload) -> str:
    """A launch's point in words, for warnings and errors: "world size 2", or a loaded reference."""
    if w.loaded:
        return f"loaded reference ({w.concurrent_copies} one-worker copies at once)"
    return f"world size {w.world_size}"


def _run_one(launching: Launching, item: Launch, round_: int) -> dict:
    """One launch of `item` in round `round_`; rank 0's result with the loop's `LAUNCH_FACTS`:
    the round, the Unix time it started and the hypervisor's steal share around it."""
    job = item.job if round_ == 0 or item.later_job is None else item.later_job
    # A rendezvous id of its own per round: a node that left round r early must not meet round
    # r's closed rendezvous (same id) when it joins round r + 1.
    spec = launch_spec(launching, item.nproc, job, dict(item.key, round=round_))
    started, before = time.time(), cpu_jiffies()
    result = launch(spec)
    result[LAUNCH_FACTS] = {"round": round_, "started_at_s": started,
                            "steal_share": steal_share(before, cpu_jiffies())}
    return result


def launch_and_store(launching: Launching, launches: Callable[[], Iterable[Launch]],
                     sink: Sink = Sink(), rounds: int = 1) -> list[Measurement]:
    """Run each launch (built by `launches()`, after the worker checks) `rounds` times, interleaved
    (module docstring); store the points as they come (node rank 0) and return them; raise
    WorldSizeFailed on the first failed launch."""
    for nproc in launching.nproc:
        for message in check_workers(nproc, launching.device):
            sink.warn(message)
    storing = sink.storing(launching)
    done = (sink.store.finished_keys(sink.run_id) if storing and launching.nnodes == 1
            and sink.run_id is not None else set())
    items: list[Launch] = []
    for item in launches():
        if item.resume_key is not None and item.resume_key in done:
            sink.warn(f"{what(item.failed)}: already measured in this run, skipped")
        else:
            items.append(item)
    results: list[list[dict]] = [[] for _ in items]
    points: list[Measurement] = []

    def keep(new: list[Measurement]) -> None:
        for point in new:
            if storing:
                sink.store.add_measurement(sink.run_id, point)
            points.append(point)
            if sink.on_point:
                sink.on_point(point)

    def partial(skip: int | None) -> None:
        """Every world size but `skip` measured in some rounds, not yet stored: from what it has."""
        for j, other in enumerate(items):
            if j != skip and 0 < len(results[j]) < rounds:
                keep(other.points(results[j], points))

    for r in range(rounds):
        for i, item in enumerate(items):
            try:
                results[i].append(_run_one(launching, item, r))
            except LaunchFailed as e:
                partial(i)
                where = f" (launch {r + 1} of {rounds})" if rounds > 1 else ""
                failed = Measurement(item.failed, e.status, error=f"{what(item.failed)}{where}: {e}")
                if storing:
                    sink.store.add_measurement(sink.run_id, failed)
                raise WorldSizeFailed(failed.error, points + [failed]) from None
            except Terminated:  # nnscale stopped, not this world size: it keeps its rounds too
                partial(None)
                raise
            if r == rounds - 1:
                keep(item.points(results[i], points))
    return points


def median_launch(launches: list[Measurement]) -> int:
    """The index of the typical launch of a point, the one whose median step is the median of the
    k: a breakdown or per-rank list taken from it describes a step that was measured (parts averaged
    over launches would describe none), neither the fastest nor the slowest."""
    by_median = sorted(range(len(launches)), key=lambda i: launches[i].stats.timing.median_ms)
    return by_median[(len(launches) - 1) // 2]


def rounds_status(point: Measurement, measured: int, rounds: int) -> tuple[str, str | None]:
    """The status and error of a point combined from `measured` of its `rounds` launches: unstable,
    saying so, when the run stopped before the others (launch_and_store's partial points)."""
    if measured >= rounds:
        return point.status, point.error
    why = f"measured in {measured} of {rounds} launches: the run stopped before the others"
    return "unstable", "; ".join(x for x in (why, point.error) if x)
