"""Rates and token buckets for `--bandwidth-cap` (nnscale.distributed.config)."""

from __future__ import annotations

import pytest

from nnscale.distributed.config import rate_bit_per_s, tbf_burst
from nnscale.errors import UserError


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
