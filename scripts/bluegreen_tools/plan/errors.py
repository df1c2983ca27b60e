"""How plan.py fails: bad usage (exit 2) or a bug (exit 3), each told in one line."""


class UsageError(Exception):
    """Bad arguments: exit 2."""


class InternalError(Exception):
    """A bug, in this script or in the program: exit 3, with one line."""


def one_line(text: str) -> str:
    """A message as one line: its own line breaks (a hostile value's, an exception's) become spaces."""
    return " ".join(text.split("\n")).replace("\r", " ")
