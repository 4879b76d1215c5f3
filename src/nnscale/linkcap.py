"""tc's units for a link cap, defined once: a `tc tbf` rate and its bucket (`burst`).

`nnscale scale/allreduce --bandwidth-cap RATE --bandwidth-cap-burst SIZE` record the cap someone
set on the link with `tc qdisc ... tbf rate RATE burst SIZE`; the CLI parses both here, once, into
numbers (`Workload.link_cap_bit_per_s`, `Workload.link_cap_burst_bytes`), and every reader uses the
numbers. Pure Python, no torch: the store, the report and `nnscale.predict` import it.

Two unit systems, as iproute2 has them:
- a rate (tc-s(8), "RATES"): bit/s with SI multiples, kbit = 1000 bit/s;
- a size (tc/tc_util.c, get_size): bytes with binary multiples, and "kbit" in a size is 1024 bits
  (128 bytes) — unlike "kbit" in a rate.
"""

from __future__ import annotations

import math

from nnscale.errors import UserError

RATE_UNITS = {"bit": 1, "kbit": 10**3, "mbit": 10**6, "gbit": 10**9, "tbit": 10**12}
SIZE_BITS = {"": 8, "b": 8, "k": 8 * 1024, "kb": 8 * 1024, "m": 8 * 1024**2, "mb": 8 * 1024**2,
             "g": 8 * 1024**3, "gb": 8 * 1024**3, "kbit": 1024, "mbit": 1024**2, "gbit": 1024**3}


def _read(text: str, units: dict, one_word: bool, error: str) -> float:
    """NUMBER UNIT in `units` (its factor applied), the number finite and > 0; UserError(error)."""
    t = text.strip().lower()
    num = t.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = t[len(num):]
    try:
        # A size must be one word: "1000 kbit" is two words to tc.
        value = float(num) if num == num.strip() or not one_word else -1.0
    except ValueError:
        value = -1.0
    if unit not in units or not (math.isfinite(value) and value > 0):
        raise UserError(error)
    return value * units[unit]


def rate_bit_per_s(text: str) -> float:
    """A tc rate ('200mbit', tc-s(8): SI multiples of bit/s) in bit/s; UserError otherwise."""
    return _read(text, RATE_UNITS, False, f"--bandwidth-cap {text!r}: expected a tc rate such as "
                                          "200mbit, 1gbit, 500kbit")


def burst_bits(text: str) -> float:
    """A `tc tbf` burst (bucket size) in bits, read as tc reads it: '1000kbit' -> 1000 x 1024 =
    1,024,000 bits, '125kb' -> 125 x 1024 x 8 = 1,024,000 bits, a bare number is bytes. UserError
    otherwise."""
    return _read(text, SIZE_BITS, True, f"--bandwidth-cap-burst {text!r}: expected a tc size such "
                                        "as 1000kbit or 125kb (as given to `tc ... tbf burst`)")


def rate_text(bit_per_s: float) -> str:
    """A rate in tc's words, the largest unit that holds it whole: 2e8 -> '200mbit' (for labels;
    nothing parses it back)."""
    for unit in ("tbit", "gbit", "mbit", "kbit"):
        scaled = bit_per_s / RATE_UNITS[unit]
        if scaled >= 1 and scaled == int(scaled):
            return f"{int(scaled)}{unit}"
    return f"{bit_per_s:g}bit"
