"""Errors users see. Each message names the file or recipe key and what to do."""

import sys


class UnpairedError(Exception):
    """Base class of every error this package raises on purpose."""


class RecipeError(UnpairedError, ValueError):
    """A recipe, a plugin name or a component argument is wrong; the message has the key path."""


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
