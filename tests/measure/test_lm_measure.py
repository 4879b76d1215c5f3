"""Language models measured: the prefill, decode and training steps in the torch backend, a real
sweep of the tiny LM in worker processes into a real store (tokens/s, FLOPs, the sequence length
in the key), and bad input refused in one line before anything is stored."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import pytest
import torch

from measure_helpers import SHORT
from nnscale.cli import main
from nnscale.errors import UserError
from nnscale.measure.point import derive
from nnscale.measure.sweep import SweepConfig, resolve, run_sweep
from nnscale.measure.backends.torch import TorchBackend
from nnscale.records import Measurement, Workload
from nnscale.store import open_store
from nnscale.zoo.lm_shapes import lm_shape

pytest.importorskip("transformers")


def _w(mode, batch=2, seq=16, **kw):
    return Workload("tiny-lm", mode, batch, (seq,), threads=1, **kw)


def test_decode_steps_repeat_at_the_same_context_and_prefill_gives_every_position():
    backend = TorchBackend()
    prefill = backend.prepare(_w("inference"))
    assert prefill.step().shape == (2, 16, 512)  # logits of every position, cache built too
    decode = backend.prepare(_w("decode"))
    out = [decode.step() for _ in range(3)]
    assert all(o.shape == (2, 1, 512) for o in out)
    # the cache is cut back after each step: every step attends to the same 15 positions
    torch.testing.assert_close(out[0], out[2])


def test_training_learns_and_checkpointing_recomputes_the_same_loss():
    losses = {}
    for ckpt in (False, True):
        prepared = TorchBackend().prepare(_w("training", activation_checkpointing=ckpt), seed=3)
        losses[ckpt] = [prepared.step().item() for _ in range(3)]
        saved = []  # what the step's autograd keeps for backward, outside recomputed blocks
        with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.numel()) or t, lambda t: t):
            prepared.step()
        losses[ckpt, "saved"] = sum(saved)
    # with checkpointing the blocks' activations are recomputed, not kept
    assert losses[True, "saved"] < losses[False, "saved"]
    # next-token cross-entropy of random ids starts near ln(512) and SGD lowers it
    assert abs(losses[False][0] - torch.log(torch.tensor(512.0)).item()) < 0.5
    assert losses[False][2] < losses[False][0]
    assert losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_a_stored_workload_keeps_its_key():
    # Keys of points stored before activation_checkpointing, strategy and the distributed fields existed (resume must still
    # find them).
    w = Workload("resnet50", "training", 8, (3, 224, 224))
    first = ("model", "mode", "batch_size", "input_shape", "device", "precision", "channels_last",
             "compile", "threads", "framework", "world_size")  # the fields of the first release
    old = {k: v for k, v in asdict(w).items() if k in first}
    assert w.key() == hashlib.sha256(json.dumps(old, sort_keys=True, default=list).encode()).hexdigest()[:16]
    assert Workload("tiny-lm", "training", 1, (16,)).key() != Workload("tiny-lm", "training", 1, (32,)).key()
    assert w.key() != Workload("resnet50", "training", 8, (3, 224, 224), activation_checkpointing=True).key()


def test_a_real_sweep_stores_tokens_per_s_flops_and_the_sequence_length(tmp_path):
    cfg = SweepConfig(model="tiny-lm", modes=("inference", "decode", "training"), batches=(2,),
                      threads=1, input_shape=(16,), policy=SHORT, activation_checkpointing=True)
    with open_store(str(tmp_path / "r.db")) as store:
        run_sweep(cfg, store, run="lm", check_machine=False)
        stored = {m.workload.mode: m for m in store.measurements("lm")}
    assert set(stored) == {"inference", "decode", "training"}
    shape = lm_shape("tiny-lm")
    for mode, m in stored.items():
        assert m.status in ("ok", "unstable"), m.error
        s = m.stats
        assert m.workload.input_shape == (16,) and s.throughput.seq_len == 16
        assert m.workload.activation_checkpointing == (mode == "training")
        per = 1 if mode == "decode" else 16
        assert s.throughput.tokens_per_s == pytest.approx(s.throughput.samples_per_s * per)
    assert stored["decode"].stats.throughput.tokens_per_s_per_sequence == pytest.approx(
        1000 / stored["decode"].stats.timing.median_ms)
    assert stored["inference"].stats.throughput.lm_phase == "prefill"
    # FLOPs per sequence: FlopCounterMode's counts, equal to the analytic ones for this model
    assert stored["training"].stats.compute.flop_per_sample == shape.train_flops_per_token(16) * 16
    assert stored["inference"].stats.compute.flop_per_sample == shape.forward_flops_per_token(16) * 16
    assert stored["decode"].stats.compute.flop_per_sample == 2 * shape.params_matmul() + 4 * 2 * 64 * 16


def test_mfu_of_an_lm_point_is_model_flops_over_the_peak():
    w = _w("training")
    m = Measurement(w, "ok", (10.0,), {"samples_per_s": 200.0, "step_time_ms": 10.0})
    flops = int(lm_shape("tiny-lm").train_flops_per_token(16) * 16)
    d = derive(m, flops, 1e11)
    assert d.stats.compute.mfu == pytest.approx(flops * 200.0 / 1e11)
    assert d.stats.throughput.tokens_per_s == pytest.approx(200.0 * 16)


@pytest.mark.parametrize("kw, needle", [
    (dict(model="tiny-lm", input_shape=(3, 8, 8)), "--seq-len"),
    (dict(model="tiny-lm", input_shape=(257,)), "from 2 to 256"),
    (dict(model="test-tiny-mlp", modes=("decode",)), "decode is for language models"),
    (dict(model="test-tiny-mlp", modes=("training",), activation_checkpointing=True), "language models"),
    (dict(model="tiny-lm", modes=("inference",), activation_checkpointing=True), "training only"),
])
def test_bad_lm_configs_are_refused(kw, needle):
    with pytest.raises(UserError, match=needle):
        resolve(SweepConfig(threads=1, **kw))


@pytest.mark.parametrize("args, needle", [
    (["tiny-lm", "--seq-len", "257"], "from 2 to 256, its maximum"),
    (["test-tiny-mlp", "--seq-len", "16"], "--seq-len is for language models"),
])
def test_cli_bad_seq_len_one_line_exit_2_nothing_stored(tmp_path, args, needle, capsys):
    db = tmp_path / "r.db"
    assert main(["sweep", *args, "--db", str(db)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0]
    assert not db.exists()
