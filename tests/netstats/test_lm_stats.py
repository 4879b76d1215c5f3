"""Language-model statistics: FlopCounterMode's counts on fake tensors against the analytic
6N + 12·L·d·s (PaLM, appendix B), exact parameter counts, and the per-token memory formulas."""

import pytest

from nnscale.cli import main
from nnscale.errors import UserError
from nnscale.zoo.lm_shapes import lm_shape

pytest.importorskip("transformers")

from nnscale.netstats.lm import check_seq_len, korthikanti_bytes_per_token, lm_stats  # noqa: E402


@pytest.fixture(scope="module")
def llama8b():
    return lm_stats("llama3-8b", 2048)


def test_llama3_8b_flops_per_token_within_1_percent_and_parameters_exact(llama8b):
    s = llama8b
    assert s.params_total == 8_030_261_248  # Llama 3.1 8B, published
    assert s.params_embedding == 128_256 * 4096
    assert s.params_non_embedding == 8_030_261_248 - 128_256 * 4096
    # 6 · 7,504,924,672 matmul weights + 12 · 32 · 4096 · 2048 = 48,249,176,064 per token
    assert s.analytic_training_flops_per_token == 48_249_176_064
    assert abs(s.training_flops_per_token / 48_249_176_064 - 1) < 0.01
    assert abs(s.training_flops_rel_diff) < 0.01
    assert s.forward_flops_per_token == pytest.approx(s.training_flops_per_token / 3, rel=0.01)
    # attention's s×s matmuls: 12·L·d·s of the training count
    assert s.attention_flops_share == pytest.approx(12 * 32 * 4096 * 2048 / 48_249_176_064, rel=1e-6)
    assert s.kv_cache_bytes_per_token_bf16 == 2 * 32 * 8 * 128 * 2  # 128 KiB: GQA's 8 KV heads


def test_gpt2_small_within_1_percent_at_2048_and_at_its_context():
    shape = lm_shape("gpt2")
    # GPT-2's context is 1,024: at 2,048 (the issue's length) the count is shape arithmetic only.
    for seq, beyond in ((2048, True), (1024, False)):
        s = lm_stats("gpt2", seq, beyond_context=beyond)
        assert s.params_total == 124_439_808  # tied embeddings counted once
        assert s.params_non_embedding == 85_056_000
        analytic = shape.train_flops_per_token(seq)
        assert abs(s.training_flops_per_token / analytic - 1) < 0.01, seq
    # decode: every matmul weight once (2N) and attention to `seq` keys (4·L·d·s)
    assert s.decode_flops_per_token == pytest.approx(2 * shape.params_matmul() + 4 * 12 * 768 * 1024,
                                                     rel=0.01)
    # Korthikanti et al. 2022: 34·h + 5·a·s bytes per token and layer; 2·h with recomputation
    assert s.activation_bytes_per_token == 12 * (34 * 768 + 5 * 12 * 1024)
    assert s.activation_bytes_per_token_checkpointed == 12 * 2 * 768
    assert s.activation_bytes_per_token_measured > s.activation_bytes_per_token_checkpointed


def test_korthikanti_grows_with_the_sequence_length():
    short = korthikanti_bytes_per_token(lm_shape("llama3-70b"), 1024)[0]
    long = korthikanti_bytes_per_token(lm_shape("llama3-70b"), 8192)[0]
    assert long - short == 80 * 5 * 64 * (8192 - 1024)


def test_bad_seq_len_is_refused():
    with pytest.raises(UserError, match="from 2 to 1024"):
        check_seq_len("gpt2", 1025)
    with pytest.raises(UserError, match="language models"):
        check_seq_len("resnet50", 128)
    with pytest.raises(UserError, match="from 2 to 256"):
        lm_stats("tiny-lm", 1)


def test_cli_stats_of_an_lm(capsys):
    assert main(["stats", "tiny-lm", "--seq-len", "64", "--format", "json"]) == 0
    import json

    row = json.loads(capsys.readouterr().out)[0]
    assert row["model"] == "tiny-lm" and row["seq_len"] == 64
    assert row["training_flops_per_token"] == lm_shape("tiny-lm").train_flops_per_token(64)


@pytest.mark.parametrize("argv, needle", [
    (["stats", "gpt2", "--seq-len", "4096"], "from 2 to 1024"),
    (["stats", "resnet50", "--seq-len", "128"], "language models"),
    (["stats", "tiny-lm", "--input-size", "3x8x8"], "--seq-len"),
])
def test_cli_bad_seq_len_one_line_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0]
