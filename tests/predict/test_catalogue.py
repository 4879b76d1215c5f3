"""The hardware catalogue: shipped values with sources, user files, and bad files as one-line errors."""

import pytest

from nnscale.errors import UserError
from nnscale.predict.catalogue import load_catalogue, parse_catalogue, shipped_catalogue

REQUIRED_DEVICES = {"p100", "v100", "v100-32gb", "a100", "a100-80gb", "h100", "h200", "cpu-generic"}
REQUIRED_LINKS = {"pcie3", "pcie4", "pcie5", "nvlink1", "nvlink2", "nvlink3", "nvlink4",
                  "ib-edr", "ib-hdr", "ib-ndr", "10gbe", "25gbe", "100gbe", "400gbe"}


def test_shipped_catalogue_has_the_hardware_and_every_value_a_source():
    cat = shipped_catalogue()
    assert REQUIRED_DEVICES <= set(cat.devices) and REQUIRED_LINKS <= set(cat.links)
    for d in cat.devices.values():
        fields = {f"peak_tflops.{p}" for p in d.peak_flops} | {"memory_bandwidth_gb_per_s", "memory_gb"}
        fields |= {"nics_per_node"} if d.nics_per_node > 1 else set()
        assert set(d.sources) == fields
        assert all(len(s) > 20 and "shipped" not in s for s in d.sources.values()), d.name
        assert d.intra_link in cat.links
    for link in cat.links.values():
        assert {"bandwidth_gb_per_s", "alpha_us"} <= set(link.sources)
        assert all(len(s) > 20 and "shipped" not in s for s in link.sources.values()), link.name


def test_published_values_in_si_units():
    cat = shipped_catalogue()
    assert cat.device("p100").peak("fp32") == 10.6e12 and cat.device("p100").peak("fp16") == 21.2e12
    assert cat.device("h100").peak("bf16") == pytest.approx(989.5e12)  # 1979 with sparsity / 2
    assert cat.device("a100-80gb").memory_bandwidth == 2039e9
    assert cat.link("nvlink4").bandwidth == 450e9  # 900 GB/s bidirectional
    assert cat.link("25gbe").effective_bandwidth == pytest.approx(3.125e9 * 0.96)
    assert cat.link("ib-ndr").alpha_s == pytest.approx(14e-6)


def test_unknown_names_list_the_known_ones():
    cat = shipped_catalogue()
    with pytest.raises(UserError, match=r"unknown device 'h300'; known devices: .*h100.*measured:RUN"):
        cat.device("h300")
    with pytest.raises(UserError, match=r"unknown link 'ib-xdr'; known links: .*ib-ndr"):
        cat.link("ib-xdr")
    with pytest.raises(UserError, match=r"no peak for precision 'bf16'.*fp32"):
        cat.device("p100").peak("bf16")


def test_user_catalogue_extends_and_overrides(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("devices:\n  b200:\n    peak_tflops: {bf16: [2250, 'B200 data sheet']}\n"
                 "    memory_bandwidth_gb_per_s: 8000\n    memory_gb: 192\n"
                 "links:\n  25gbe: {bandwidth_gb_per_s: 3.125, alpha_us: 30, efficiency: 0.8}\n")
    cat = load_catalogue(f)
    assert cat.device("B200").peak("bf16") == 2250e12
    assert cat.device("b200").sources["memory_gb"] == str(f)  # a bare number's source is the file
    assert cat.link("25gbe").alpha_s == pytest.approx(30e-6) and cat.link("25gbe").efficiency == 0.8
    assert "h100" in cat.devices  # the shipped entries stay


@pytest.mark.parametrize("text, message", [
    ("devices: [unclosed", "does not parse as YAML"),
    ("- a\n- b\n", "must be a mapping"),
    ("gpus: {}\n", "unknown section 'gpus'"),
    ("devices:\n  x: {peak_tflops: {fp32: 1}, memory_gb: 1}\n", "misses field 'memory_bandwidth_gb_per_s'"),
    ("devices:\n  x: {peak_tflops: {fp64: 1}, memory_gb: 1, memory_bandwidth_gb_per_s: 1}\n",
     "unknown precision 'fp64'"),
    ("devices:\n  x: {peak_tflops: {fp32: -1}, memory_gb: 1, memory_bandwidth_gb_per_s: 1}\n",
     "must be a positive number"),
    ("links:\n  x: {bandwidth_gb_per_s: 0, alpha_us: 1}\n", "must be a positive number"),
    ("links:\n  x: {bandwidth_gb_per_s: 1}\n", "misses field 'alpha_us'"),
    ("links:\n  x: {bandwidth_gb_per_s: 1, alpha_us: -2}\n", "must be a number >= 0"),
    ("links:\n  x: {bandwidth_gb_per_s: 1, alpha_us: 1, efficiency: 1.5}\n", "efficiency must be in (0, 1]"),
    ("links:\n  x: {bandwidth_gb_per_s: '10', alpha_us: 1}\n", "must be a number or"),
    ("links:\n  x: {bandwith_gb_per_s: 10, alpha_us: 1}\n", "unknown field 'bandwith_gb_per_s'"),
])
def test_bad_catalogue_files(tmp_path, text, message):
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(UserError) as exc:
        load_catalogue(f)
    assert message in str(exc.value) and str(f) in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_file(tmp_path):
    with pytest.raises(UserError, match="cannot read catalogue"):
        load_catalogue(tmp_path / "nope.yaml")


def test_empty_file_adds_nothing():
    assert parse_catalogue("", "empty").devices == {}
