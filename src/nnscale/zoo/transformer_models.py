"""Decoder-only language models (GPT-2, Llama 3) built by Hugging Face `transformers` from configs
filled in from `lm_shapes` — random weights, nothing downloaded (extra `nnscale[transformers]`).

Every shape of `nnscale.zoo.lm_shapes.LM_SHAPES` is registered in the family "lm" under its own
name. The registry's entry needs no `transformers` (it comes from the shape alone), so listing the
zoo works without the extra; building a model imports it, and without it the user gets one line
naming the extra (exit 2).

The built module is a `CausalLM`: `forward(token ids (batch, S)) -> logits (batch, S, vocab)`, as
every zoo model maps its input to scores, plus `prefill`/`decode` for generation with a key/value
cache and `enable_activation_checkpointing`. Build it under `torch.device("meta")` for statistics:
a 405B model then takes no memory (netstats.lm).

Attention runs through `torch.nn.functional.scaled_dot_product_attention` (attn_implementation
"sdpa"), the kernel PyTorch picks per device (flash / memory-efficient on CUDA, a fused CPU kernel).
GPT-2 keeps its published dropout of 0.1 (Radford et al. 2019 follow GPT-1's training setup),
Llama has none.
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from nnscale.errors import UserError
from nnscale.zoo.lm_shapes import LM_SHAPES, LMShape
from nnscale.zoo.registry import register_model

EXTRA_HINT = "pip install 'nnscale[transformers]'"
# The default sequence length of a sweep or of `stats` when none is given: the full context of
# GPT-2 (1,024), 2,048 for Llama 3 (its 131,072 would not fit a CPU, and 2,048 is the length the
# FLOP counts are checked at).
DEFAULT_SEQ_LEN_MAX = 2048

_PAPERS = {
    "gpt2": "Radford et al. 2019, Language Models are Unsupervised Multitask Learners",
    "llama": "Grattafiori et al. 2024, The Llama 3 Herd of Models",
}


def transformers_module(model: str = ""):
    """The `transformers` package, or a UserError naming the extra that installs it."""
    try:
        import transformers
    except ImportError:
        what = f"language model {model!r}" if model else "language models"
        raise UserError(f"{what} needs Hugging Face transformers, the optional extra: {EXTRA_HINT}") from None
    return transformers


def hf_config(shape: LMShape):
    """The Hugging Face config of `shape` (GPT2Config or LlamaConfig), every field from the shape."""
    tf = transformers_module(shape.name)
    if shape.arch == "gpt2":
        return tf.GPT2Config(
            vocab_size=shape.vocab_size, n_positions=shape.max_seq_len, n_embd=shape.hidden_size,
            n_layer=shape.num_layers, n_head=shape.num_heads, n_inner=shape.ffn_hidden_size,
            tie_word_embeddings=shape.tied_embeddings, attn_implementation="sdpa",
        )
    return tf.LlamaConfig(
        vocab_size=shape.vocab_size, hidden_size=shape.hidden_size,
        intermediate_size=shape.ffn_hidden_size, num_hidden_layers=shape.num_layers,
        num_attention_heads=shape.num_heads, num_key_value_heads=shape.num_kv_heads,
        max_position_embeddings=shape.max_seq_len, rope_theta=shape.rope_theta,
        tie_word_embeddings=shape.tied_embeddings, attention_bias=False, mlp_bias=False,
        attn_implementation="sdpa",
    )


class CausalLM(nn.Module):
    """A Hugging Face causal LM behind nnscale's interface: token ids in, logits out."""

    def __init__(self, hf: nn.Module, shape: LMShape) -> None:
        super().__init__()
        self.hf = hf
        self.shape = shape
        # transformers 5 renamed `past_key_values` (argument and output) to `cache`.
        self._cache_arg = "cache" if "cache" in inspect.signature(hf.forward).parameters else "past_key_values"

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.hf(input_ids=ids, use_cache=False).logits

    def prefill(self, ids: torch.Tensor):
        """Logits of every position and the key/value cache they leave (a DynamicCache)."""
        out = self.hf(input_ids=ids, use_cache=True)
        return out.logits, getattr(out, self._cache_arg)

    def decode(self, token: torch.Tensor, cache) -> torch.Tensor:
        """Logits of one new token per sequence (batch, 1) attending to `cache`, which grows by it."""
        return self.hf(input_ids=token, use_cache=True, **{self._cache_arg: cache}).logits

    def filled_cache(self, batch: int, length: int, dtype: torch.dtype | None = None):
        """A key/value cache of `length` positions per sequence holding random keys and values, as
        a prefill would leave it (decode's speed does not depend on the values) without running
        the prefill: cheap to set up, and on fake tensors no forward pass at all."""
        tf = transformers_module(self.shape.name)
        param = next(self.parameters())
        dtype = dtype or param.dtype
        cache = tf.DynamicCache()
        s = self.shape
        for layer in range(s.num_layers):
            k = torch.randn(batch, s.num_kv_heads, length, s.head_dim, device=param.device, dtype=dtype)
            cache.update(k, torch.randn_like(k), layer)
        return cache

    @staticmethod
    def drop_last(cache, tokens: int = 1) -> None:
        """Forget the last `tokens` positions of `cache` (a negative `crop` means that in
        transformers 4 and 5 alike), so that decode steps can be repeated at the same context."""
        cache.crop(-tokens)

    def enable_activation_checkpointing(self) -> None:
        """Recompute each block's activations in the backward pass instead of keeping them
        (Chen et al. 2016; HF checkpoints every decoder layer with torch.utils.checkpoint,
        non-reentrant as PyTorch recommends). transformers 5 renamed the method."""
        kw = {"use_reentrant": False}
        if hasattr(self.hf, "activation_checkpointing_enable"):
            self.hf.activation_checkpointing_enable(activation_checkpointing_kwargs=kw)
        else:
            self.hf.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kw)

    @property
    def activation_checkpointing(self) -> bool:
        return bool(getattr(self.hf, "is_gradient_checkpointing", False))


def build_lm(shape: LMShape) -> CausalLM:
    """Random weights in the current default device (meta for counting)."""
    tf = transformers_module(shape.name)
    cls = tf.GPT2LMHeadModel if shape.arch == "gpt2" else tf.LlamaForCausalLM
    return CausalLM(cls(hf_config(shape)), shape)


def default_seq_len(shape: LMShape) -> int:
    return min(shape.max_seq_len, DEFAULT_SEQ_LEN_MAX)


def _register(shape: LMShape) -> None:
    cls = "GPT2LMHeadModel(GPT2Config" if shape.arch == "gpt2" else "LlamaForCausalLM(LlamaConfig"
    kv = f", {shape.num_kv_heads} KV heads" if shape.num_kv_heads != shape.num_heads else ""
    register_model(
        shape.name, family="lm", input_shape=(default_seq_len(shape),), num_classes=shape.vocab_size,
        source=f"transformers.{cls}(...)) from nnscale.zoo.lm_shapes",
        paper="" if shape.name == "tiny-lm" else _PAPERS[shape.arch],
        description=(f"{shape.num_layers} layers, d {shape.hidden_size}, {shape.num_heads} heads{kv}, "
                     f"context {shape.max_seq_len}"),
        lm_shape=shape,
    )(lambda: build_lm(shape))


for _shape in LM_SHAPES.values():
    _register(_shape)
