"""The judge and the metrics of a recipe's ``eval`` section, without data: :class:`Scorer` scores
:class:`~unpaired.evaluation.metrics.TranslationSet` parts for the two-domain evaluator
(:mod:`unpaired.evaluation.evaluator`), the multi-domain one (:mod:`unpaired.evaluation.domains`)
and folders of translations (:mod:`unpaired.evaluation.entry`)."""

from __future__ import annotations

import platform
from functools import cached_property
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from unpaired.errors import RecipeError
from unpaired.evaluation.metrics import Judge, TranslationSet
from unpaired.plugin.registry import closest
from unpaired.recipe.load import plugin_args
from unpaired.recipe.resolved import ResolvedRecipe, spec
from unpaired.runs import checkpoint


def _describe(spec: DictConfig | None, module: nn.Module | None) -> dict | None:
    if spec is None:
        return None
    info = {"type": spec.type, "args": plugin_args(spec.args)}
    path = getattr(module, "weights_path", None)
    if path:
        info.update(weights=str(path), sha256=checkpoint.file_sha256(Path(path)))
    if getattr(module, "preprocess", None):
        info["preprocess"] = module.preprocess
    return info


class Scorer:
    """The eval section's judge and metrics, without data: scores :class:`TranslationSet` parts.

    Args:
        recipe: a resolved recipe; its ``eval`` section is used, its plugins built.
        device: where the feature extractor and classifier run.

    Raises:
        RecipeError: a plugin that cannot be created (e.g. a missing weights file: the message
            says which file is needed), or a class name the classifier does not have.
    """

    def __init__(self, recipe: ResolvedRecipe, device: torch.device):
        ev = recipe.eval
        self.eval, self.device = ev, device
        self.metrics = {name: recipe.build(spec("metric", {"type": m.type or name, "args": m.args}, f"eval.metrics.{name}"))
                        for name, m in ev.metrics.items()}
        features = recipe.build(spec("feature_extractor", ev.features, "eval.features")) if ev.features else None
        classifier = recipe.build(spec("classifier", ev.classifier, "eval.classifier")) if ev.classifier else None
        for module in (features, classifier):
            if module is not None:
                module.to(device).eval()
        self.features, self.classifier = features, classifier
        self.classes = {d: self._class_index(d, v) for d, v in ev.classes.items()}
        self.better = {k: v for m in self.metrics.values() for k, v in getattr(m, "better", {}).items()}

    def _class_index(self, domain: str, value) -> int:
        names = list(getattr(self.classifier, "classes", None) or [])
        if isinstance(value, int):
            if names and not 0 <= value < len(names):
                raise RecipeError(f"eval.classes.{domain}: class {value} is out of range (0..{len(names) - 1}).",
                                  key=f'eval.classes.{domain}', code="out-of-range")
            return value
        if str(value) not in names:
            raise RecipeError(f"eval.classes.{domain}: '{value}' is not a class of the classifier.{closest(str(value), names)} "
                              f"Classes: {', '.join(names) or '(unnamed: give an index)'}.",
                              key=f'eval.classes.{domain}', code="unknown-class")
        return names.index(str(value))

    def judge(self) -> Judge:
        """A fresh judge (its feature cache lives for one evaluation)."""
        return Judge(self.features, self.classifier, self.device, self.eval.batch_size)

    def score(self, ts: TranslationSet) -> tuple[dict[str, float], dict[str, str]]:
        """``(values, skipped)``: every metric's outputs, and why the others did not run.

        Raises:
            RecipeError: two metrics produce the same output key.
        """
        values, skipped = {}, {}
        for name, metric in self.metrics.items():
            if self.eval.metrics[name].directions and ts.direction not in self.eval.metrics[name].directions:
                continue
            missing = ts.missing(getattr(metric, "needs", ()))
            if missing:
                skipped[name] = "needs " + ", ".join(missing)
                continue
            try:
                scores = metric(ts)
            except ValueError as err:  # the data does not allow it (e.g. one image): a note, never a lost run
                skipped[name] = f"failed: {err}"
                continue
            for key, value in scores.items():
                if key in values:
                    raise RecipeError(f"eval.metrics.{name}: output '{key}' is also produced by another metric; "
                                      "remove one of them.", key=f'eval.metrics.{name}', code="duplicate-output")
                values[key] = float(value)
        return values, skipped

    @cached_property
    def protocol(self) -> dict:
        """The judge and metric settings, with the weights' SHA-256 and the library versions
        (computed once: hashing an Inception file at every evaluation would be wasted I/O)."""
        import torch_fidelity

        ev = self.eval
        return {
            "features": _describe(ev.features, self.features),
            "classifier": _describe(ev.classifier, self.classifier),
            "classes": dict(self.classes),
            "metrics": {n: {"type": s.type or n, "args": plugin_args(s.args), **({"directions": list(s.directions)}
                                                                              if s.directions else {})}
                        for n, s in ev.metrics.items()},
            "device": str(self.device),
            "versions": {"torch": torch.__version__, "torch_fidelity": torch_fidelity.__version__,
                         "python": platform.python_version()},
        }
