"""Published shapes of decoder-only language models, as plain data (no torch, no transformers).

One table serves every layer that needs a language model's shape: the zoo builds Hugging Face
models from it, `netstats` checks its counts against it, and `predict` plans layouts from it without
importing torch. Parameter counts here are analytic and must equal the published ones exactly
(tests/zoo/test_lm_shapes.py).

Sources of the shapes:
- GPT-2: Radford et al. 2019, "Language Models are Unsupervised Multitask Learners", Table 2, and the
  `gpt2` / `gpt2-medium` configs of Hugging Face `transformers` (vocabulary 50,257, context 1,024,
  learned position embeddings, tied input and output embeddings, biases, LayerNorm, GELU MLP of 4d).
- Llama 3: Grattafiori et al. 2024, "The Llama 3 Herd of Models", Table 3 (8B, 70B, 405B: layers,
  model dimension, FFN dimension, 128 attention heads for 405B, 8 key/value heads, vocabulary 128,256,
  RoPE base 500,000) and Meta's Llama 3.2 1B config (16 layers, d 2,048, FFN 8,192, 32 heads, 8 KV
  heads, tied embeddings). RMSNorm, SwiGLU MLP (three matrices), no biases.
Published parameter counts: GPT-2 small 124,439,808 (tied); Llama 3.1 8B 8,030,261,248;
Llama 3.1 70B 70,553,706,496; Llama 3.1 405B 405,853,388,800; Llama 3.2 1B 1,235,814,400 (the
safetensors totals of Meta's releases as listed on their Hugging Face model cards).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class LMShape:
    """The shape of a decoder-only transformer: everything counting and planning need."""

    name: str
    arch: str  # "gpt2" (LayerNorm, biases, learned positions, GELU MLP) or "llama" (RMSNorm, SwiGLU, RoPE)
    vocab_size: int
    hidden_size: int  # d, the model dimension
    num_layers: int  # L
    num_heads: int  # query heads
    num_kv_heads: int  # key/value heads (== num_heads without grouped-query attention)
    ffn_hidden_size: int  # inner size of the MLP
    max_seq_len: int  # the longest context the configuration supports
    tied_embeddings: bool  # the output projection reuses the input embedding matrix
    rope_theta: float = 0.0  # RoPE base (llama); 0 for learned position embeddings (gpt2)
    published_params: int = 0  # the published total, 0 where there is none (the tiny test model)
    source: str = ""

    def __post_init__(self) -> None:
        if self.arch not in ("gpt2", "llama"):
            raise ValueError(f"arch {self.arch!r} is not 'gpt2' or 'llama'")
        if self.hidden_size % self.num_heads or self.num_heads % self.num_kv_heads:
            raise ValueError(f"{self.name}: heads must divide d and KV heads must divide heads")

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_heads

    @property
    def kv_dim(self) -> int:
        """Width of the key (and of the value) projection: KV heads × head dimension."""
        return self.num_kv_heads * self.head_dim

    def params_per_layer(self) -> int:
        """Parameters of one transformer block."""
        d, f, kv = self.hidden_size, self.ffn_hidden_size, self.kv_dim
        if self.arch == "gpt2":
            attn = d * (d + 2 * kv) + (d + 2 * kv) + d * d + d  # fused QKV with bias, output with bias
            mlp = d * f + f + f * d + d
            norms = 2 * 2 * d  # two LayerNorms, weight and bias
        else:
            attn = d * d + 2 * d * kv + d * d  # Q, K, V, O without bias
            mlp = 3 * d * f  # gate, up, down (SwiGLU)
            norms = 2 * d  # two RMSNorm weights
        return attn + mlp + norms

    def params_embedding(self) -> int:
        """Input token embeddings plus learned position embeddings (gpt2)."""
        positions = self.max_seq_len * self.hidden_size if self.arch == "gpt2" else 0
        return self.vocab_size * self.hidden_size + positions

    def params_lm_head(self) -> int:
        """Parameters of the output projection that are not shared with the input embedding."""
        return 0 if self.tied_embeddings else self.vocab_size * self.hidden_size

    def params_final_norm(self) -> int:
        return 2 * self.hidden_size if self.arch == "gpt2" else self.hidden_size

    def params_non_embedding(self) -> int:
        """Blocks, final norm and an untied output projection: everything but the embeddings."""
        return (
            self.num_layers * self.params_per_layer()
            + self.params_final_norm()
            + self.params_lm_head()
        )

    def params_total(self) -> int:
        return self.params_embedding() + self.params_non_embedding()

    def params_matmul(self) -> int:
        """Weights that take part in a matrix product for every token: the blocks' matrices and the
        output projection (tied or not); embeddings are looked up, norms and biases are not matmuls.
        The "N" of the 6N training-FLOPs rule (Kaplan et al. 2020, section 2.1)."""
        d, f, kv = self.hidden_size, self.ffn_hidden_size, self.kv_dim
        mats = d * (d + 2 * kv) + d * d + (2 if self.arch == "gpt2" else 3) * d * f
        return self.num_layers * mats + self.vocab_size * d

    def train_flops_per_token(self, seq_len: int) -> float:
        """Analytic training FLOPs per token: 6N + 12·L·d·s (Chowdhery et al. 2022, PaLM, appendix B),
        with N the matmul weights and the attention term counted over the full s×s score matrix, as
        FlopCounterMode counts scaled-dot-product attention."""
        return 6.0 * self.params_matmul() + 12.0 * self.num_layers * self.hidden_size * seq_len

    def forward_flops_per_token(self, seq_len: int) -> float:
        """One third of the training count: forward only (2N + 4·L·d·s)."""
        return self.train_flops_per_token(seq_len) / 3.0

    def kv_cache_bytes_per_token(self, bytes_per_value: int = 2) -> int:
        """Bytes of keys and values one token keeps in the cache across all layers."""
        return 2 * self.num_layers * self.kv_dim * bytes_per_value


_META_LLAMA3 = "Grattafiori et al. 2024, The Llama 3 Herd of Models, Table 3; Meta's released config"
_GPT2 = "Radford et al. 2019, Table 2; Hugging Face transformers gpt2 config"

LM_SHAPES: dict[str, LMShape] = {
    s.name: s
    for s in (
        LMShape("tiny-lm", "llama", 512, 64, 2, 4, 2, 172, 256, False, 10_000.0, 0,
                "nnscale's test model: a two-block Llama-style decoder"),
        LMShape("gpt2", "gpt2", 50_257, 768, 12, 12, 12, 3_072, 1_024, True, 0.0, 124_439_808, _GPT2),
        LMShape("gpt2-medium", "gpt2", 50_257, 1_024, 24, 16, 16, 4_096, 1_024, True, 0.0,
                354_823_168, _GPT2),
        LMShape("llama3-1b", "llama", 128_256, 2_048, 16, 32, 8, 8_192, 131_072, True, 500_000.0,
                1_235_814_400, _META_LLAMA3 + " (Llama 3.2 1B)"),
        LMShape("llama3-8b", "llama", 128_256, 4_096, 32, 32, 8, 14_336, 131_072, False, 500_000.0,
                8_030_261_248, _META_LLAMA3 + " (Llama 3.1 8B)"),
        LMShape("llama3-70b", "llama", 128_256, 8_192, 80, 64, 8, 28_672, 131_072, False, 500_000.0,
                70_553_706_496, _META_LLAMA3 + " (Llama 3.1 70B)"),
        LMShape("llama3-405b", "llama", 128_256, 16_384, 126, 128, 8, 53_248, 131_072, False,
                500_000.0, 405_853_388_800, _META_LLAMA3 + " (Llama 3.1 405B)"),
    )
}


def lm_shape(name: str) -> LMShape | None:
    """The shape registered under `name`, or None."""
    return LM_SHAPES.get(name)
