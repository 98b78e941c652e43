"""What a metric plugin sees: one direction's test images, and the judge that embeds and classifies them.

A component of kind ``metric`` is a factory whose keyword arguments are the recipe's ``args``; it
returns a callable ``metric(ts: TranslationSet) -> dict[str, float]``. The object may declare

- ``needs``: names of :class:`TranslationSet` fields that must not be None (e.g.
  ``("reconstructed",)``), and ``"features"`` / ``"classifier"`` for the judge's parts; when one
  is missing the evaluator skips the metric and records why;
- ``better``: ``{output key: "min" | "max"}``, which way each output improves (used to pick the
  best checkpoint and to draw arrows in reports); keys left out are not rankable.

Metrics read images through the set (all CPU tensors, (N, C, H, W) float in [-1, 1]) and features
and class probabilities through :attr:`TranslationSet.judge`, which computes each image set's
features once however many metrics ask.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import Tensor, nn

__all__ = ["ARROWS", "Judge", "TranslationSet"]

#: How a metric's ``better`` direction is drawn in tables and reports.
ARROWS = {"min": "↓", "max": "↑"}


class Judge:
    """The feature extractor and the classifier of an evaluation, with a per-set cache.

    Args:
        features: a module mapping images (N, C, H, W) in [-1, 1] to features (N, D), or None
            (then metrics in feature space cannot run).
        classifier: a module mapping images (N, C, H, W) in [-1, 1] to logits (N, K), or None.
        device: where the modules run; results come back to the CPU.
        batch_size: images per forward pass.

    Features are float64 (FID's covariance wants the precision); probabilities float32.
    """

    def __init__(self, features: nn.Module | None = None, classifier: nn.Module | None = None,
                 device: torch.device | str = "cpu", batch_size: int = 100):
        self.feature_net, self.classifier = features, classifier
        self.device, self.batch_size = torch.device(device), batch_size
        self._cache: dict[tuple[str, int], tuple[Tensor, Tensor]] = {}

    @torch.no_grad()
    def _batched(self, fn: Callable[[Tensor], Tensor], images: Tensor) -> Tensor:
        out = [fn(images[i:i + self.batch_size].to(self.device)).float().cpu()
               for i in range(0, len(images), self.batch_size)]
        return torch.cat(out)

    def _cached(self, what: str, images: Tensor, fn: Callable[[Tensor], Tensor]) -> Tensor:
        # Keyed by identity; the entry keeps its tensor alive so that its id is never reused.
        key = (what, id(images))
        if key not in self._cache:
            self._cache[key] = images, self._batched(fn, images)
        return self._cache[key][1]

    def features(self, images: Tensor) -> Tensor:
        """Features (N, D) float64 of images (N, C, H, W) in [-1, 1].

        Raises:
            ValueError: no feature extractor was configured (``eval.features`` in the recipe).
        """
        if self.feature_net is None:
            raise ValueError("this metric needs a feature extractor; set eval.features in the recipe "
                             "(e.g. {type: inception} or a classifier's features such as {type: fashion_mnist}).")
        return self._cached("features", images, self.feature_net).double()

    def probabilities(self, images: Tensor) -> Tensor:
        """Class probabilities (N, K) (softmax of the classifier's logits) of images (N, C, H, W).

        Raises:
            ValueError: no classifier was configured (``eval.classifier``).
        """
        if self.classifier is None:
            raise ValueError("this metric needs a classifier; set eval.classifier in the recipe.")
        return self._cached("probabilities", images, lambda x: self.classifier(x).float().softmax(1))


@dataclass
class TranslationSet:
    """One direction's test images (e.g. ``AtoB``: source A, translations to B, real B).

    Attributes:
        direction: the direction's name, ``"<source>to<target>"``.
        source: real source-domain test images (N, C_s, H, W) in [-1, 1].
        fake: their translations (N, C_t, H, W) in [-1, 1].
        target: real target-domain test images (M, C_t, H, W) in [-1, 1] (M may differ from N).
        reconstructed: ``source`` translated there and back (N, C_s, H, W), when the recipe has
            the reverse direction; else None.
        identity: ``target`` passed through this direction's translation (M, C_t, H, W), when
            source and target have the same channel count; else None.
        paired: the true target of each source image (N, C_t, H, W), when the test set is aligned
            (a paired dataset); else None.
        labels: the class of what each source image shows (N,) int64, when the dataset tells
            (e.g. the Fashion-MNIST class of an edge map); else None.
        target_class: the classifier's class index of the target domain, or None.
        judge: features and class probabilities of any of these tensors.
    """

    direction: str
    source: Tensor
    fake: Tensor
    target: Tensor
    reconstructed: Tensor | None = None
    identity: Tensor | None = None
    paired: Tensor | None = None
    labels: Tensor | None = None
    target_class: int | None = None
    judge: Judge = field(default_factory=Judge)

    def missing(self, needs) -> list[str]:
        """The names in ``needs`` that this set lacks (what keeps a metric from running): fields
        that are None, and ``"features"`` / ``"classifier"`` when the judge has none."""
        judge = {"features": self.judge.feature_net, "classifier": self.judge.classifier}
        return [n for n in needs if (judge[n] if n in judge else getattr(self, n)) is None]
