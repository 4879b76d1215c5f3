import pytest

from nnscale.errors import UserError
from nnscale.study.config import QUICK, load_study, parse_duration_s, study_from_dict
from nnscale.zoo import model_info


def write(tmp_path, text):
    path = tmp_path / "study.yaml"
    path.write_text(text)
    return str(path)


def test_issue_example_parses(tmp_path):
    study = load_study(write(tmp_path, """
nets: [resnet50, googlenet]
modes: [inference, training]
batches: [1, 8, 32]
precisions: [fp32, bf16]
world_sizes: [1, 2]
budget: 10m
"""), check_net=model_info)
    assert study.nets == ("resnet50", "googlenet")
    assert study.inference_batches == study.training_batches == (1, 8, 32)
    assert study.precisions == ("fp32", "bf16") and study.world_sizes == (1, 2)
    assert study.budget_s == 600.0 and study.name == "study"


def test_only_nets_is_required(tmp_path):
    study = load_study(write(tmp_path, "nets: [test-tiny-mlp]\nbatches: auto\n"))
    assert study.inference_batches == "auto" and study.modes == ("inference", "training")


@pytest.mark.parametrize("text, needle", [
    ("nets: [resnet50]\nbatchez: [1]\n", "unknown key 'batchez'"),
    ("nets: resnet50\nbatches: [1, two]\n", "must list int values"),
    ("nets: [resnet50]\nbudget: -5m\n", "not a duration"),
    ("nets: [resnet50]\nbudget: 0\n", "must be positive"),
    ("nets: [resnet50]\nmodes: [serving]\n", "unknown mode value 'serving'"),
    ("nets: [resnet50]\nbatches: [0, 1]\n", "positive integers"),
    ("modes: [inference]\n", "'nets' is required"),
    ("- just a list\n", "a mapping of keys"),
    ("nets: [resnet50\n", "not valid YAML at line"),
    ("nets: [resnet50]\nprecisions: [fp8]\n", "accepted: fp32, tf32, bf16, fp16"),
])
def test_bad_study_files(tmp_path, text, needle):
    with pytest.raises(UserError, match=needle.replace("[", r"\[")):
        load_study(write(tmp_path, text), check_net=model_info)


def test_unknown_net_in_study(tmp_path):
    with pytest.raises(UserError, match="unknown model 'resnet5'"):
        load_study(write(tmp_path, "nets: [resnet5]\n"), check_net=model_info)


def test_missing_study_file():
    with pytest.raises(UserError, match="neither a built-in"):
        load_study("no/such/study.yaml")


@pytest.mark.parametrize("value, seconds", [(30, 30.0), ("30s", 30.0), ("10m", 600.0), ("1h", 3600.0),
                                            ("2.5m", 150.0), ("45", 45.0)])
def test_durations(value, seconds):
    assert parse_duration_s(value) == seconds


def test_quick_study_is_the_seeds_study():
    # AlexNet, Inception v1 and ResNet-50 (torchvision's) against batch size in both modes, plus
    # the seed's four framework nets; 3 processes per point; the CPU's fastest precision.
    assert QUICK.nets[:3] == ("alexnet", "googlenet", "resnet50")
    seed = [n for n in QUICK.nets[3:] if model_info(n).family == "seed"]
    assert len(seed) == 4 == len(QUICK.nets) - 3
    for net in QUICK.nets[:3]:
        assert len(QUICK.batches_for(net, "inference")) == 3 and len(QUICK.batches_for(net, "training")) == 2
    assert QUICK.batches_for("tf-mnist-convnet", "training") == (64,)
    assert QUICK.batches_for("caffe-conv", "training") == ()
    assert QUICK.budget_s <= 600 and QUICK.processes >= 3 and QUICK.cpu_fastest_precision


def test_processes_in_a_study_file():
    study = study_from_dict({"nets": ["x"], "processes": 4}, "s.yaml")
    assert study.processes == 4 and study.max_processes == 8
    with pytest.raises(UserError, match="'processes' must be an integer >= 1, got 0"):
        study_from_dict({"nets": ["x"], "processes": 0}, "s.yaml")
    with pytest.raises(UserError, match="'max_processes' \\(2\\) must be at least 'processes' \\(3\\)"):
        study_from_dict({"nets": ["x"], "processes": 3, "max_processes": 2}, "s.yaml")


def test_budget_bool_is_refused():
    with pytest.raises(UserError):
        study_from_dict({"nets": ["x"], "budget": True}, "s.yaml")
