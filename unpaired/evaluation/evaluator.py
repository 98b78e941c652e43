"""Evaluation: a recipe's networks scored on its test split by the metrics its ``eval`` section names.

For each direction ``<X>to<Y>`` the :class:`Evaluator` translates a fixed set of test images of
domain X (the first ``eval.num_images``), and builds a :class:`~unpaired.evaluation.metrics.TranslationSet`:
the translations, the real Y test images, the reconstructions (when the recipe has ``<Y>to<X>``),
the identity outputs (the translation applied to Y images, when the channel counts match) and,
for a paired dataset, the true Y image of each X image. Every metric plugin of ``eval.metrics``
then reads the set; a metric whose inputs are missing is skipped and the reason recorded.

The result carries the protocol (checkpoint, image counts and sizes, feature extractor and
classifier with their weights' SHA-256, metric arguments, versions) so that a number can be
reproduced, and is written as JSON and as a Markdown table.
"""

from __future__ import annotations

import time

import torch
from omegaconf import DictConfig, OmegaConf
from torch import Tensor, nn

from unpaired.data.build import build_dataset
from unpaired.domains import DIRECTION
from unpaired.errors import DataError, RecipeError
from unpaired.evaluation.domains import score_domains
from unpaired.evaluation.metrics import Judge, TranslationSet
from unpaired.evaluation.result import EvalResult
from unpaired.evaluation.scorer import Scorer
from unpaired.inference.translator import Translator
from unpaired.plugin.registry import closest
from unpaired.recipe.resolved import ResolvedRecipe, resolve
from unpaired.runtime.device import pick_device


@torch.no_grad()
def _translate(translator: Translator, images: Tensor, batch_size: int) -> Tensor:
    return torch.cat([translator(images[i:i + batch_size]) for i in range(0, len(images), batch_size)])


class Evaluator:
    """Scores a recipe's networks on its test split as ``recipe.eval`` says.

    Everything that can be checked before networks exist is checked when it is built: the metric,
    feature extractor and classifier plugins are created (a missing weights file fails here, not
    after training), the classes named, the directions, the ``best`` metric; and the test images
    are read once (the same images at every evaluation).

    Args:
        recipe: a resolved recipe (a loaded one is resolved, which checks it).
        device: where translation and the judge run.
        data: the recipe's dataset plugin instance, if already built.

    Raises:
        RecipeError: a bad eval section (names the key): unknown class, direction or ``best``
            metric, a plugin that cannot be created.
        DataError: the test split cannot be read or is empty.
    """

    def __init__(self, recipe: ResolvedRecipe | DictConfig, device: str | torch.device = "cpu", data=None):
        recipe = resolve(recipe)  # a recipe not yet resolved is checked here
        self.recipe, ev = recipe, recipe.eval
        self.device = pick_device(device) if isinstance(device, str) else device
        self.scorer = Scorer(recipe, self.device)
        # a multi-domain recipe (inference entries {image, domain, ...}, no AtoB/BtoA) is scored per domain
        self.multi_domain = not any(DIRECTION.fullmatch(d) for d in recipe.inference) and any(
            OmegaConf.is_dict(e) for e in recipe.inference.values())
        if self.multi_domain:
            self.data = data if data is not None else build_dataset(recipe)
            self.directions = []
            return
        self.directions = list(ev.directions) or [d for d in recipe.inference if DIRECTION.fullmatch(d)]
        for d in self.directions:
            if not DIRECTION.fullmatch(d) or d not in recipe.inference:
                raise RecipeError(f"eval.directions: '{d}' is not an inference direction <X>to<Y> of this recipe "
                                  f"(inference: {', '.join(recipe.inference) or 'none'}).",
                                  key="eval.directions", code="not-a-direction")
        if not self.directions:
            raise RecipeError("eval: the recipe's inference section has no direction named AtoB or BtoA to evaluate.",
                              key="inference", code="no-direction")
        for name, metric in ev.metrics.items():
            for d in metric.directions:
                if d not in self.directions:
                    raise RecipeError(f"eval.metrics.{name}.directions: '{d}' is not evaluated "
                                      f"(directions: {', '.join(self.directions)}).",
                                      key=f'eval.metrics.{name}.directions', code="not-evaluated")
        if ev.best is not None:
            self._check_best(ev.best)
        self.data = data if data is not None else build_dataset(recipe)
        self.paired = callable(getattr(self.data, "pairs", None))  # an aligned test split (PairedData)
        self.images = self._test_images()
        self.labels = self._test_labels()

    @property
    def better(self) -> dict[str, str]:
        return self.scorer.better

    def _check_best(self, best: str) -> None:
        direction, key = best.split("/", 1) if "/" in best else (None, best)
        if direction is not None and direction not in self.directions:
            raise RecipeError(f"eval.best: direction '{direction}' is not evaluated.{closest(direction, self.directions)} "
                              f"Directions: {', '.join(self.directions)}.", key="eval.best", code="not-evaluated")
        if key not in self.better:
            raise RecipeError(f"eval.best: '{key}' is not a rankable output of the eval metrics.{closest(key, self.better)} "
                              f"Rankable: {', '.join(self.better) or '(none)'}.", key="eval.best", code="not-rankable")

    def _test_images(self) -> dict[str, Tensor]:
        """The first ``num_images`` images of each domain the directions use, (N, C, H, W) on the CPU."""
        ev, out = self.recipe.eval, {}
        for domain in sorted({c for d in self.directions for c in DIRECTION.fullmatch(d).groups()}):
            try:
                ds = self.data.domain(domain, ev.split)
            except (DataError, ValueError, KeyError) as err:
                raise DataError(f"eval.split: domain {domain} has no '{ev.split}' images to evaluate on: "
                                f"{str(err).rstrip('.')}.", key="eval.split", code="no-split") from err
            n = len(ds) if ev.num_images is None else min(ev.num_images, len(ds))
            if n == 0:
                raise DataError(f"eval.split: domain {domain}'s '{ev.split}' split is empty; nothing to evaluate.",
                                key="eval.split", code="empty")
            out[domain] = torch.stack([ds[i][0] for i in range(n)])
        return out

    def _test_labels(self) -> dict[str, Tensor]:
        """The content class of each test image, for datasets with a ``labels(domain, split)`` method."""
        if not callable(getattr(self.data, "labels", None)):
            return {}
        return {d: self.data.labels(d, self.recipe.eval.split)[: len(x)] for d, x in self.images.items()}

    def __call__(self, nets: dict[str, nn.Module], about: dict | None = None) -> EvalResult:
        """Evaluate ``nets`` (recipe name -> module, on this evaluator's device).

        The networks run in eval mode and get their previous mode back. ``about`` (e.g. the
        checkpoint, step and epoch) heads the protocol.
        """
        start = time.perf_counter()
        modes = {name: net.training for name, net in nets.items()}
        for net in nets.values():
            net.eval()
        if self.multi_domain:
            try:
                result = score_domains(self.recipe, nets, self.device, self.data)
            finally:
                for name, net in nets.items():
                    net.train(modes[name])
            result.protocol = {**(about or {}), **result.protocol}
            return result
        try:
            wanted = {*self.directions, *(f"{d[-1]}to{d[0]}" for d in self.directions)}
            translators = {d: Translator.from_networks(self.recipe, nets, d, self.device)
                           for d in sorted(wanted) if d in self.recipe.inference}
            judge = self.scorer.judge()
            metrics, skipped = {}, {}
            for d in self.directions:
                metrics[d], skipped[d] = self.scorer.score(self._translation_set(d, translators, judge))
        finally:
            for name, net in nets.items():
                net.train(modes[name])
        protocol = {**(about or {}), "split": self.recipe.eval.split,
                    "images": {d: len(x) for d, x in self.images.items()},
                    "image_size": {d: list(x.shape[1:]) for d, x in self.images.items()},
                    "transform": "the dataset's test transform (no random crop or flip), no other resize",
                    "paired": self.paired, **self.scorer.protocol,
                    "seconds": round(time.perf_counter() - start, 2)}
        return EvalResult(metrics, {d: s for d, s in skipped.items() if s}, self.better, protocol)

    def _translation_set(self, direction: str, translators: dict, judge: Judge) -> TranslationSet:
        bs = self.recipe.eval.batch_size
        src, tgt = DIRECTION.fullmatch(direction).groups()
        source, target = self.images[src], self.images[tgt]
        forward, back = translators[direction], translators.get(f"{tgt}to{src}")
        fake = _translate(forward, source, bs)
        return TranslationSet(
            direction=direction, source=source, fake=fake, target=target,
            reconstructed=_translate(back, fake, bs) if back is not None else None,
            identity=_translate(forward, target, bs) if target.shape[1] == forward.in_channels else None,
            # a paired dataset's test domains are aligned: image i of A and of B are one pair
            paired=target[: len(source)] if self.paired and len(target) >= len(source) else None,
            labels=self.labels.get(src),
            target_class=self.scorer.classes.get(tgt), judge=judge)


def require_metrics(recipe: DictConfig, where: str) -> DictConfig:
    """``recipe`` itself when its eval section names metrics.

    Raises:
        RecipeError: ``eval.metrics`` is empty (the message starts with ``where``).
    """
    if not recipe.eval.metrics:
        raise RecipeError(f"{where} names no metrics (eval.metrics is empty). Add some. Without any weights file: "
                          "'eval.metrics.cycle={} eval.metrics.identity={}' (two-way recipes) or 'eval.metrics.paired={}' "
                          "(aligned test pairs). FID and KID need a feature network, e.g. 'eval.metrics.fid={} "
                          "eval.features.type=inception' and its weights file (docs/evaluation.md).",
                          key="eval.metrics", code="no-metrics")
    return recipe
