"""Step time of DP x FSDP x TP x PP layouts: each term's limits and its formula."""

import pytest

from nnscale.errors import UserError
from nnscale.predict.catalogue import load_catalogue
from nnscale.predict.comm import ring_allreduce, ring_half
from nnscale.predict.layout import Cluster, Training, step_time
from nnscale.predict.memory import Layout, shape_by_name, stage_params

CAT = load_catalogue(None)
H100 = Cluster(CAT.device("h100"), CAT.link("nvlink4"), CAT.link("ib-ndr"), 8, 8)
L8B, L70B = shape_by_name("llama3-8b"), shape_by_name("llama3-70b")


def step(shape=L8B, layout=Layout(), batch=8, **kw):
    kw.setdefault("efficiency", 0.5)
    return step_time(shape, layout, H100, Training(seq_len=4096, global_batch=batch, **kw))


def test_tp_one_adds_no_activation_all_reduce():
    assert step(layout=Layout(dp=8)).tp_s == 0
    t2 = step(layout=Layout(dp=4, tp=2))
    # 4 all-reduces of b*s*h bf16 per layer (Shoeybi et al. 2019) x 32 layers x 2 micro-batches.
    one = sum(ring_allreduce(2 * 4096 * 4096, 2, H100.intra.alpha_s, H100.intra.effective_bandwidth))
    assert t2.tp_s == pytest.approx(2 * 32 * 4 * one)
    full = step(layout=Layout(dp=4, tp=2), recompute="full")
    assert full.tp_s == pytest.approx(t2.tp_s * 6 / 4)  # recomputed forward: 2 more


def test_one_pipeline_stage_has_no_bubble_and_interleaving_divides_it():
    assert step(layout=Layout(dp=8)).bubble_s == 0
    p4 = step(layout=Layout(dp=2, pp=4), batch=16)
    m = 8  # 16 sequences / 2 replicas / micro-batch 1
    t_mb = p4.compute_s / m + (p4.tp_s + p4.pp_s) / m
    assert p4.bubble_s == pytest.approx(3 * t_mb)  # (p-1) micro-batch times (Narayanan et al. 2021)
    v2 = step(layout=Layout(dp=2, pp=4, v=2), batch=16)
    assert v2.bubble_s == pytest.approx(p4.bubble_s / 2)


def test_fsdp_degree_one_equals_ddp_communication():
    ddp = step(layout=Layout(dp=8, fsdp=1))
    assert ddp.fsdp_comm_s == 0 and ddp.fsdp_exposed_s == 0
    n = stage_params(L8B, Layout(dp=8)) * 4  # fp32 gradients
    assert ddp.dp_comm_s == pytest.approx(sum(ring_allreduce(n, 8, H100.intra.alpha_s,
                                                             H100.intra.effective_bandwidth)))
    fsdp = step(layout=Layout(dp=8, fsdp=8))
    assert fsdp.dp_comm_s == 0
    params = stage_params(L8B, Layout(dp=8))
    gather = sum(ring_half(params * 2, 8, H100.intra.alpha_s, H100.intra.effective_bandwidth))
    scatter = sum(ring_half(params * 4, 8, H100.intra.alpha_s, H100.intra.effective_bandwidth))
    assert fsdp.fsdp_comm_s == pytest.approx(1 * (2 * gather + scatter))  # one micro-batch
    assert fsdp.fsdp_exposed_s < 0.05 * fsdp.fsdp_comm_s + (gather + scatter) / 32 + 1e-12  # prefetched


def test_one_gpu_runs_at_the_efficiency_and_full_recompute_costs_a_third():
    one = step(batch=1)
    assert one.tp_s == one.bubble_s == one.fsdp_exposed_s == one.dp_exposed_s == 0
    assert one.mfu == pytest.approx(0.5 * one.compute_s / one.step_s)
    assert one.step_s - one.compute_s == pytest.approx(one.optimizer_s)
    full = step(batch=1, recompute="full")
    # One more forward of every block (x 4/3); the output projection is outside the checkpoints.
    blocks = 1 - 6 * L8B.vocab_size * L8B.hidden_size / L8B.train_flops_per_token(4096)
    assert full.compute_s == pytest.approx(one.compute_s * (1 + blocks / 3))
    assert full.recompute_s == pytest.approx(one.compute_s * blocks / 3)


def test_groups_across_nodes_share_the_node_nics():
    inside = step(layout=Layout(dp=8, fsdp=8))
    across = step_time(L8B, Layout(dp=64, fsdp=64), H100, Training(4096, 64, efficiency=0.5))
    # 64 ranks on 8 nodes: the ring crosses nodes through 8 x 400 Gb/s = 384 GB/s < NVLink's 450.
    assert across.fsdp_comm_s > inside.fsdp_comm_s
    tp8 = step_time(L70B, Layout(dp=8, tp=8, fsdp=8), H100, Training(4096, 8, efficiency=0.5))
    assert tp8.fsdp_comm_s > 0 and tp8.tp_s > 0


def test_bad_training_inputs():
    with pytest.raises(UserError, match="multiple of DP"):
        step(layout=Layout(dp=8), batch=12)
    with pytest.raises(UserError, match="fp8"):
        step_time(L8B, Layout(), Cluster(CAT.device("a100"), CAT.link("nvlink3"), None), Training(2048, 1, float8=True))
    four = Cluster(CAT.device("h100"), CAT.link("nvlink4"), None, 4, 4)
    with pytest.raises(UserError, match="GPUs of a node"):
        step_time(shape_by_name("llama3-405b"), Layout(tp=8), four, Training(2048, 1))
    with pytest.raises(UserError, match="inter-node link"):
        step_time(L8B, Layout(dp=8, fsdp=8), four, Training(2048, 8))


def test_contention_and_synchronisation_limits():
    from nnscale.predict import terms as T

    off = step(layout=Layout(dp=8, fsdp=8), terms=T.NONE)
    assert off.contention_s == 0 and off.sync_s == 0
    on = step(layout=Layout(dp=8, fsdp=8))
    hidden = on.fsdp_comm_s - on.fsdp_exposed_s
    assert on.contention_s == pytest.approx(T.CONTENTION * hidden)
    busy = on.step_s - on.sync_s
    assert on.sync_s == pytest.approx(busy * T.JITTER_CV * T.expected_max_normal(8))
    # One GPU: nothing to wait for and nothing overlapped.
    one = step_time(L8B, Layout(), H100, Training(seq_len=4096, global_batch=1, efficiency=0.5))
    assert one.sync_s == 0 and one.contention_s == 0
