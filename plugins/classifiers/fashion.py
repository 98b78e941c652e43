"""``fashion_mnist`` classifier: a small CNN trained on the full Fashion-MNIST training set.

The judge of the Fashion-MNIST demo (sneaker <-> ankle boot, edges -> photo): its logits give the
target-class accuracy of translations, its 128-d penultimate features the feature space of
FID/KID and of diversity measures. The weights ship inside this package
(``data/fashion_classifier.safetensors``, trained by ``scripts/train_fashion_classifier.py`` on
the 60,000 training images; the embedded demo subset's test images were never seen). Test
accuracies are in the file's metadata (:attr:`FashionClassifier.meta`) and in docs/evaluation.md.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from unpaired_plugins.datasets.fashion import CLASSES

EMBEDDED = Path(__file__).parent / "data" / "fashion_classifier.safetensors"
#: Input size the network was trained on.
SIZE = 28
FEATURES = 128


class FashionCNN(nn.Module):
    """The architecture, untrained: three conv blocks and a 128-d feature layer.

    ``(N, 1, 28, 28)`` -> conv 32 (28x28) -> pool -> conv 64 (14x14) -> pool -> conv 128 (7x7)
    -> pool (3x3) -> linear 1152 -> 128 (ReLU: the features) -> dropout -> linear 128 -> 10.
    Each block is a 3x3 conv, 2x2 max pool, batch norm, ReLU (pooling before the norm makes it
    twice as fast on a CPU). About 242k parameters (0.97 MB in float32).
    """

    classes = CLASSES

    def __init__(self):
        super().__init__()

        def block(c_in, c_out):
            return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.MaxPool2d(2),
                                 nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))

        self.body = nn.Sequential(block(1, 32), block(32, 64), block(64, 128))
        self.embed = nn.Linear(128 * 3 * 3, FEATURES)
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(FEATURES, len(CLASSES))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, 128), non-negative (after ReLU), of images (N, 1, 28, 28)."""
        return F.relu(self.embed(self.body(x).flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, 10) of images (N, 1, 28, 28) in [-1, 1]."""
        return self.head(self.dropout(self.features(x)))


class FashionClassifier(FashionCNN):
    """Frozen Fashion-MNIST classifier (10 classes), the judge of the Fashion-MNIST demo.

    Args:
        weights: ``"embedded"`` (the weights shipped with this package) or the path of a
            ``.safetensors`` file written by ``scripts/train_fashion_classifier.py``.

    Inputs are images ``(N, 1, H, W)`` in [-1, 1] (``uint8 / 127.5 - 1``, as the datasets give
    them; background -1). Images of another size are resized to 28x28 (bilinear, antialiased)
    first, so the edges task's 32x32 images are judged as they are. The network was trained on
    28x28 images and on images zoomed by up to 33/28 (the demo's framing: its datasets resize 28
    to 32 and crop 28); a real test image is recognised either way (docs/evaluation.md). Values
    are not range-checked (that would wait for the device). The input is cast to the network's
    dtype.

    The module stays frozen: parameters do not require grad, and it is always in eval mode
    (``.train()`` is a no-op), so a parent module's ``train()`` cannot switch its batch norm or
    dropout on. Gradients still flow to the *input* (e.g. for a classifier-guided loss).

    Attributes:
        classes: the 10 class names, index = label (7 "Sneaker", 9 "Ankle boot").
        meta: the weights file's metadata: ``test_accuracy`` (float), ``test_accuracy_per_class``
            (list of 10 floats), the same ``..._demo_view`` (test images resized to 32 and
            centre-cropped to 28, as the demo's datasets show them), ``epochs``, ``seed``,
            ``zoom``, ``flip``, ``train_images_sha256``, ``torch``, ...
    """

    preprocess = "resized to 28x28 (bilinear, antialiased) when not 28x28"

    def __init__(self, weights: str = "embedded"):
        super().__init__()
        path = EMBEDDED if weights == "embedded" else Path(weights)
        if not path.is_file():
            raise ValueError(f"classifier weights not found: {path} (use weights: embedded, or train them "
                             "with scripts/train_fashion_classifier.py)")
        from safetensors import safe_open
        from safetensors.torch import load_file

        with safe_open(str(path), framework="pt") as f:
            raw = f.metadata() or {}
        state = {k: v.float() for k, v in load_file(str(path)).items()}
        try:
            self.load_state_dict(state)
        except RuntimeError as err:
            raise ValueError(f"{path}: not weights of this classifier's architecture ({err})") from err
        self.meta = {k: _parse(v) for k, v in raw.items()}
        self.weights_path = str(path)
        self.requires_grad_(False)
        super().train(False)

    def train(self, mode: bool = True):
        """No-op: the classifier is always in eval mode."""
        return super().train(False)

    def _prepare(self, x: torch.Tensor) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != 1 or x.shape[2] < 1 or x.shape[3] < 1:
            shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
            raise ValueError(f"FashionClassifier expects grey images (N, 1, H, W) in [-1, 1], got {shape}")
        x = x.to(self.head.weight.dtype)
        if x.shape[-2:] != (SIZE, SIZE):
            x = F.interpolate(x, size=(SIZE, SIZE), mode="bilinear", align_corners=False, antialias=True)
        return x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (N, 128) (non-negative) of images (N, 1, H, W) in [-1, 1]."""
        return super().features(self._prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, 10) of images (N, 1, H, W) in [-1, 1]; ``.argmax(1)`` indexes :attr:`classes`."""
        return self.head(self.features(x))

    def predict(self, x: torch.Tensor) -> torch.Tensor:
        """Predicted labels (N,) (int64) of images (N, 1, H, W) in [-1, 1]."""
        with torch.no_grad():
            return self(x).argmax(1)


class FashionFeatures(nn.Module):
    """The ``fashion_mnist`` classifier's 128-d penultimate features (N, 128) of grey images
    (N, 1, H, W) in [-1, 1]: the feature space of FID/KID and diversity for Fashion-MNIST tasks
    (kind ``feature_extractor``). Same weights and input handling as :class:`FashionClassifier`.
    """

    preprocess = "resized to 28x28 (bilinear, antialiased) when not 28x28"

    def __init__(self, weights: str = "embedded"):
        super().__init__()
        self.classifier = FashionClassifier(weights)
        self.weights_path = self.classifier.weights_path

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier.features(x)


def _parse(value: str):
    try:
        return json.loads(value)
    except ValueError:
        return value
