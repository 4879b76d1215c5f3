"""Option values parsed from their strings (cli/values.py): batch lists, memory sizes, modes."""

from __future__ import annotations

import pytest

from nnscale.cli.values import parse_batches, parse_modes, parse_size
from nnscale.errors import UserError


def test_parse_batches():
    assert parse_batches("8,1, 2,2") == (1, 2, 8)
    assert parse_batches("auto") is None
    for bad in ("0", "-1", "abc", "1,,2", "", "2.5", str(2**30)):
        with pytest.raises(UserError):
            parse_batches(bad)


def test_parse_size():
    assert parse_size("512M") == 512 * 2**20 and parse_size("1.5GiB") == 3 * 2**29
    for bad in ("0", "lots", "-1G"):
        with pytest.raises(UserError):
            parse_size(bad)


def test_parse_modes():
    assert parse_modes("both") == ("inference", "training")
    assert parse_modes("training") == ("training",)
    assert parse_modes("all")[0] == "inference" and "decode" in parse_modes("all")
    with pytest.raises(UserError, match="unknown mode 'sleep': expected inference, training or both"):
        parse_modes("sleep")
