"""Errors users see. Each names the file or recipe key and what to do, and carries fields that a
program (or a test) reads instead of the prose, as kornia's ``ShapeError`` carries its shapes:

- ``key``: the recipe key (``steps.generators.losses.gan_AB``), file or folder the error is about;
- ``code``: a short name of the kind of problem (``unknown-plugin``, ``not-scalar``, ...);
- ``hint``: what to do about it, when the message says.

``str(err)`` is the one-line message the command prints (``error: ...``).
"""

from __future__ import annotations

import sys


class UnpairedError(Exception):
    """Base class of every error this package raises on purpose.

    Args:
        message: the whole message, one line (``str(err)``).
        key: what it is about: a recipe key, a file or a folder (None when nothing in particular).
        code: the kind of problem, a short name (None for one-off errors).
        hint: what to do, when the message says it.
    """

    def __init__(self, message: str = "", *, key: str | None = None, code: str | None = None,
                 hint: str | None = None):
        super().__init__(message)
        self.key, self.code, self.hint = key, code, hint


class Problem(str):
    """One problem of a recipe, as :func:`unpaired.recipe.validate.validate` lists them: the message
    (a ``str``, starting with the recipe key), with its ``key`` and ``code`` as fields."""

    key: str
    code: str

    def __new__(cls, key: str, code: str, text: str, prefix: bool = True) -> "Problem":
        """``text`` gets ``"<key>: "`` in front unless it starts with it (or ``prefix`` is False)."""
        keyed = not prefix or not key or text.startswith(f"{key}:")
        self = super().__new__(cls, text if keyed else f"{key}: {text}")
        self.key, self.code = key, code
        return self

    @classmethod
    def of(cls, err: "UnpairedError", key: str = "", code: str = "invalid") -> "Problem":
        """An error as a problem, its message as it is: its own ``key`` and ``code`` when it has them."""
        return cls(err.key or key, err.code or code, str(err), prefix=False)


class RecipeError(UnpairedError, ValueError):
    """A recipe, a plugin name or a component argument is wrong; the message has the key path.

    ``problems`` lists every problem when a check found several (each a :class:`Problem`); the
    error's own ``key`` and ``code`` are those of the first.
    """

    def __init__(self, message: str = "", *, key: str | None = None, code: str | None = None,
                 hint: str | None = None, problems: list[Problem] | None = None):
        super().__init__(message, key=key, code=code, hint=hint)
        self.problems = list(problems or [])

    @classmethod
    def listing(cls, problems: list[Problem]) -> "RecipeError":
        """One error for the problems of a recipe: one line for one problem, else a list."""
        if len(problems) == 1:
            message = f"recipe: {problems[0]}"
        else:
            message = "recipe has %d problem(s):\n  - %s" % (len(problems), "\n  - ".join(problems))
        first = problems[0]
        return cls(message, key=getattr(first, "key", None), code=getattr(first, "code", None), problems=problems)


class DataError(UnpairedError, ValueError):
    """A dataset file or folder is missing, empty, corrupt or of the wrong kind; names the path."""


class CheckpointError(UnpairedError, RuntimeError):
    """A checkpoint is missing, unsafe, corrupt or does not match the recipe; names the path."""


class TrainingDiverged(UnpairedError, RuntimeError):
    """Losses or gradients stayed non-finite for ``train.max_nonfinite`` iterations in a row."""


def warn(message: str) -> None:
    """Print a warning to stderr without breaking a progress bar."""
    from tqdm import tqdm

    tqdm.write(f"warning: {message}", file=sys.stderr)
