"""The one rule for text that names things or travels into a shell script: run names and values.

A run name is 1 to 200 printable characters (`str.isprintable`: no newline, tab, escape or other
control character, no Unicode separator). Every command that takes `--run` is held to it by the
store, and `nnscale slurm` checks it before it writes a script, so a name that works in one place
works everywhere. Values written into generated scripts (paths, URLs, model names, options) may
hold no control character (Unicode category Cc: C0, DEL and C1): a newline in a value is how a
value ends a shell line or a here-document early.
"""

from __future__ import annotations

import unicodedata

from nnscale.errors import UserError

MAX_RUN_NAME = 200


def check_run_name(name: str, option: str = "run name") -> str:
    """`name` if it is a valid run name; a one-line UserError saying what is accepted otherwise."""
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_RUN_NAME or not name.isprintable():
        raise UserError(f"bad {option} {name!r}: a run name is 1 to {MAX_RUN_NAME} printable "
                        "characters (no newline, tab or other control character)")
    return name


def check_no_control(option: str, value: object) -> str:
    """str(value) if it holds no control character; a one-line UserError otherwise."""
    text = str(value)
    bad = next((c for c in text if unicodedata.category(c) == "Cc"), None)
    if bad is not None:
        raise UserError(f"{option} {text!r}: control character {bad!r} not accepted (a value that "
                        "goes into a script is one line of printable text)")
    return text
