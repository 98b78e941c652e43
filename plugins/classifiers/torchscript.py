"""``torchscript`` classifier and feature extractor: a judge saved as a file, no plugin needed.

Two formats load: TorchScript (``torch.jit.save``; deprecated by PyTorch but what most published
judges are) and ``torch.export`` archives (``torch.export.save``, a ``.pt2`` file; export with
dynamic batch, height and width). The module maps images (N, C, H, W) in [-1, 1] to logits
(N, K); a TorchScript module may also have a ``features`` method (``@torch.jit.export``).
"""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path

import torch
from torch import Tensor, nn


def _load(path: str) -> nn.Module:
    file = Path(path).expanduser()
    if not file.is_file():
        raise ValueError(f"TorchScript / torch.export file not found: {file}")
    try:
        if file.suffix == ".pt2":
            return torch.export.load(str(file)).module()  # an exported program has no train/eval mode
        with warnings.catch_warnings():  # TorchScript is deprecated in PyTorch; loading it still works
            warnings.simplefilter("ignore", FutureWarning)
            return torch.jit.load(str(file), map_location="cpu").eval()
    except (RuntimeError, ValueError, zipfile.BadZipFile) as err:
        raise ValueError(f"{file}: not a TorchScript file ({str(err).splitlines()[0]}); save one with "
                         "torch.jit.save, or a torch.export archive (.pt2) with torch.export.save.") from err


class _Frozen(nn.Module):
    """A loaded judge: always in eval mode (an exported program cannot switch modes at all)."""

    def train(self, mode: bool = True):
        """No-op: the module stays as it was saved, in eval mode."""
        self.training = False
        return self


class TorchScriptClassifier(_Frozen):
    """Logits (N, K) of images (N, C, H, W) in [-1, 1] from a TorchScript module.

    Args:
        path: the ``torch.jit.save`` file, or a ``torch.export.save`` archive (``.pt2``).
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


class TorchScriptFeatures(_Frozen):
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
