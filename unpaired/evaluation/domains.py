"""Evaluating a multi-domain, multimodal run (StarGAN v2): per target domain and on average.

For every multi-domain inference entry of the recipe (``latent``: style codes drawn at random;
``reference``: the style of a reference image) and every target domain k, the test images of all
other domains are translated into k and scored with the recipe's eval section, as a two-domain
direction is (:class:`unpaired.evaluation.evaluator.Scorer`): the judge's target-class accuracy
(the classifier's class named as domain k), FID/KID against domain k's test images, the
diversity across inputs. Two scores are the multimodal ones:

- ``style_diversity``: each input translated with two styles (seeds 0 and 1; two different
  references), the mean distance between the two translations' features, divided by the mean
  distance between two real images of the domain (as ``diversity``): 0 for a generator that
  ignores its style code, about 1 when two styles differ as two real images do. (Choi et al. report
  LPIPS between pairs of outputs of one input; this is the same pairing in the judge's features.)
- ``cycle_l1`` etc., the content kept: each translation translated back into its source domain with
  the source image as the reference (StarGAN v2's cycle, ``G(G(x, s), E(x, y))``), compared with
  the input, when the recipe has a reference-guided entry and a ``cycle`` metric.

The keys are ``<entry>/<domain name>`` and ``<entry>/mean`` (the mean over domains).
"""

from __future__ import annotations

import time

import torch
from omegaconf import OmegaConf
from torch import Tensor

from unpaired.data.build import build_dataset
from unpaired.errors import RecipeError
from unpaired.evaluation.metrics import TranslationSet
from unpaired.evaluation.result import EvalResult
from unpaired.evaluation.scorer import Scorer
from unpaired.inference.translator import Translator
from unpaired.recipe.resolved import ResolvedRecipe

#: Per source image: two styles (seeds, or references) for ``style_diversity``.
STYLES = 2


def multi_domain_entries(recipe) -> list[str]:
    """The inference entries that are multi-domain mappings (``{image, domain, reference}``)."""
    return [d for d, e in recipe.inference.items() if OmegaConf.is_dict(e)]


def _translate(tr: Translator, x: Tensor, to: int, seed: int, refs: Tensor | None, batch: int) -> Tensor:
    out = []
    for i in range(0, len(x), batch):
        tr.condition(to, seed, None if refs is None else refs[i:i + batch])
        out.append(tr(x[i:i + batch]))
    return torch.cat(out)


def _distance_ratio(judge, a: Tensor, b: Tensor, real: Tensor) -> float:
    """Mean feature distance of the pairs (a_i, b_i) over the mean distance of two real images."""
    fa, fb, fr = judge.features(a), judge.features(b), judge.features(real)
    pairs = (fa - fb).norm(dim=1).mean()
    real_pairs = torch.cdist(fr, fr)[~torch.eye(len(fr), dtype=torch.bool)].mean()
    return float(pairs / real_pairs)


def score_domains(recipe: ResolvedRecipe, nets: dict, device: torch.device, data=None,
                  num_images: int | None = None) -> EvalResult:
    """Score every multi-domain entry of ``recipe`` into every domain (see the module docstring).

    Args:
        nets: the recipe's generators (loaded), on ``device``.
        data: the recipe's dataset (default: built from the recipe); needs ``domain_names`` and
            ``domain(k, split)``.
        num_images: test images per domain (default the recipe's ``eval.num_images``, else all).

    Raises:
        RecipeError: no multi-domain entry, or a dataset without named domains.

    A domain whose name is a class of the judge's classifier is scored with it (target accuracy);
    the others without (the result's ``skipped`` says why).
    """
    entries = multi_domain_entries(recipe)
    data = data if data is not None else build_dataset(recipe)
    names = list(getattr(data, "domain_names", None) or [])
    if not entries or not names:
        raise RecipeError("this evaluation needs a multi-domain recipe: inference entries {image, domain, ...} and a "
                          "dataset with named domains.", key="inference", code="not-multi-domain")
    scorer = Scorer(recipe, device)
    judge = scorer.judge()
    ev = recipe.eval
    n = num_images or ev.num_images
    split = [data.domain(k, ev.split) for k in range(len(names))]
    tests = [torch.stack([d[i][0] for i in range(min(len(d), n or len(d)))]) for d in split]
    # a domain the classifier has a class of is judged by it (Fashion-MNIST's classes); another
    # (a folder named cat) has no target class: the metrics that need one say so, the rest score
    known = list(getattr(scorer.classifier, "classes", None) or [])
    classes = [known.index(name) if name in known else None for name in names]
    translators = {e: Translator.from_networks(recipe, nets, e, device) for e in entries}
    reference = next((e for e in entries if translators[e].reference_value), None)
    g = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    metrics, skipped = {}, {}
    for entry, tr in translators.items():
        per_domain = []
        for k, name in enumerate(names):
            others = [j for j in range(len(names)) if j != k]
            source = torch.cat([tests[j] for j in others])
            refs = [tests[k][torch.randint(len(tests[k]), (len(source),), generator=g)] if tr.reference_value else None
                    for _ in range(STYLES)]
            fakes = [_translate(tr, source, k, seed, refs[seed], ev.batch_size) for seed in range(STYLES)]
            rec = None
            if reference is not None:  # back into each source's own domain, in its own style
                back, at = [], 0
                for j in others:
                    size = len(tests[j])
                    back.append(_translate(translators[reference], fakes[0][at:at + size], j, 0,
                                           source[at:at + size], ev.batch_size))
                    at += size
                rec = torch.cat(back)
            ts = TranslationSet(f"{entry}/{name}", source=source, fake=fakes[0], target=tests[k], reconstructed=rec,
                                target_class=classes[k], judge=judge)
            values, why = scorer.score(ts)
            if judge.feature_net is not None:
                values["style_diversity"] = _distance_ratio(judge, fakes[0], fakes[1], tests[k])
            metrics[ts.direction] = values
            if why:
                skipped[ts.direction] = why
            per_domain.append(values)
        keys = [key for key in per_domain[0] if all(key in v for v in per_domain)]
        metrics[f"{entry}/mean"] = {key: sum(v[key] for v in per_domain) / len(per_domain) for key in keys}
    better = {**scorer.better, "style_diversity": "max"}
    protocol = {"domains": names, "split": ev.split, "images": {name: len(t) for name, t in zip(names, tests)},
                "styles": "seeds 0 and 1 (latent); two references drawn with seed 0 (reference)",
                "sources": "the test images of every other domain", **scorer.protocol,
                "seconds": round(time.perf_counter() - start, 2)}
    return EvalResult(metrics, skipped, better, protocol)
