"""Values of command-line options, parsed from their strings: batch lists, memory sizes, modes,
thread counts. Every problem is a one-line `UserError` saying what is wrong and what is accepted.
What needs the machine (does the device exist, can it run the precision) is measure/validate.py's.
"""

from __future__ import annotations

import re

from nnscale.errors import UserError
from nnscale.host import usable_cores
from nnscale.measure.validate import MAX_THREADS
from nnscale.records import ALL_MODES, MODES

MAX_BATCH = 1 << 24


def parse_batches(text: str) -> tuple[int, ...] | None:
    """'1,2,4' -> (1, 2, 4); 'auto' -> None (search). Sorted, duplicates removed."""
    raw = str(text).strip().lower()
    if raw == "auto":
        return None
    accepted = "expected positive integers separated by commas (e.g. 1,2,4,8) or 'auto'"
    if not raw:
        raise UserError(f"empty --batch: {accepted}")
    sizes = []
    for part in raw.split(","):
        part = part.strip()
        if not re.fullmatch(r"[+-]?\d+", part):
            raise UserError(f"bad batch size {part!r} in --batch {text!r}: {accepted}")
        value = int(part)
        if value <= 0 or value > MAX_BATCH:
            raise UserError(f"bad batch size {value} in --batch {text!r}: {accepted}, at most {MAX_BATCH}")
        sizes.append(value)
    return tuple(sorted(set(sizes)))


_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b?)$")


def parse_size(text: str) -> int:
    """'512M', '2G', '1.5GiB', '1000000' -> bytes (K/M/G/T are binary multiples, as for memory)."""
    match = _SIZE.match(str(text).strip().lower())
    value = float(match.group(1)) * 1024 ** " kmgt".index(match.group(2) or " ") if match else 0
    if not match or value < 1:
        raise UserError(f"bad memory size {text!r}: expected a positive size like 512M, 2G or 1.5GiB")
    return int(value)


def parse_modes(text: str) -> tuple[str, ...]:
    """'inference', 'training' or 'both' (inference first); language models also 'decode' and
    'all' (inference = prefill, decode, training)."""
    if text == "both":
        return MODES
    if text == "all":
        return ALL_MODES
    if text not in ALL_MODES:
        raise UserError(f"unknown mode {text!r}: expected inference, training or both; for language "
                        "models also decode or all")
    return (text,)


def check_thread_option(value: int | None, option: str = "--threads") -> int | None:
    """A thread-count option as given: None (omitted: all usable cores) or 1 to MAX_THREADS.
    0 is refused: it used to mean "all cores" without saying so; omitting the option says it."""
    if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                              or not 1 <= value <= MAX_THREADS):
        raise UserError(f"bad {option} {value!r}: expected an integer from 1 to {MAX_THREADS} "
                        f"(omit it for all usable cores, {usable_cores()} here)")
    return value
