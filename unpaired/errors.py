"""Errors users see. Each message names the file or recipe key and what to do."""


class UnpairedError(Exception):
    """Base class of every error this package raises on purpose."""


class RecipeError(UnpairedError, ValueError):
    """A recipe, a plugin name or a component argument is wrong; the message has the key path."""


class DataError(UnpairedError, ValueError):
    """A dataset file or folder is missing, empty, corrupt or of the wrong kind; names the path."""


class CheckpointError(UnpairedError, RuntimeError):
    """A checkpoint is missing, unsafe, corrupt or does not match the recipe; names the path."""
