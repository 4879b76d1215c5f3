"""The shipped language-model shapes reproduce the published parameter counts exactly."""

import pytest

from nnscale.zoo.lm_shapes import LM_SHAPES, LMShape, lm_shape

PUBLISHED = {
    "gpt2": 124_439_808,
    "gpt2-medium": 354_823_168,
    "llama3-1b": 1_235_814_400,
    "llama3-8b": 8_030_261_248,
    "llama3-70b": 70_553_706_496,
    "llama3-405b": 405_853_388_800,
}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_parameter_count_is_the_published_one(name):
    assert lm_shape(name).params_total() == PUBLISHED[name]


def test_gpt2_non_embedding_and_matmul_counts():
    s = lm_shape("gpt2")
    # 12 blocks of 7,087,872 and the final LayerNorm (1,536); embeddings 50,257·768 + 1,024·768.
    assert s.params_non_embedding() == 12 * 7_087_872 + 1_536
    assert s.params_embedding() == 50_257 * 768 + 1_024 * 768
    # matmul weights: 12 · (768·2304 + 768·768 + 2·768·3072) + the tied head 50,257·768
    assert s.params_matmul() == 12 * (768 * 2304 + 768 * 768 + 2 * 768 * 3072) + 50_257 * 768


def test_training_flops_rule():
    s = lm_shape("llama3-8b")
    assert s.train_flops_per_token(2048) == 6 * s.params_matmul() + 12 * 32 * 4096 * 2048
    assert s.forward_flops_per_token(2048) * 3 == s.train_flops_per_token(2048)
    # KV cache of Llama 3 8B in bf16: 2 · 32 layers · 8 heads · 128 · 2 bytes = 131,072 B per token
    assert s.kv_cache_bytes_per_token(2) == 131_072


def test_bad_shapes_are_refused():
    with pytest.raises(ValueError, match="arch"):
        LMShape("x", "bert", 10, 8, 1, 2, 2, 8, 8, False)
    with pytest.raises(ValueError, match="heads"):
        LMShape("x", "llama", 10, 8, 1, 3, 3, 8, 8, False)
    assert lm_shape("resnet50") is None
    assert set(PUBLISHED) < set(LM_SHAPES)
