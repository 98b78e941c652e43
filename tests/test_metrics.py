"""Built-in metrics (kind ``metric``): known values on hand-made features and images."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

import unpaired
from unpaired.evaluation.metrics import Judge, TranslationSet

from conftest import raises

NAMES = ["classifier", "content_class", "cycle", "diversity", "edges", "fid", "identity", "kid", "label_map", "paired"]


def metric(name, **args):
    return unpaired.create("metric", name, **args)


def feature_set(fake, target, **fields):
    """A set whose judge's features are the images flattened (so images (N, D, 1, 1) are features).

    A fresh judge per set: the judge caches by tensor id, which a temporary's successor may reuse."""
    return TranslationSet("AtoB", source=fake, fake=fake, target=target, judge=Judge(features=nn.Flatten()), **fields)


def gaussian(n, d=4, seed=0):
    return torch.randn(n, d, 1, 1, generator=torch.Generator().manual_seed(seed))


def from_255(values):
    """Images in [-1, 1] from values in [0, 255]."""
    return torch.tensor(values, dtype=torch.float32) / 127.5 - 1


# -- registration ---------------------------------------------------------------------------------


def test_all_metrics_registered_with_needs_and_better():
    assert set(NAMES) <= set(unpaired.list_components("metric"))
    for name in NAMES:
        m = metric(name, palette=[[0], [255]]) if name == "label_map" else metric(name)
        assert callable(m) and m.needs and m.better
        assert set(m.better.values()) <= {"min", "max"}


def test_missing_needs_are_reported_by_the_set():
    ts = TranslationSet("AtoB", torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4))
    assert ts.missing(metric("cycle").needs) == ["reconstructed"]
    assert ts.missing(metric("fid").needs) == ["features"]
    assert ts.missing(metric("classifier").needs) == ["classifier", "target_class"]
    assert ts.missing(metric("edges").needs) == ["paired"]


def test_bad_arguments_are_recipe_errors():
    with raises(unpaired.RecipeError, "rejected", says=("palette[1]",)):
        metric("label_map", palette=[[0, 0, 0], [0, 300, 0]])
    with raises(unpaired.RecipeError, "rejected", says=("at least 2",)):
        metric("label_map", palette=[[0, 0, 0]])
    with raises(unpaired.RecipeError, "rejected", says=("subset_size",)):
        metric("kid", subset_size=1)


# -- feature space --------------------------------------------------------------------------------


def test_fid_is_zero_for_the_same_set_and_adds_the_squared_mean_shift():
    x, y = gaussian(5000, seed=0), gaussian(5000, seed=1)
    shift = torch.tensor([3.0, 0, 0, 0]).view(1, 4, 1, 1)  # |d|^2 = 9
    fid = metric("fid")
    assert abs(fid(feature_set(x, x))["fid"]) < 1e-6
    assert fid(feature_set(x, x + shift))["fid"] == pytest.approx(9.0, rel=1e-6)  # same covariance
    assert fid(feature_set(x, y + shift))["fid"] == pytest.approx(9.0, rel=0.05)  # plus sampling noise


def test_kid_is_the_unbiased_cubic_kernel_mmd():
    x, y = gaussian(30, seed=0), gaussian(30, seed=1) + 0.3

    def k(a, b):
        return (a @ b.T / a.shape[1] + 1) ** 3

    a, b, m = x.flatten(1).double(), y.flatten(1).double(), len(x)
    offdiag = (k(a, a).sum() - k(a, a).trace() + k(b, b).sum() - k(b, b).trace()) / (m * (m - 1))
    expected = (offdiag - 2 * k(a, b).mean()).item()
    # subset_size 1000 is clipped to the 30 images: every subset is the whole set.
    out = metric("kid", subsets=3)(feature_set(x, y))
    assert out["kid"] == pytest.approx(expected, rel=1e-9)
    assert out["kid_std"] == pytest.approx(0, abs=1e-9)


def test_kid_is_about_zero_for_one_distribution_and_grows_with_a_shift():
    x, y = gaussian(200, seed=0), gaussian(200, seed=1)
    kid = metric("kid", subsets=20, subset_size=50, seed=3)
    shifted = kid(feature_set(x, y + 1.0))["kid"]
    assert shifted > 1.0
    assert abs(kid(feature_set(x, x))["kid"]) < 0.05 * shifted
    assert abs(kid(feature_set(x, y))["kid"]) < 0.05 * shifted  # unbiased: may be slightly negative
    assert kid(feature_set(x, x))["kid"] == kid(feature_set(x, x))["kid"]  # seeded


def test_diversity_ratio():
    points = torch.tensor([[0.0], [3.0]]).view(2, 1, 1, 1)
    real = torch.tensor([[0.0], [1.0]]).view(2, 1, 1, 1)
    div = metric("diversity")
    assert div(feature_set(points, real)) == {"diversity": 3.0, "diversity_fake": 3.0, "diversity_real": 1.0}
    x = gaussian(20)
    assert div(feature_set(x, x))["diversity"] == pytest.approx(1.0)
    collapsed = x[:1].expand(20, -1, -1, -1).clone()
    assert div(feature_set(collapsed, x))["diversity"] == 0.0
    with pytest.raises(ValueError, match="same features"):
        div(feature_set(x, collapsed))
    # max_images takes evenly spaced images: the first and the last here.
    line = torch.arange(5.0).view(5, 1, 1, 1)
    assert metric("diversity", max_images=2)(feature_set(line, real))["diversity_fake"] == 4.0


# -- classification -------------------------------------------------------------------------------


class Brightness(nn.Module):
    """Logits (N, 2): class 1 ("bright") when the mean pixel value is above 0."""

    def forward(self, x):
        m = x.flatten(1).mean(1)
        return torch.stack([-m, m], 1)


def test_classifier_accuracy_and_confidence():
    means = torch.tensor([0.5, 0.5, 0.5, -0.5])  # 3 of 4 translations bright
    fake = means.view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    target = torch.full((2, 1, 2, 2), 0.5)
    ts = TranslationSet("AtoB", fake, fake, target, target_class=1, judge=Judge(classifier=Brightness()))
    out = metric("classifier")(ts)
    assert out["target_accuracy"] == 0.75
    sigmoid = 1 / (1 + math.exp(-1.0))  # softmax([-m, m])[1] = sigmoid(2m)
    assert out["target_confidence"] == pytest.approx((3 * sigmoid + (1 - sigmoid)) / 4, rel=1e-6)
    assert out["real_target_accuracy"] == 1.0
    with pytest.raises(ValueError, match="target class 5"):
        metric("classifier")(TranslationSet("AtoB", fake, fake, target, target_class=5,
                                            judge=Judge(classifier=Brightness())))


def test_content_class_against_each_source_images_class():
    fake = torch.tensor([0.5, -0.5, 0.5, 0.5]).view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()  # bright, dark, ...
    truth = torch.tensor([0.5, -0.5, -0.5, 0.5]).view(4, 1, 1, 1).expand(4, 1, 2, 2).clone()
    labels = torch.tensor([1, 0, 0, 0])  # what each source shows
    judge = Judge(classifier=Brightness())
    out = metric("content_class")(TranslationSet("AtoB", fake, fake, fake, paired=truth, labels=labels, judge=judge))
    assert out == {"content_accuracy": 0.5, "true_content_accuracy": 0.75}  # 1 and 2 of 4 wrong
    unpaired_set = TranslationSet("AtoB", fake, fake, fake, labels=labels, judge=judge)
    assert metric("content_class")(unpaired_set) == {"content_accuracy": 0.5}
    assert unpaired_set.missing(metric("content_class").needs) == []
    assert TranslationSet("AtoB", fake, fake, fake, judge=judge).missing(metric("content_class").needs) == ["labels"]


PALETTE = [[0, 0, 0], [255, 0, 0], [0, 0, 255]]  # black 0, red 1, blue 2


def label_image(classes, jitter=0):
    """A (1, 3, H, W) label image of class indices, each colour channel moved ``jitter`` towards the
    middle (the palette colour stays the nearest)."""
    colours = torch.tensor(PALETTE, dtype=torch.float32)
    colours = colours + jitter * (colours < 128) - jitter * (colours >= 128)
    return from_255(colours[torch.tensor(classes)].permute(2, 0, 1).unsqueeze(0).tolist())


def test_label_map_scores_by_hand():
    truth = label_image([[0, 0, 1], [1, 2, 2]])
    fake = label_image([[0, 1, 1], [1, 2, 0]], jitter=40)
    ts = TranslationSet("AtoB", fake, fake, truth, paired=truth)
    assert metric("label_map", palette=PALETTE).classes(fake).tolist() == [[[0, 1, 1], [1, 2, 0]]]
    out = metric("label_map", palette=PALETTE)(ts)
    # confusion [true, pred]: 0 -> (0: 1, 1: 1); 1 -> (1: 2); 2 -> (2: 1, 0: 1)
    assert out["pixel_accuracy"] == pytest.approx(4 / 6)
    assert out["class_accuracy"] == pytest.approx((1 / 2 + 2 / 2 + 1 / 2) / 3)
    assert out["class_iou"] == pytest.approx((1 / 3 + 2 / 3 + 1 / 2) / 3)  # IoU 0: 1/(2+2-1), 1: 2/(2+3-2), 2: 1/2
    # Ignoring class 2 drops its two true pixels and its means' terms.
    out = metric("label_map", palette=PALETTE, ignore=[2])(ts)
    assert out["pixel_accuracy"] == pytest.approx(3 / 4)
    assert out["class_accuracy"] == pytest.approx((1 / 2 + 2 / 2) / 2)
    assert out["class_iou"] == pytest.approx((1 / 2 + 2 / 3) / 2)  # class 0: 1 / (2 + 1 - 1)


def test_label_map_grey_palette_and_perfect_match():
    grey = from_255([[[[0, 128], [255, 128]]]])  # (1, 1, 2, 2)
    ts = TranslationSet("AtoB", grey, grey, grey, paired=grey)
    for palette in ([[0], [128], [255]], [[0, 0, 0], [128, 128, 128], [255, 255, 255]], [0, 128, 255]):
        m = metric("label_map", palette=palette)
        assert m.classes(grey).tolist() == [[[0, 1], [2, 1]]]
        assert m(ts) == {"pixel_accuracy": 1.0, "class_accuracy": 1.0, "class_iou": 1.0}


def test_edges_precision_recall_f1():
    white, black = 1.0, -1.0
    truth = torch.tensor([[white, white, white, white], [black] * 4]).view(1, 1, 2, 4)
    fake = torch.tensor([[white, white, black, black], [0.5, black, black, black]]).view(1, 1, 2, 4)
    ts = TranslationSet("AtoB", fake, fake, truth, paired=truth)
    out = metric("edges")(ts)
    # 3 predicted edge pixels, 4 true, 2 found
    assert out["edge_precision"] == pytest.approx(2 / 3)
    assert out["edge_recall"] == pytest.approx(1 / 2)
    assert out["edge_f1"] == pytest.approx(4 / 7)
    assert metric("edges", threshold=0.6)(ts)["edge_precision"] == 1.0  # 0.5 is no edge any more


# -- pixel similarity -----------------------------------------------------------------------------


def test_cycle_identity_paired_known_values():
    x = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0)) - 0.75  # in [-0.75, 0.25]
    y = x + 0.5  # 0.5 in [-1, 1] units = 0.25 in [0, 1] units
    cycle = metric("cycle")(TranslationSet("AtoB", x, x, x, reconstructed=y))
    assert cycle["cycle_l1"] == pytest.approx(0.5)
    assert cycle["cycle_psnr"] == pytest.approx(20 * math.log10(1 / 0.25), abs=1e-4)  # 12.04 dB
    assert 0 < cycle["cycle_ssim"] < 1
    identity = metric("identity")(TranslationSet("AtoB", x, x, x, identity=x.clone()))
    assert identity["identity_l1"] == 0 and identity["identity_ssim"] == pytest.approx(1.0, abs=1e-5)
    assert identity["identity_psnr"] == math.inf
    paired = metric("paired")(TranslationSet("AtoB", x, x, x, paired=y))
    assert paired == {k.replace("cycle", "paired"): v for k, v in cycle.items()}
    with pytest.raises(ValueError, match="same shape"):
        metric("paired")(TranslationSet("AtoB", x, x, x, paired=y[:2]))


LPIPS_CHANNELS = [64, 128, 256, 512, 512]


def test_paired_lpips(tmp_path, monkeypatch):
    import torch_fidelity.sample_similarity_lpips as tf_lpips
    from torchvision.models.vgg import cfgs, make_layers

    from unpaired_plugins.metrics.pixel import lpips_weight_files

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    lpips_file, vgg_file = lpips_weight_files()
    assert lpips_file.parent == tmp_path / "hub" / "checkpoints"
    with raises(unpaired.RecipeError, "rejected", says=("weights-vgg16-lpips.pth",)) as err:
        metric("paired", lpips=True)
    assert str(lpips_file) in str(err.value) and tf_lpips.URL_VGG16_LPIPS in str(err.value)

    # Random stand-ins: LPIPS's linear layers (non-negative, as the real ones) in the hub cache, and a
    # random VGG16 body instead of torchvision's ImageNet weights (whose file then only has to exist).
    torch.manual_seed(0)
    lpips_file.parent.mkdir(parents=True)
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate(LPIPS_CHANNELS)}, lpips_file)
    vgg_file.touch()
    monkeypatch.setattr(tf_lpips, "torchvision_load_pretrained_vgg16", lambda: SimpleNamespace(features=make_layers(cfgs["D"])))

    x = torch.rand(2, 1, 32, 32) * 2 - 1
    y = x.flip(-1)
    m = metric("paired", lpips=True)
    assert m.better["paired_lpips"] == "min"
    assert m(TranslationSet("AtoB", x, x, x, paired=x.clone()))["paired_lpips"] == pytest.approx(0, abs=1e-9)
    assert m(TranslationSet("AtoB", x, x, x, paired=y))["paired_lpips"] > 0
