"""A full disk while writing the report or the device cache: one line, exit code 2, no temporary
file left, nothing partial. The disk is a real one: a 64 KiB tmpfs mounted for the test (root is
not stopped by a read-only mode, so a full file system is the fault that stops everyone)."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from nnscale.records import Measurement, Workload
from nnscale.store import open_store

SRC = str(Path(__file__).resolve().parents[2] / "src")


@pytest.fixture
def full_disk(tmp_path):
    """A tmpfs of 64 KiB with all but about 12 KiB taken."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        reason = f"cannot mount a tmpfs (needs root): {mounted.stderr.strip()}"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{reason} (CI=true: this test must run in CI)")
        pytest.skip(reason)
    try:
        st = os.statvfs(mnt)
        (mnt / "filler").write_bytes(b"x" * (st.f_bavail * st.f_frsize - 12 * 1024))
        yield mnt
    finally:
        subprocess.run(["umount", str(mnt)], check=True)


def _store_with_points(path: Path) -> None:
    with open_store(str(path)) as store:
        run = store.create_run("r")
        for batch in (1, 2, 4, 8):
            w = Workload("test-tiny-mlp", "inference", batch, (1, 8, 8))
            ms = tuple(float(batch) + i / 10 for i in range(20))
            store.add_measurement(run, Measurement(w, "ok", samples_ms=ms,
                                                   stats={"samples_per_s": batch * 1000 / ms[0],
                                                          "step_time_ms": ms[0]}))


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_report_on_a_full_disk_is_one_line_and_leaves_nothing_partial(tmp_path, full_disk):
    db = tmp_path / "r.db"
    _store_with_points(db)
    out = full_disk / "report"
    env = dict(os.environ, PYTHONPATH=SRC)
    r = subprocess.run([sys.executable, "-m", "nnscale", "report", "r", "--db", str(db),
                        "--out", str(out), "--no-netstats"], env=env, capture_output=True,
                       text=True, timeout=120)
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(lines) == 1 and "cannot write the report" in lines[0], lines
    assert "No space left on device" in lines[0], lines[0]
    left = _files(full_disk) - {"filler"}
    assert not any(name.endswith(".tmp") for name in left), left
    assert left <= {"report", "report/figures"}, left  # no half report: no file of it at all
    # With room, the same command writes the whole report.
    (full_disk / "filler").unlink()
    ok = subprocess.run([sys.executable, "-m", "nnscale", "report", "r", "--db", str(db), "--out",
                         str(tmp_path / "roomy"), "--no-netstats"], env=env, capture_output=True,
                        text=True, timeout=120)
    assert ok.returncode == 0 and (tmp_path / "roomy" / "index.html").exists(), ok.stderr[-2000:]


def test_device_cache_on_a_full_disk_is_one_line_and_keeps_the_old_cache(full_disk, monkeypatch):
    from nnscale.errors import UserError
    from nnscale.measure.device import DeviceProfile, cache_path, save_profile

    monkeypatch.setenv("XDG_CACHE_HOME", str(full_disk))
    cache_path().parent.mkdir()
    cache_path().write_text("{}")
    big = {f"p{i}": 1e12 + i for i in range(2000)}  # about 60 KiB of JSON: more than is free
    profile = DeviceProfile(host="h", device_name=uuid.uuid4().hex, torch_version="t", threads=1,
                            gemm_flop_per_s=big)
    with pytest.raises(UserError, match="cannot write the device cache .*No space left") as e:
        save_profile(profile)
    assert "\n" not in str(e.value)
    assert cache_path().read_text() == "{}"  # the old cache is kept
    assert sorted(os.listdir(cache_path().parent)) == ["device-peaks.json"]  # no temporary file
