"""Where progress goes: a terminal gets progress bars that redraw in place; a file or a pipe (a
log of several runs, a CI job) gets no redraws, only the lines the commands print themselves
(the trainer's one line per epoch, the translate summary), so a log stays readable."""

from __future__ import annotations

import sys


def interactive() -> bool:
    """Whether stderr, where progress bars draw, is a terminal."""
    return sys.stderr.isatty()
