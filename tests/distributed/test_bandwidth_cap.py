"""Rates and token buckets for `--bandwidth-cap`: tc's units (nnscale.linkcap), the bucket nnscale
suggests (nnscale.distributed.config.tbf_burst), and what a launch records."""

from __future__ import annotations

import pytest

from nnscale.distributed.config import Launching, ScaleConfig, tbf_burst
from nnscale.distributed.scaling import workload as scale_workload
from nnscale.errors import UserError
from nnscale.linkcap import burst_bits, rate_bit_per_s, rate_text


@pytest.mark.parametrize(("rate", "bits"), [("200mbit", 2e8), ("1gbit", 1e9), ("500kbit", 5e5),
                                            (" 1.5Gbit ", 1.5e9)])
def test_rate_in_bits_per_second(rate, bits):
    assert rate_bit_per_s(rate) == pytest.approx(bits)


@pytest.mark.parametrize(("rate", "burst"), [
    ("1gbit", "1000kbit"),   # 1e9 bit/s * 1 ms = 1e6 bit
    ("200mbit", "200kbit"),
    ("50mbit", "50kbit"),
    ("10mbit", "32kbit"),    # 10 kbit of tokens is below tc's useful minimum: 32 kbit
])
def test_bucket_holds_a_millisecond_of_tokens(rate, burst):
    assert tbf_burst(rate) == burst


@pytest.mark.parametrize("bad", ["fast", "0mbit", "-5mbit", "10 parsecs", ""])
def test_bad_rate_is_a_user_error(bad):
    with pytest.raises(UserError, match="expected a tc rate"):
        tbf_burst(bad)


@pytest.mark.parametrize(("size", "bits"), [
    ("1000kbit", 1000 * 1024),      # tc reads kbit in a size as 1024 bits (iproute2 tc_util.c get_size)
    ("32kbit", 32 * 1024),
    ("125kb", 125 * 1024 * 8),       # kb, k: KiB
    ("2mbit", 2 * 1024**2),
    ("1m", 8 * 1024**2),
    ("1500", 1500 * 8),              # a bare number is bytes
    ("1500b", 1500 * 8),
])
def test_burst_in_bits_as_tc_reads_it(size, bits):
    assert burst_bits(size) == pytest.approx(bits)


@pytest.mark.parametrize("bad", ["lots", "0kbit", "-1kb", "10 kbit", "5kbps", ""])
def test_bad_burst_is_a_user_error(bad):
    with pytest.raises(UserError, match="expected a tc size"):
        burst_bits(bad)


def test_the_point_records_the_cap_and_its_bucket():
    cap = Launching(nproc=(1,), bandwidth_cap_bit_per_s=rate_bit_per_s("200MBIT"),
                    bandwidth_cap_burst_bytes=burst_bits(" 200KBIT ") / 8)
    def point_workload(launching: Launching):
        return scale_workload(ScaleConfig("test-tiny-mlp", launching, batch_per_worker=4), 1)

    w = point_workload(cap)  # the cap is the workload's, in bits/s and bytes
    assert (w.link_cap_bit_per_s, w.link_cap_burst_bytes) == (2e8, 200 * 1024 / 8)
    w = point_workload(Launching(nproc=(1,), bandwidth_cap_bit_per_s=1e9))
    assert (w.link_cap_bit_per_s, w.link_cap_burst_bytes) == (1e9, None)
    w = point_workload(Launching(nproc=(1,)))
    assert (w.link_cap_bit_per_s, w.link_cap_burst_bytes) == (None, None)
    with pytest.raises(UserError, match="needs --bandwidth-cap"):
        Launching(nproc=(1,), bandwidth_cap_burst_bytes=25600.0)


@pytest.mark.parametrize(("bits", "text"), [(2e8, "200mbit"), (1e9, "1gbit"), (1.5e9, "1500mbit"),
                                            (5e5, "500kbit"), (1234.5, "1234.5bit")])
def test_a_rate_is_named_in_tc_units_and_reads_back(bits, text):
    assert rate_text(bits) == text and rate_bit_per_s(text) == pytest.approx(bits)
