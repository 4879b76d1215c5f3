"""Memory per GPU of language-model layouts: exact counts, ZeRO/FSDP sharding, Korthikanti's formulas."""

import pytest

from nnscale.errors import UserError
from nnscale.predict.memory import (Layout, activation_bytes_per_layer, in_flight, largest_micro_batch,
                                    memory_per_gpu, shape_by_name, state_bytes, stage_params)
from nnscale.zoo.lm_shapes import LMShape

TINY = shape_by_name("tiny-lm")
# A GPT-3-style block (LayerNorm, 4h GELU MLP, dropout, no fused attention): Korthikanti's setting.
GPT = LMShape("gpt-test", "gpt2", 51_200, 1_024, 8, 16, 16, 4_096, 2_048, True)


def test_hand_computed_tiny_lm_memory_exactly():
    # tiny-lm: vocab 512, d 64, 2 layers, 4 heads, 2 KV heads (kv_dim 32), FFN 172, untied.
    # Per layer: Q 64*64 + K,V 2*64*32 + O 64*64 + SwiGLU 3*64*172 + 2 norms 2*64 = 45,440.
    # Total: 2*45,440 + embedding 512*64 + head 512*64 + final norm 64 = 156,480 parameters.
    assert stage_params(TINY, Layout()) == 156_480
    mem = memory_per_gpu(TINY, Layout(), seq_len=16, micro_batch=2)
    assert mem.weights == 156_480 * 2 and mem.gradients == 156_480 * 2 and mem.optimizer == 156_480 * 12
    # Activations per token and layer: norm1 in, QKV in, norm2 in, MLP in = 4 * 2*64 = 512 bytes;
    # Q 2*64, K and V 4*32, attention out 2*64, gate, up, SiLU, product 8*172 = 1,760 bytes.
    assert mem.activations == (512 + 1_760) * 32 * 2  # 32 tokens, 2 layers
    # Output: final norm in and out (2 x 64 x 2 bytes) and logits, log-softmax, their gradients.
    assert mem.logits == 32 * (512 * (2 + 4 + 4 + 4) + 2 * 64 * 2)
    assert mem.buffers == 0 and mem.working == 0
    # Peak: weights and Adam states held; gradients (set to None by zero_grad) are made as backward
    # frees activations, so the larger of the start (activations, logits, the head's gradient
    # 512*64*2 bytes) and the end (every gradient, 312,960 bytes).
    assert mem.early_gradients == 512 * 64 * 2
    assert mem.total == 312_960 + 1_877_760 + max(145_408 + 237_568 + 65_536, 312_960) == 2_639_232
    # Accumulating over 2 micro-batches keeps the gradients: everything at once.
    acc = memory_per_gpu(TINY, Layout(), seq_len=16, micro_batch=2, micro_batches=2)
    assert acc.total == 2_503_680 + 145_408 + 237_568
    assert memory_per_gpu(TINY, Layout(), 16, 2, transient_gradients=False).total == acc.total


def test_fsdp_degree_one_is_ddp_and_full_sharding_divides_every_state():
    ddp = memory_per_gpu(TINY, Layout(dp=4), 16, 2)
    assert ddp == memory_per_gpu(TINY, Layout(dp=4, fsdp=1), 16, 2) == memory_per_gpu(TINY, Layout(), 16, 2)
    fsdp = memory_per_gpu(TINY, Layout(dp=4, fsdp=4), 16, 2)
    for part in ("weights", "gradients", "optimizer"):
        assert getattr(fsdp, part) == getattr(ddp, part) / 4
    assert fsdp.buffers == TINY.params_per_layer() * (2 * 2 + 2)  # two gathered layers, one's gradients
    assert fsdp.activations == ddp.activations
    # ZeRO 1 shards only the optimizer states, ZeRO 2 the gradients too (Rajbhandari et al. 2020).
    z1, z2 = (state_bytes(1000, Layout(dp=4), zero=z) for z in (1, 2))
    assert z1 == {"weights": 2000, "gradients": 2000, "optimizer": 3000}
    assert z2 == {"weights": 2000, "gradients": 500, "optimizer": 3000}


@pytest.mark.parametrize("t", [1, 2, 4, 8])
def test_activations_follow_korthikanti_per_layer(t):
    s, b, h, a = 2048, 2, GPT.hidden_size, GPT.num_heads
    sbh = s * b * h
    none = activation_bytes_per_layer(GPT, s, b, tp=t, sequence_parallel=False)
    assert none == pytest.approx(sbh * (10 + 24 / t + 5 * a * s / (h * t)))
    sp = activation_bytes_per_layer(GPT, s, b, tp=t, sequence_parallel=True)
    assert sp == pytest.approx(sbh * (34 / t + 5 * a * s / (h * t)))
    assert activation_bytes_per_layer(GPT, s, b, tp=t, recompute="selective") == pytest.approx(sbh * 34 / t)
    assert activation_bytes_per_layer(GPT, s, b, tp=t, recompute="full") == pytest.approx(2 * sbh / t)
    if t == 1:
        assert none == pytest.approx(sbh * (34 + 5 * a * s / h))


def test_pipeline_holds_micro_batches_in_flight():
    assert in_flight(Layout(pp=1), 16) == 1
    assert in_flight(Layout(pp=4), 16) == 4  # 1F1B: p micro-batches on the first stage
    assert in_flight(Layout(pp=4), 2) == 2  # fewer micro-batches than stages
    assert in_flight(Layout(pp=4, v=2), 16) == pytest.approx(4 * (1 + 3 / 8))  # interleaved
    shape = shape_by_name("llama3-8b")
    one = memory_per_gpu(shape, Layout(pp=1), 4096, 1, 8, "full")
    four = memory_per_gpu(shape, Layout(pp=4), 4096, 1, 8, "full")
    assert four.activations == pytest.approx(one.activations)  # L/p layers x p micro-batches


def test_largest_micro_batch_is_the_last_that_fits():
    shape = shape_by_name("llama3-8b")
    layout = Layout(dp=8, fsdp=8)
    cap = 80e9
    b = largest_micro_batch(shape, layout, 8192, cap, recompute="full")
    assert b >= 1
    assert memory_per_gpu(shape, layout, 8192, b, recompute="full", capacity_bytes=cap).fits
    assert not memory_per_gpu(shape, layout, 8192, b + 1, recompute="full", capacity_bytes=cap).fits
    assert largest_micro_batch(shape_by_name("llama3-405b"), Layout(), 8192, cap) == 0


def test_bad_layouts_are_user_errors():
    with pytest.raises(UserError, match="must divide"):
        Layout(tp=3).check(shape_by_name("llama3-8b"))
    with pytest.raises(UserError, match="layers"):
        Layout(pp=64).check(shape_by_name("llama3-8b"))
    with pytest.raises(UserError, match="unknown language model"):
        shape_by_name("llama9")


def test_fp32_sgd_ddp_on_cpu_hand_computed():
    # The CPU measurement's setting: fp32, SGD with momentum, PyTorch DDP's bucket copy, eager ops.
    p = 156_480
    mem = memory_per_gpu(TINY, Layout(dp=2), 16, 2, precision="fp32", optimizer="sgd-momentum",
                         eager=True, ddp_bucket_copy=True)
    assert (mem.weights, mem.gradients, mem.optimizer, mem.buffers) == (4 * p, 4 * p, 4 * p, 4 * p)
    # Elements per token and layer: 4h + 2h (RMSNorm's normalised inputs) + Q, K, V, attention out
    # (64 + 2*32 + 64) + SwiGLU's four tensors 4*172 = 1,264, at 4 bytes.
    assert mem.activations == 1_264 * 4 * 32 * 2
    assert mem.logits == 32 * (512 * 16 + 3 * 64 * 4)  # RMSNorm eager: in, normalised, out
    fsdp = memory_per_gpu(TINY, Layout(dp=2, fsdp=2), 16, 2, precision="fp32", optimizer="sgd-momentum")
    assert fsdp.weights == 2 * p and fsdp.buffers == TINY.params_per_layer() * (2 * 4 + 4)
    root = memory_per_gpu(TINY, Layout(dp=2, fsdp=2), 16, 2, precision="fp32", optimizer="sgd-momentum",
                          fsdp_root_gathered=True)
    # FSDP2 keeps the root unit (embedding 512*64, final norm 64, head 512*64) gathered, grads whole.
    assert root.buffers - fsdp.buffers == (32_768 + 64 + 32_768) * (4 + 4)
