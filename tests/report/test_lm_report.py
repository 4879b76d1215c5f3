"""The report's language-model section: tokens/s and MFU against batch × sequence length, and its
table, from points as the LM sweep stores them (derive adds tokens/s and MFU)."""

from __future__ import annotations

from nnscale.measure.point import derive
from nnscale.records import Measurement, Workload
from nnscale.report import build_report

PEAK = 1e13  # FLOP/s, synthetic: these points reach 0.3 % (decode) to 37 % MFU


def _lm_point(mode, batch, seq, step_ms, flops):
    w = Workload("gpt2", mode, batch, (seq,))
    rate = 1000.0 * batch / step_ms
    m = Measurement(w, "ok", (step_ms,) * 10, {
        "samples_per_s": rate, "samples_per_s_ci_low": 0.98 * rate, "samples_per_s_ci_high": 1.02 * rate,
        "step_time_ms": step_ms, "peak_memory_bytes": 2**20 * batch * seq, "device_name": "cpu"})
    return derive(m, flops, PEAK)


def _points():
    out = []
    for seq in (128, 512):
        for batch in (1, 2, 4):
            out.append(_lm_point("inference", batch, seq, 10.0 * batch * seq / 128, 285e6 * seq))
            out.append(_lm_point("decode", batch, seq, 5.0 + batch, 285e6))
            out.append(_lm_point("training", batch, seq, 30.0 * batch * seq / 128, 854e6 * seq))
    cnn = Measurement(Workload("resnet50", "inference", 8, (3, 224, 224)), "ok", (10.0,) * 10,
                      {"samples_per_s": 800.0, "step_time_ms": 10.0})
    return out + [cnn]


def test_lm_plots_and_table():
    ms = _points()
    report = build_report(ms, {}, title="lm")
    ids = [p.id for p in report.plots]
    assert "lm-tokens-gpt2-0" in ids and "lm-mfu-gpt2-0" in ids
    # gpt2's points are not drawn against batch alone (their sequence lengths would share a curve)
    assert not any(i.startswith("throughput-gpt2") for i in ids)
    assert any(i.startswith("throughput-resnet50") for i in ids)
    svg = report.plot("lm-tokens-gpt2-0").svg
    assert "batch × sequence length" in svg and "S = 512" in svg and "decode" in svg
    table = report.table("lm")
    assert len(table.rows) == 18
    first = table.raw[0]  # prefill, S 128, batch 1: 100 sequences/s of 128 tokens
    assert (first["phase"], first["seq_len"], first["batch_size"]) == ("prefill", 128, 1)
    assert first["tokens_per_s"] == 100.0 * 128
    assert first["mfu"] == 285e6 * 128 * 100.0 / PEAK
    decode = next(r for r in table.raw if r["phase"] == "decode" and r["batch_size"] == 4)
    assert decode["tokens_per_s"] == 4000 / 9.0 and decode["per_sequence"] == 1000 / 9.0
    assert table.rows[0]["tokens_per_s"] == "12,800"
