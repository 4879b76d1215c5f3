"""Language-model workloads: their checks, their timed steps in the torch backend, and the tokens/s
and FLOPs stored with each point.

A language model's workload has input_shape (S,), the sequence length, so S is stored with the
point and is part of its key; its batch is sequences. Its three modes (docs/transformers.md):
- "inference" is the prefill: one forward pass over the S tokens of each sequence that also
  builds the key/value cache (`use_cache=True`, as a server's prefill does); tokens/s = batch·S/step.
- "decode": one new token per sequence and step attending to a cache of S − 1 positions; after
  each step the cache is cut back to S − 1, so every step is the same (`CausalLM.drop_last`).
  tokens/s in total = batch/step, per sequence = 1/step (what one user of a server sees).
- "training": forward, next-token cross-entropy, backward, the backend's optimizer (SGD with
  momentum, as for the CNNs); `activation_checkpointing` recomputes each block in the backward pass.
Token ids are random (fixed seed): speed does not depend on them, and no data set is read.

FLOPs per sequence for MFU come from `nnscale.netstats.lm` (FlopCounterMode): forward per token × S
for the prefill, training per token × S, one decode step's count for decode; activation
checkpointing's recomputed forward is not counted (MFU counts model FLOPs, not hardware FLOPs:
Chowdhery et al. 2022, appendix B).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache

from nnscale.errors import UserError
from nnscale.records import DECODE, Workload
from nnscale.records_stats import Stats, Throughput
from nnscale.zoo import model_info


def is_lm(model: str) -> bool:
    """Whether `model` is a language model of the zoo; False for names the registry does not know
    (the all-reduce benchmark's points, a point read back from another version's store)."""
    try:
        return model_info(model).is_lm
    except UserError:
        return False


def check_lm_config(model: str, modes: tuple[str, ...], input_shape: tuple[int, ...] | None,
                    activation_checkpointing: bool, framework: str, channels_last: bool,
                    compile: bool = False) -> None:
    """UserError (one line, exit 2) for options a language model or a vision model cannot take."""
    info = model_info(model)
    if not info.is_lm:
        if DECODE in modes:
            raise UserError(f"mode decode is for language models; {model} is not one (see "
                            "`nnscale models`, family lm)")
        if activation_checkpointing:
            raise UserError(f"--activation-checkpointing is for language models; {model} is not one")
        return
    from nnscale.netstats.lm import check_seq_len

    if framework != "torch":
        raise UserError(f"language models run with framework torch only, not {framework!r}")
    if channels_last:
        raise UserError(f"--channels-last is an image memory format; {model} takes token ids")
    if compile:  # the prefill/decode steps call the model's own methods, which are not compiled
        raise UserError(f"--compile is not supported for language models yet ({model}): measure eager")
    if input_shape is not None:
        if len(input_shape) != 1:
            raise UserError(f"{model} is a language model: give --seq-len S, not an image size")
        check_seq_len(model, input_shape[0])
    if activation_checkpointing and "training" not in modes:
        raise UserError("--activation-checkpointing changes training only; add --mode training")


def tokens_per_sample(w: Workload) -> int:
    """Tokens one sample (sequence) of the workload processes per step: S, or 1 when decoding."""
    return 1 if w.mode == DECODE else int(w.input_shape[0])


def lm_rates(w: Workload, stats: Stats) -> Throughput:
    """The point's throughput with tokens/s (median and CI), per sequence for decode, and the
    sequence length, from its samples/s (sequences per second)."""
    t = stats.throughput
    per = tokens_per_sample(w)
    step = stats.timing.median_ms

    def tokens(v):
        return None if v is None else v * per

    return replace(t, seq_len=int(w.input_shape[0]), tokens_per_sample=per, lm_phase=(
        "decode" if w.mode == DECODE else "prefill" if w.mode == "inference" else "training"),
        tokens_per_s=tokens(t.samples_per_s), tokens_per_s_ci_low=tokens(t.samples_per_s_ci_low),
        tokens_per_s_ci_high=tokens(t.samples_per_s_ci_high),
        tokens_per_s_per_sequence=1000.0 / step if w.mode == DECODE and step else
        t.tokens_per_s_per_sequence)


@lru_cache(maxsize=64)
def _lm_stats(model: str, seq_len: int):
    from nnscale.netstats.lm import lm_stats

    return lm_stats(model, seq_len)


def flops_per_sample(w: Workload) -> int | None:
    """Model FLOPs of one sequence's step (netstats.lm)."""
    s = _lm_stats(w.model, int(w.input_shape[0]))
    if w.mode == DECODE:
        return int(s.decode_flops_per_token)
    per_token = s.forward_flops_per_token if w.mode == "inference" else s.training_flops_per_token
    return int(per_token * w.input_shape[0])


def lm_step(model, w: Workload, device, amp: Callable, optimizer_step: Callable) -> Callable[[], object]:
    """The timed step of a language-model workload (module docstring). `model` is the zoo's
    CausalLM on `device`; `optimizer_step(loss)` runs backward and the optimizer."""
    import torch

    from nnscale.netstats.lm import next_token_loss

    vocab = model.shape.vocab_size
    seq = int(w.input_shape[0])
    ids = torch.randint(0, vocab, (w.batch_size, seq), device=device)
    if w.mode == "training":
        model.train()
        if w.activation_checkpointing:
            model.enable_activation_checkpointing()

        def train():
            with amp():
                loss = next_token_loss(model(ids), ids)
            optimizer_step(loss)
            return loss

        return train
    model.eval()
    if w.mode == "inference":
        def prefill():
            with torch.inference_mode(), amp():
                return model.prefill(ids)[0]

        return prefill
    # The cache holds what the projections give: the autocast dtype under bf16/fp16.
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(w.precision, torch.float32)
    with torch.inference_mode():
        cache = model.filled_cache(w.batch_size, seq - 1, dtype)
    token = ids[:, :1]

    def decode():
        with torch.inference_mode(), amp():
            logits = model.decode(token, cache)
        model.drop_last(cache)
        return logits

    return decode
