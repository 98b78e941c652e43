"""Metrics in feature space: how close the translations' distribution is to the real target
domain's (``fid``, ``kid``) and how varied the translations are (``diversity``).

All three read features through :meth:`unpaired.metrics.Judge.features`: (N, D) float64 on the
CPU, from the recipe's ``eval.features`` (Inception for photos, a domain classifier's penultimate
layer for small grey images). Values depend on that feature space: compare numbers computed with
the same extractor only.
"""

from __future__ import annotations

import torch

from unpaired.evaluation.metrics import TranslationSet


def _enough(features: torch.Tensor, what: str, at_least: int = 2) -> torch.Tensor:
    if features.ndim != 2 or len(features) < at_least:
        raise ValueError(f"{what}: needs features (N, D) of at least {at_least} images, got {tuple(features.shape)}")
    return features


class FID:
    """Frechet Inception Distance between translations and real target images (lower is better).

    Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
    Equilibrium", NeurIPS 2017: each set's features are summarised by a Gaussian (mean mu,
    covariance S) and ``FID = |mu_f - mu_r|^2 + tr(S_f + S_r - 2 (S_f S_r)^(1/2))``, in squared
    feature units. Computed by torch-fidelity's functional core on the judge's features of
    ``ts.fake`` and ``ts.target``.

    FID is biased upwards for small sets (it shrinks as N grows); compare values computed on sets
    of the same sizes. Output: ``{"fid": x}``.

    Raises:
        ValueError: fewer than 2 images in a set (no covariance), or no feature extractor.
    """

    needs = ("features",)
    better = {"fid": "min"}

    def __call__(self, ts: TranslationSet) -> dict[str, float]:
        from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

        fake = _enough(ts.judge.features(ts.fake), "fid")
        real = _enough(ts.judge.features(ts.target), "fid")
        stats = [fid_features_to_statistics(f.double().cpu()) for f in (fake, real)]
        return {"fid": fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"]}


class KID:
    """Kernel Inception Distance between translations and real target images (lower is better).

    Bińkowski et al., "Demystifying MMD GANs", ICLR 2018: the unbiased estimate of the squared
    maximum mean discrepancy with the cubic polynomial kernel ``k(x, y) = (x.y / D + 1)^3``,
    averaged over ``subsets`` random subsets of ``subset_size`` images from each set
    (torch-fidelity's implementation). Unlike FID it is unbiased for small sets, so values of
    about 0, including slightly negative ones, mean indistinguishable distributions.

    Args:
        subsets: number of random subset pairs.
        subset_size: images per subset; clipped to the smaller set's size.
        seed: seed of the subset sampling (the result is deterministic).

    Output: ``{"kid": mean over subsets, "kid_std": standard deviation over subsets}``.

    Raises:
        ValueError: ``subsets`` or ``subset_size`` below 1 or 2, a set of fewer than 2 images, or no
            feature extractor.
    """

    needs = ("features",)
    better = {"kid": "min"}

    def __init__(self, subsets: int = 100, subset_size: int = 1000, seed: int = 0):
        if subsets < 1 or subset_size < 2:
            raise ValueError(f"kid: subsets must be >= 1 and subset_size >= 2, got {subsets} and {subset_size}")
        self.subsets, self.subset_size, self.seed = int(subsets), int(subset_size), int(seed)

    def __call__(self, ts: TranslationSet) -> dict[str, float]:
        from torch_fidelity.metric_kid import kid_features_to_metric

        fake = _enough(ts.judge.features(ts.fake), "kid")
        real = _enough(ts.judge.features(ts.target), "kid")
        size = min(self.subset_size, len(fake), len(real))
        # subsets as large as both sets are all the same: one is enough (and kid_std is then 0)
        subsets = 1 if size == len(fake) == len(real) else self.subsets
        out = kid_features_to_metric(fake.double().cpu(), real.double().cpu(), kid_subsets=subsets,
                                     kid_subset_size=size, rng_seed=self.seed, verbose=False)
        return {"kid": out["kernel_inception_distance_mean"], "kid_std": out["kernel_inception_distance_std"]}


class Diversity:
    """Diversity of translations relative to real target images (higher is better, 1 = as varied).

    The mean Euclidean distance between the features of all pairs of translations, divided by
    the same mean over the real target images. Translations of different inputs that look nearly
    the same (mode collapse; the CycleGAN paper's loss ablation, Zhu et al. ICCV 2017 section 5.1,
    attributes it to training with the GAN loss alone) give a ratio near 0; a ratio below about
    0.5 flags it. A ratio above 1 means translations vary more than real images (often noise).

    Args:
        max_images: at most this many images of each set enter the pairs (evenly spaced indices,
            so the subset is deterministic); the cost grows with its square.

    Output: ``{"diversity": ratio, "diversity_fake": mean distance of translations,
    "diversity_real": mean distance of real target images}`` (distances in feature units).

    Raises:
        ValueError: a set of fewer than 2 images, all real target images with the same features
            (the ratio's denominator is 0), or no feature extractor.
    """

    needs = ("features",)
    better = {"diversity": "max"}

    def __init__(self, max_images: int = 1000):
        if max_images < 2:
            raise ValueError(f"diversity: max_images must be >= 2, got {max_images}")
        self.max_images = int(max_images)

    def _mean_distance(self, features: torch.Tensor) -> float:
        features = _enough(features, "diversity")
        if len(features) > self.max_images:
            features = features[torch.linspace(0, len(features) - 1, self.max_images).long()]
        return torch.pdist(features.double()).mean().item()

    def __call__(self, ts: TranslationSet) -> dict[str, float]:
        fake = self._mean_distance(ts.judge.features(ts.fake))
        real = self._mean_distance(ts.judge.features(ts.target))
        if real == 0:
            raise ValueError("diversity: the real target images all have the same features (mean pairwise "
                             "distance 0), so the ratio is undefined; use more varied target images or "
                             "another feature extractor.")
        return {"diversity": fake / real, "diversity_fake": fake, "diversity_real": real}
