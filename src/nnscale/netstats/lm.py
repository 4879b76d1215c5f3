"""Statistics of a language model at a sequence length: parameters, FLOPs per token (forward,
training, one decode step), the attention share, activation memory and the KV cache per token.

Counting: `torch.utils.flop_counter.FlopCounterMode` over one sequence (batch 1) of the model built
on the meta device, its forward and backward run under `FakeTensorMode` — shapes only, nothing
computed or allocated, so Llama 3 405B is counted like the tiny LM. Fake rather than plain meta
tensors because Hugging Face's mask code asks data-dependent questions (`.all()` on position ids,
transformers/masking_utils.py) that meta tensors refuse and fake tensors are let through as
"tracing".

What FlopCounterMode counts for attention: on the meta/fake device `scaled_dot_product_attention`
takes its math path, seen as two batched matmuls (Q·Kᵀ and P·V) over the *full* s×s score matrix,
and its backward as four more: 4·s·d per token and layer forward, 12·s·d training, causal mask or
not. FlopCounterMode's own formula for the fused kernels (flash / efficient / cuDNN, on CUDA) counts
the same full s×s. This is the convention of the analytic count it is checked against,
6·N + 12·L·d·s per token for training (Chowdhery et al. 2022, "PaLM", appendix B; N the matmul
weights, `LMShape.params_matmul`); a causal kernel that skips the masked half does about half the
attention work, so MFU computed from these counts is the conventional (PaLM) one.

Activation memory per token (training, batch-independent): the formula of Korthikanti et al. 2022,
"Reducing Activation Recomputation in Large Transformer Models", section 4.1: s·b·h·(34 + 5·a·s/h)
bytes per layer, i.e. 34·h + 5·a·s per token and layer — 16-bit activations, 1-byte dropout masks,
a GPT block (4h MLP, multi-head attention); for Llama's SwiGLU and grouped-query blocks it is an
estimate. With full activation checkpointing only each layer's input stays (2·h bytes per token and
layer), and the layer being recomputed needs its own 34·h + 5·a·s again during the backward pass.
Beside the formula, `activation_bytes_per_token_measured` is what autograd saves for the backward
pass of the fp32 model built here (saved_tensors_hooks, each storage once, parameters excluded),
logits and loss included.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from nnscale.errors import UserError
from nnscale.netstats.counting import saved_tensor_hooks
from nnscale.zoo import create_model, model_info
from nnscale.zoo.lm_shapes import LMShape

_aten = torch.ops.aten
# Weight matmuls: the projections and the output head (nn.Linear -> mm / addmm, GPT-2's Conv1D ->
# addmm). Everything else FlopCounterMode counts in these models is attention's activation matmuls.
_WEIGHT_OPS = (_aten.mm, _aten.addmm)


@dataclass(frozen=True, slots=True)
class LMStats:
    model: str
    seq_len: int
    params_total: int  # counted on the built model (tied embeddings once)
    params_embedding: int  # token (and learned position) embeddings
    params_non_embedding: int
    forward_flops_per_token: float  # counted, one sequence of seq_len
    training_flops_per_token: float  # counted: forward + backward
    analytic_training_flops_per_token: float  # 6·N + 12·L·d·s (PaLM, appendix B)
    training_flops_rel_diff: float  # counted / analytic − 1
    attention_flops_share: float  # of the training FLOPs: the s×s matmuls (Q·Kᵀ, P·V and backward)
    decode_flops_per_token: float  # one new token attending to seq_len − 1 cached ones (counted)
    activation_bytes_per_token: int  # Korthikanti et al. 2022, all layers, no checkpointing
    activation_bytes_per_token_checkpointed: int  # layer inputs only (full recomputation)
    recompute_bytes_per_token: int  # one layer's activations, needed again while it is recomputed
    activation_bytes_per_token_measured: int  # saved for backward, fp32, this build
    kv_cache_bytes_per_token_bf16: int
    kv_cache_bytes_per_token_fp32: int

    def to_dict(self) -> dict:
        return asdict(self)


def check_seq_len(name: str, seq_len: int) -> LMShape:
    """The model's shape, or a UserError for a non-LM or a sequence length outside 2..max."""
    info = model_info(name)
    if not info.is_lm:
        raise UserError(f"--seq-len is for language models; {name} takes images "
                        f"{'x'.join(map(str, info.input_shape))} (use --input-size)")
    shape = info.lm_shape
    if not isinstance(seq_len, int) or isinstance(seq_len, bool) or not 2 <= seq_len <= shape.max_seq_len:
        raise UserError(f"bad --seq-len {seq_len!r} for {name}: expected an integer from 2 to "
                        f"{shape.max_seq_len}, its maximum sequence length")
    return shape


def _fake_mode():
    from torch._subclasses.fake_tensor import FakeTensorMode

    return FakeTensorMode(allow_non_fake_inputs=True)


def _attention_and_total(counter: FlopCounterMode) -> tuple[int, int]:
    ops = counter.get_flop_counts().get("Global", {})
    total = sum(ops.values())
    return total - sum(ops.get(op, 0) for op in _WEIGHT_OPS), total


def next_token_loss(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of each position's logits against the next token (the LM training loss)."""
    return F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]).float(), ids[:, 1:].reshape(-1))


def count_lm(model: nn.Module, vocab: int, seq_len: int) -> dict:
    """FLOPs of one sequence — forward, training (forward + backward) and their attention part —
    and the bytes autograd saves for backward, under fake tensors (module docstring)."""
    hooks, saved = saved_tensor_hooks(model)
    model.train()
    with _fake_mode():
        ids = torch.randint(0, vocab, (1, seq_len), device="meta")
        counter = FlopCounterMode(display=False)
        with counter, hooks:
            loss = next_token_loss(model(ids), ids)
            attn_fwd, forward = _attention_and_total(counter)
            loss.backward()
        attn, training = _attention_and_total(counter)
    model.zero_grad(set_to_none=True)
    return {"forward": forward, "training": training, "attention_forward": attn_fwd,
            "attention": attn, "saved_bytes": sum(saved.values())}


def count_decode(model: nn.Module, vocab: int, seq_len: int) -> int:
    """FLOPs of one decode step: a token attending to a cache of seq_len − 1 (prefill not counted)."""
    model.eval()
    with _fake_mode(), torch.no_grad():
        cache = model.filled_cache(1, seq_len - 1)
        counter = FlopCounterMode(display=False)
        with counter:
            model.decode(torch.randint(0, vocab, (1, 1), device="meta"), cache)
    return sum(counter.get_flop_counts().get("Global", {}).values())


def korthikanti_bytes_per_token(shape: LMShape, seq_len: int) -> tuple[int, int, int]:
    """(no checkpointing, full checkpointing, one layer's recompute set), bytes per token, from
    Korthikanti et al. 2022 section 4.1: sbh(34 + 5as/h) per layer, 2sbh with recomputation."""
    h, a, layers = shape.hidden_size, shape.num_heads, shape.num_layers
    per_layer = 34 * h + 5 * a * seq_len
    return layers * per_layer, layers * 2 * h, per_layer


def lm_stats(name: str, seq_len: int | None = None, *, beyond_context: bool = False) -> LMStats:
    """Statistics of language model `name` at `seq_len` (its default when None).

    `beyond_context` lets the count go past the model's maximum sequence length: shape arithmetic
    only (fake tensors never look a position up), for comparing models at one length — GPT-2's
    context is 1,024 but the issue compares FLOPs at 2,048. The CLI never sets it."""
    info = model_info(name)
    seq_len = info.input_shape[0] if seq_len is None and info.is_lm else seq_len
    if beyond_context and info.is_lm and isinstance(seq_len, int) and seq_len > info.lm_shape.max_seq_len:
        shape = info.lm_shape
    else:
        shape = check_seq_len(name, seq_len)
    with torch.device("meta"):
        model = create_model(name)
    total = sum(p.numel() for p in model.parameters())
    embedding = sum(m.weight.numel() for m in model.modules() if isinstance(m, nn.Embedding))
    counts = count_lm(model, shape.vocab_size, seq_len)
    decode = count_decode(model, shape.vocab_size, seq_len)
    analytic = shape.train_flops_per_token(seq_len)
    plain, checkpointed, recompute = korthikanti_bytes_per_token(shape, seq_len)
    return LMStats(
        model=name, seq_len=seq_len, params_total=total, params_embedding=embedding,
        params_non_embedding=total - embedding,
        forward_flops_per_token=counts["forward"] / seq_len,
        training_flops_per_token=counts["training"] / seq_len,
        analytic_training_flops_per_token=analytic,
        training_flops_rel_diff=counts["training"] / seq_len / analytic - 1.0,
        attention_flops_share=counts["attention"] / counts["training"],
        decode_flops_per_token=float(decode),
        activation_bytes_per_token=plain,
        activation_bytes_per_token_checkpointed=checkpointed,
        recompute_bytes_per_token=recompute,
        activation_bytes_per_token_measured=counts["saved_bytes"] // seq_len,
        kv_cache_bytes_per_token_bf16=shape.kv_cache_bytes_per_token(2),
        kv_cache_bytes_per_token_fp32=shape.kv_cache_bytes_per_token(4),
    )
