"""The Fashion-MNIST judge (``classifier`` ``fashion_mnist``): shipped weights, registry, accuracy
on the embedded subset's test images (never seen in training), features, frozen, input checks.

No training here: scripts/train_fashion_classifier.py trains the weights (docs/evaluation.md).
"""

from __future__ import annotations

import pytest
import torch

import unpaired
from unpaired_plugins.classifiers.fashion import EMBEDDED, FashionClassifier
from unpaired_plugins.datasets.fashion import CLASSES, load_split

#: Accuracy on the embedded subset's 200 test images of each class, as measured when the shipped
#: weights were trained (docs/evaluation.md), less a margin for other CPUs / torch versions.
MEASURED = {7: 0.980, 9: 0.965}
MARGIN = 0.01


@pytest.fixture(scope="module")
def judge():
    return unpaired.create("classifier", "fashion_mnist")


def images(label: int) -> torch.Tensor:
    """The embedded subset's test images of one class, (200, 1, 28, 28) in [-1, 1]."""
    return torch.from_numpy(load_split("embedded", "test", label)).float()[:, None] / 127.5 - 1


def test_weights_are_shipped_and_small():
    assert EMBEDDED.is_file()
    assert EMBEDDED.stat().st_size < 2_000_000


def test_registered(judge):
    assert "fashion_mnist" in unpaired.list_components("classifier")
    assert isinstance(judge, FashionClassifier)
    assert judge.classes == CLASSES
    assert judge.classes[7] == "Sneaker" and judge.classes[9] == "Ankle boot"


def test_metadata(judge):
    meta = judge.meta
    assert meta["test_accuracy"] >= 0.90
    assert len(meta["test_accuracy_per_class"]) == 10
    assert min(meta["test_accuracy_per_class"][7], meta["test_accuracy_per_class"][9]) >= 0.95
    assert len(meta["train_images_sha256"]) == 64
    assert meta["epochs"] >= 1 and "seed" in meta and "torch" in meta


@pytest.mark.parametrize("label", [7, 9])
def test_accuracy_on_embedded_test_images(judge, label):
    x = images(label)
    assert x.shape == (200, 1, 28, 28)
    with torch.no_grad():
        logits = judge(x)
    assert logits.shape == (200, 10)
    acc = float((logits.argmax(1) == label).float().mean())
    assert acc >= max(0.95, MEASURED[label] - MARGIN), f"class {label} ({CLASSES[label]}): accuracy {acc:.3f}"
    assert torch.equal(judge.predict(x), logits.argmax(1))


def test_features(judge):
    x = images(7)[:16]
    with torch.no_grad():
        feats = judge.features(x)
    assert feats.shape == (16, 128)
    assert feats.dtype == torch.float32 and bool((feats >= 0).all())
    # the logits are a linear map of the features
    with torch.no_grad():
        assert torch.allclose(judge.head(feats), judge(x), atol=1e-5)


def test_frozen(judge):
    assert not any(p.requires_grad for p in judge.parameters())
    assert not judge.training
    judge.train()  # e.g. a parent module's train(): the judge stays in eval mode
    assert not judge.training and not any(m.training for m in judge.modules())
    x = images(9)[:4].requires_grad_(True)
    judge(x)[:, 9].sum().backward()  # gradients reach the input, not the weights
    assert x.grad is not None and all(p.grad is None for p in judge.parameters())


def test_batch_independent(judge):
    x = images(9)[:8]
    with torch.no_grad():
        assert torch.allclose(judge(x)[:2], judge(x[:2]), atol=1e-5)


def test_other_sizes_are_resized(judge):
    x = images(7)[:8]
    big = torch.nn.functional.interpolate(x, size=(56, 56), mode="bilinear", align_corners=False)
    with torch.no_grad():
        assert judge(big).shape == (8, 10)
        assert (judge(big).argmax(1) == 7).float().mean() >= 0.75


@pytest.mark.parametrize("shape", [(4, 3, 28, 28), (28, 28), (4, 28, 28)])
def test_bad_input_shape(judge, shape):
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\).*" + r"\(" + ", ".join(map(str, shape))):
        judge(torch.zeros(shape))
    with pytest.raises(ValueError, match="got"):
        judge.features(torch.zeros(shape))


def test_weights_path(tmp_path):
    assert FashionClassifier(weights=str(EMBEDDED)).meta == FashionClassifier().meta
    with pytest.raises(ValueError, match="not found"):
        FashionClassifier(weights=str(tmp_path / "missing.safetensors"))
