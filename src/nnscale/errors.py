"""Errors a user can cause and fix. The CLI prints them as one line and exits with code 2.

Everything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input: a wrong value, file, URL or name. The message says what is wrong and what is accepted."""

    exit_code = 2
