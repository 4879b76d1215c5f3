"""The zoo's language models: Hugging Face GPT-2 / Llama 3 built from nnscale's shapes, counted on
the meta device, run for real on the CPU (the tiny one), and refused in one line without the extra."""

import subprocess
import sys

import pytest
import torch

from nnscale.zoo import create_model, list_models, model_info
from nnscale.zoo.lm_shapes import LM_SHAPES

pytest.importorskip("transformers")

# The published totals (Hugging Face model cards / Radford et al. 2019), written out here so the
# models built by transformers are checked against the papers, not against lm_shapes' arithmetic.
PUBLISHED = {"gpt2": 124_439_808, "llama3-8b": 8_030_261_248, "llama3-405b": 405_853_388_800}


def _params(model) -> int:
    return sum(p.numel() for p in model.parameters())  # tied embeddings are one Parameter, once


def test_every_shape_is_registered_as_a_language_model():
    assert set(list_models(family="lm")) == set(LM_SHAPES)
    info = model_info("llama3-8b")
    assert info.is_lm and info.lm_shape is LM_SHAPES["llama3-8b"]
    assert info.input_shape == (2048,) and info.num_classes == 128_256
    assert model_info("gpt2").input_shape == (1024,)  # its whole context
    assert not model_info("resnet50").is_lm


@pytest.mark.parametrize("name", sorted(LM_SHAPES))
def test_built_on_meta_the_parameter_count_is_exact(name):
    with torch.device("meta"):
        model = create_model(name)
    assert _params(model) == LM_SHAPES[name].params_total()
    if name in PUBLISHED:
        assert _params(model) == PUBLISHED[name]
    assert next(model.parameters()).device.type == "meta"


def test_llama_is_grouped_query_swiglu_and_gpt2_ties_its_embeddings():
    with torch.device("meta"):
        llama = create_model("llama3-8b")
        gpt2 = create_model("gpt2")
    attn = llama.hf.model.layers[0].self_attn
    assert (attn.q_proj.out_features, attn.k_proj.out_features) == (4096, 1024)  # 32 vs 8 heads of 128
    assert llama.hf.model.layers[0].mlp.gate_proj.out_features == 14_336
    assert gpt2.hf.lm_head.weight is gpt2.hf.transformer.wte.weight


def test_tiny_lm_maps_token_ids_to_logits_and_decodes_with_its_cache():
    torch.manual_seed(0)
    model = create_model("tiny-lm")
    ids = torch.randint(0, 512, (2, 16))
    with torch.inference_mode():
        logits = model(ids)
        assert logits.shape == (2, 16, 512)
        _, cache = model.prefill(ids[:, :15])
        step = model.decode(ids[:, 15:], cache)
        assert cache.get_seq_length() == 16
        # the cached decode of token 16 gives the logits the full forward gives at position 16
        torch.testing.assert_close(step[:, 0], logits[:, 15], rtol=1e-4, atol=1e-5)
        model.drop_last(cache)
        assert cache.get_seq_length() == 15
        torch.testing.assert_close(model.decode(ids[:, 15:], cache)[:, 0], logits[:, 15],
                                   rtol=1e-4, atol=1e-5)


def test_without_transformers_one_line_names_the_extra(tmp_path):
    # A real missing package: None in sys.modules makes `import transformers` raise ImportError.
    code = ("import sys; sys.modules['transformers'] = None\n"
            "from nnscale.cli import main\nsys.exit(main(['stats', 'gpt2']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "nnscale[transformers]" in lines[0] and "gpt2" in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_nnscale_models_lists_them_with_embeddings_apart(capsys):
    from nnscale.cli import main
    from nnscale.cli.models import model_rows

    rows = {r["name"]: r for r in model_rows("llama3-*")}
    r = rows["llama3-8b"]
    assert (r["params"], r["params_embedding"], r["layers"], r["hidden_size"], r["heads"],
            r["kv_heads"]) == (8_030_261_248, 128_256 * 4096, 32, 4096, 32, 8)
    assert r["params_non_embedding"] + r["params_embedding"] == r["params"]
    assert main(["models", "gpt2*"]) == 0
    out = capsys.readouterr().out
    assert "language models" in out and "non-embedding" in out and "85.1M" in out
