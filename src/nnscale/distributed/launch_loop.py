"""The one launch-and-store loop of `nnscale scale` and `nnscale allreduce`.

Both launch the workers once per world size (`launch`), turn rank 0's result into points and store
each as it completes. A launch that fails is stored as one point with its status ("error",
"timeout") and the loop stops there with `WorldSizeFailed`; the points before it stay stored.
Multi-node: every node runs the loop with the same configuration; only node rank 0 stores, and only
a single-node run is resumed (the other nodes could not know what rank 0 skipped).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from nnscale.distributed.config import Launching, check_workers
from nnscale.distributed.launch import LaunchFailed, launch, launch_spec
from nnscale.records import Measurement, Workload


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
    """One world size: what the workers are asked (`job`, and `key`, what identifies the job to
    them), how a failure is stored (`failed`, with `failed_stats`), how rank 0's result becomes
    points (`points(result, points_so_far)`), and `resume_key`: the workload key that, finished in an
    earlier invocation of the run, skips this launch (None: never skipped)."""

    nproc: int
    job: dict
    key: dict
    failed: Workload
    points: Callable[[dict, list[Measurement]], list[Measurement]]
    failed_stats: dict | None = None
    resume_key: str | None = None


def launch_and_store(launching: Launching, launches: Callable[[], Iterable[Launch]],
                     sink: Sink = Sink()) -> list[Measurement]:
    """Run each launch (built lazily by `launches()`, after the worker checks), store its points as
    they come (node rank 0) and return them; raise WorldSizeFailed on the first failed launch."""
    for nproc in launching.nproc:
        for message in check_workers(nproc, launching.device):
            sink.warn(message)
    storing = sink.storing(launching)
    done = (sink.store.finished_keys(sink.run_id) if storing and launching.nnodes == 1
            and sink.run_id is not None else set())
    points: list[Measurement] = []
    for item in launches():
        world = item.failed.world_size
        if item.resume_key is not None and item.resume_key in done:
            sink.warn(f"world size {world}: already measured in this run, skipped")
            continue
        try:
            result = launch(launch_spec(launching, item.nproc, item.job, item.key))
        except LaunchFailed as e:
            failed = Measurement(item.failed, e.status, error=f"world size {world}: {e}")
            if storing:
                sink.store.add_measurement(sink.run_id, failed)
            raise WorldSizeFailed(failed.error, points + [failed]) from None
        for point in item.points(result, points):
            if storing:
                sink.store.add_measurement(sink.run_id, point)
            points.append(point)
            if sink.on_point:
                sink.on_point(point)
    return points
