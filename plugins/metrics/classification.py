"""Metrics that classify: whole translations by the judge's classifier (``classifier``), and every
pixel of translated label maps (``label_map``) and edge maps (``edges``) against the true ones of an
aligned test set.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unpaired.evaluation.metrics import TranslationSet


class ClassifierScore:
    """Whether translations are recognised as the target domain by the judge's classifier.

    Outputs (shares in [0, 1], higher is better for the first two):

    - ``target_accuracy``: share of translations (``ts.fake``) whose most probable class is
      ``ts.target_class``;
    - ``target_confidence``: mean probability of ``ts.target_class`` over translations;
    - ``real_target_accuracy``: ``target_accuracy`` of the real target images (``ts.target``), the
      ceiling the translations are compared with (the classifier's own accuracy on the domain).

    Raises:
        ValueError: no classifier, no target class, or a target class outside the classifier's.
    """

    needs = ("classifier", "target_class")
    better = {"target_accuracy": "max", "target_confidence": "max"}

    def __call__(self, ts: TranslationSet) -> dict[str, float]:
        fake, real = ts.judge.probabilities(ts.fake), ts.judge.probabilities(ts.target)
        k = ts.target_class
        if k is None or not 0 <= k < fake.shape[1]:
            raise ValueError(f"classifier: target class {k} is not one of the classifier's {fake.shape[1]} classes")
        return {
            "target_accuracy": (fake.argmax(1) == k).float().mean().item(),
            "target_confidence": fake[:, k].mean().item(),
            "real_target_accuracy": (real.argmax(1) == k).float().mean().item(),
        }


class ContentClass:
    """Whether translations keep what their input shows: the judge's class of each translation
    against the class of its source image (e.g. an edge map of a sneaker should become a photo
    of a sneaker; the paper's FCN-score idea, Zhu et al. ICCV 2017 section 5.1.1, for classes).

    Outputs (shares in [0, 1]):

    - ``content_accuracy`` (higher is better): share of translations (``ts.fake``) classified as
      the class of their source image (``ts.labels``);
    - ``true_content_accuracy``: the same for the true targets (``ts.paired``), when the test set
      is paired: the ceiling of the judge on real images.

    Raises:
        ValueError: no classifier, or labels outside the classifier's classes.
    """

    needs = ("classifier", "labels")
    better = {"content_accuracy": "max"}

    def __call__(self, ts: TranslationSet) -> dict[str, float]:
        fake = ts.judge.probabilities(ts.fake)
        labels = ts.labels.long()
        if labels.shape != (len(fake),) or labels.min() < 0 or labels.max() >= fake.shape[1]:
            raise ValueError(f"content_class: {tuple(labels.shape)} labels in 0..{fake.shape[1] - 1} needed for "
                             f"{len(fake)} translations")
        out = {"content_accuracy": (fake.argmax(1) == labels).float().mean().item()}
        if ts.paired is not None:
            out["true_content_accuracy"] = (ts.judge.probabilities(ts.paired).argmax(1) == labels).float().mean().item()
        return out


def _to_255(images: Tensor) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> float in [0, 255]."""
    return (images.double() + 1) * 127.5


class LabelMapScore:
    """Segmentation scores of translated label maps (photo -> labels) against the true maps.

    The CycleGAN paper's protocol for photo -> labels (Zhu et al., ICCV 2017, section 5.1: the
    Cityscapes metrics per-pixel accuracy, per-class accuracy and mean class IoU).

    Every pixel of the translations (``ts.fake``) and of the true label maps (``ts.paired``) gets
    the class of the nearest palette colour (Euclidean distance in RGB, images mapped from [-1, 1]
    to [0, 255]; as pix2pix, Isola et al. CVPR 2017, maps generated label images to classes). One
    confusion matrix is pooled over all pixels of all images.

    Args:
        palette: class colours, class i = ``palette[i]``: ``[r, g, b]`` with values 0-255, or for
            grey label maps ``[v]`` (same as ``[v, v, v]``; a bare number ``v`` works too). Grey
            images are compared as RGB images with equal channels.
        ignore: class indices whose true pixels are left out (e.g. "void"); they are also left out
            of the class means.

    Outputs (in [0, 1], higher is better):

    - ``pixel_accuracy``: share of (not ignored) pixels whose class matches the truth;
    - ``class_accuracy``: per-class recall (correct / true pixels of the class), averaged over the
      classes present in the truth;
    - ``class_iou``: per-class intersection over union, averaged over the classes present in the
      truth or in the prediction.

    Raises:
        ValueError: a palette entry that is not 1 or 3 numbers in [0, 255], fewer than 2 classes, an
            ignored index outside the palette; at call time, images with neither 1 nor 3 channels,
            sets of different shapes, or no pixel left to score.
    """

    needs = ("paired",)
    better = {"pixel_accuracy": "max", "class_accuracy": "max", "class_iou": "max"}

    def __init__(self, palette, ignore=()):
        colours = []
        for i, entry in enumerate(palette):
            entry = [entry] if isinstance(entry, (int, float)) else list(entry)
            if len(entry) not in (1, 3) or not all(isinstance(v, (int, float)) and 0 <= v <= 255 for v in entry):
                raise ValueError(f"label_map: palette[{i}] = {entry}: expected [r, g, b] or [v] with values 0-255")
            colours.append(entry * 3 if len(entry) == 1 else entry)
        if len(colours) < 2:
            raise ValueError(f"label_map: the palette needs at least 2 class colours, got {len(colours)}")
        self.palette = torch.tensor(colours, dtype=torch.float64)  # (K, 3)
        self.ignore = sorted({int(i) for i in ignore})
        if any(not 0 <= i < len(colours) for i in self.ignore):
            raise ValueError(f"label_map: ignore {self.ignore}: class indices are 0-{len(colours) - 1}")

    def classes(self, images: Tensor) -> Tensor:
        """Class index (N, H, W) of each pixel of label images (N, 1 or 3, H, W) in [-1, 1]."""
        if images.ndim != 4 or images.shape[1] not in (1, 3):
            raise ValueError(f"label_map: expected label images (N, 1 or 3, H, W), got {tuple(images.shape)}")
        # One image at a time: the (K, H, W) distances of a whole set would not fit in memory.
        return torch.stack([
            torch.cdist(_to_255(img).expand(3, -1, -1).flatten(1).T, self.palette).argmin(1).view(img.shape[1:])
            for img in images
        ])

    def __call__(self, ts: TranslationSet) -> dict[str, float]:
        if ts.fake.shape != ts.paired.shape:
            raise ValueError(f"label_map: translations {tuple(ts.fake.shape)} and true label maps "
                             f"{tuple(ts.paired.shape)} differ in shape")
        k = len(self.palette)
        truth, pred = self.classes(ts.paired).flatten(), self.classes(ts.fake).flatten()
        confusion = torch.bincount(truth * k + pred, minlength=k * k).view(k, k).double()  # [true, predicted]
        scored = torch.ones(k, dtype=torch.bool)
        scored[self.ignore] = False
        confusion[~scored] = 0
        if confusion.sum() == 0:
            raise ValueError("label_map: no pixel to score (every true pixel is of an ignored class)")
        hits, true, predicted = confusion.diag(), confusion.sum(1), confusion.sum(0)
        union = true + predicted - hits
        present, seen = scored & (true > 0), scored & (union > 0)
        return {
            "pixel_accuracy": (hits.sum() / confusion.sum()).item(),
            "class_accuracy": (hits[present] / true[present]).mean().item(),
            "class_iou": (hits[seen] / union[seen]).mean().item(),
        }


class EdgeScore:
    """Precision, recall and F1 of translated edge maps (photo -> edges) against true edge maps.

    Edge convention: edges are white (1) on black (-1). A pixel of ``ts.fake`` or ``ts.paired``
    (averaged over channels first) is an edge pixel when its value exceeds ``threshold`` (in
    [-1, 1]). Counts are pooled over all pixels of all images: precision = true edge pixels found /
    edge pixels predicted, recall = true edge pixels found / true edge pixels, F1 their harmonic
    mean. A score whose denominator is 0 (no predicted or no true edge pixel) is 0.

    Args:
        threshold: binarisation threshold in [-1, 1] (0: the middle grey).

    Outputs ``edge_precision``, ``edge_recall``, ``edge_f1`` (in [0, 1], higher is better).

    Raises:
        ValueError: translations and true edge maps differ in shape.
    """

    needs = ("paired",)
    better = {"edge_precision": "max", "edge_recall": "max", "edge_f1": "max"}

    def __init__(self, threshold: float = 0.0):
        self.threshold = float(threshold)

    def __call__(self, ts: TranslationSet) -> dict[str, float]:
        if ts.fake.shape != ts.paired.shape or ts.fake.ndim != 4:
            raise ValueError(f"edges: expected translations and true edge maps of the same shape (N, C, H, W), "
                             f"got {tuple(ts.fake.shape)} and {tuple(ts.paired.shape)}")
        pred, true = (t.float().mean(1) > self.threshold for t in (ts.fake, ts.paired))
        hits = (pred & true).sum().item()
        precision = hits / pred.sum().item() if pred.any() else 0.0
        recall = hits / true.sum().item() if true.any() else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"edge_precision": precision, "edge_recall": recall, "edge_f1": f1}
