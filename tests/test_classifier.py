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

#: Accuracy on the embedded subset's 200 test images of each class, measured with the shipped
#: weights (docs/evaluation.md): as stored, and in the demo's view (the fashion_mnist dataset's test
#: transform: resized to 32, centre-cropped to 28), and the fashion_edges photos (32x32, resized to
#: 28 by the classifier). Asserted less MARGIN (2 images of 200) for other CPUs / torch versions.
#: Class 9 as stored is below the 95% aimed at: 12 of these 200 "ankle boots" look like high-top
#: sneakers (on the full test set: 95.1%).
MEASURED = {7: 0.990, 9: 0.940}
MEASURED_DEMO_VIEW = {7: 0.975, 9: 0.975}
MEASURED_EDGES_PHOTOS = {7: 0.960, 9: 0.985}
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
    assert min(meta["test_accuracy_per_class_demo_view"][7], meta["test_accuracy_per_class_demo_view"][9]) >= 0.95
    assert meta["train_images"] == 60000
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
    assert acc >= MEASURED[label] - MARGIN, f"class {label} ({CLASSES[label]}): accuracy {acc:.3f}"
    assert torch.equal(judge.predict(x), logits.argmax(1))


def test_accuracy_in_the_demo_view(judge):
    """As the demo's datasets show the test images (translations come out framed so)."""
    data = unpaired.create("dataset", "fashion_mnist")
    for name, label in (("A", 7), ("B", 9)):
        domain = data.domain(name, "test")
        x = torch.stack([domain[i][0] for i in range(len(domain))])
        assert x.shape == (200, 1, 28, 28)
        acc = float((judge.predict(x) == label).float().mean())
        assert acc >= MEASURED_DEMO_VIEW[label] - MARGIN, f"class {label}: accuracy {acc:.3f}"


def test_accuracy_on_edges_photos(judge):
    """The fashion_edges task's photos: 32x32, classes interleaved 7, 9, 7, ..."""
    domain = unpaired.create("dataset", "fashion_edges").domain("B", "test")
    x = torch.stack([domain[i][0] for i in range(len(domain))])
    assert x.shape == (400, 1, 32, 32)
    labels = torch.tensor([7, 9]).repeat(len(domain) // 2)
    pred = judge.predict(x)
    for label in (7, 9):
        acc = float((pred[labels == label] == label).float().mean())
        assert acc >= MEASURED_EDGES_PHOTOS[label] - MARGIN, f"class {label}: accuracy {acc:.3f}"


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
    from safetensors.torch import save_file

    save_file({"head.weight": torch.zeros(3, 3)}, str(tmp_path / "other.safetensors"))
    with pytest.raises(ValueError, match="architecture"):
        FashionClassifier(weights=str(tmp_path / "other.safetensors"))
