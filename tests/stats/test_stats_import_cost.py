"""The statistics a measuring worker needs come without scipy.stats (about 0.9 s of CPU at every
worker's start-up), and with the very values scipy.stats gives."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy import stats as sps

from nnscale.stats.summary import _binom_cdf, median_ci_ranks, t_quantile

SRC = str(Path(__file__).resolve().parents[2] / "src")


def test_a_measuring_worker_does_not_import_scipy_stats():
    code = ("import json, sys; import nnscale.measure.worker, nnscale.measure.methodology, nnscale.stats; "
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith('scipy.stats'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env=dict(os.environ, PYTHONPATH=SRC))
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout) == []


def test_t_quantile_and_binomial_cdf_are_scipy_stats_values_bit_for_bit():
    for dof in (1, 2, 3, 5, 9, 29, 119, 1999):
        for q in (0.9, 0.95, 0.975, 0.995):
            assert t_quantile(q, dof) == float(sps.t.ppf(q, dof)), (q, dof)
    for n in (1, 2, 6, 7, 40, 121, 1000):
        k = np.arange((n + 1) // 2, dtype=float)
        assert np.array_equal(_binom_cdf(k, n, 0.5), sps.binom.cdf(k, n, 0.5)), n
    assert median_ci_ranks(5) is None and median_ci_ranks(6)[:2] == (0, 5)
