"""``torchscript`` classifier and feature extractor: a judge saved with ``torch.jit.save``.

Bring any classifier without writing a plugin: script or trace it so that it maps images
(N, C, H, W) in [-1, 1] to logits (N, K) (and, for features, give it a ``features`` method, or
trace a feature network), save it, and name the file in the recipe's eval section.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn


def _load(path: str) -> torch.jit.ScriptModule:
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"TorchScript file not found: {file}")
    try:
        module = torch.jit.load(str(file), map_location="cpu")
    except (RuntimeError, ValueError) as err:
        raise ValueError(f"{file}: not a TorchScript file ({str(err).splitlines()[0]}); save one with torch.jit.save.") from err
    return module.eval()


class TorchScriptClassifier(nn.Module):
    """Logits (N, K) of images (N, C, H, W) in [-1, 1] from a TorchScript module.

    Args:
        path: the ``torch.jit.save`` file.
        classes: the K class names (so that eval.classes can name classes); default ``"0"`` ... .

    Raises:
        ValueError: the file is missing or not TorchScript.
    """

    def __init__(self, path: str, classes: list | None = None):
        super().__init__()
        self.module = _load(path)
        self.weights_path = str(Path(path).expanduser())
        self.classes = [str(c) for c in classes] if classes else None

    def forward(self, x: Tensor) -> Tensor:
        return self.module(x)


class TorchScriptFeatures(nn.Module):
    """Features (N, D) of images (N, C, H, W) in [-1, 1]: the module's ``method`` (default its
    ``features`` method if it has one, else its output).

    Raises:
        ValueError: the file is missing or not TorchScript, or has no such method.
    """

    def __init__(self, path: str, method: str | None = None):
        super().__init__()
        self.module = _load(path)
        self.weights_path = str(Path(path).expanduser())
        if method is None:
            method = "features" if hasattr(self.module, "features") else "forward"
        if not hasattr(self.module, method):
            raise ValueError(f"{path}: the TorchScript module has no method '{method}'.")
        self.method = method

    def forward(self, x: Tensor) -> Tensor:
        return getattr(self.module, self.method)(x).flatten(1)
