"""Evaluating a saved run (``unpaired evaluate RUN``) or folders of translations (``--fake/--real``)."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import Tensor
from unpaired.domains import DIRECTION, domain_channels
from unpaired.errors import DataError, RecipeError
from unpaired.evaluation.result import EvalResult
from unpaired.evaluation.evaluator import Evaluator, require_metrics
from unpaired.evaluation.scorer import Scorer
from unpaired.data.io import IMAGE_EXTENSIONS, list_images, read_image, to_float
from unpaired.plugin.registry import Registry, default_registry
from unpaired.evaluation.metrics import TranslationSet
from unpaired.recipe.resolved import resolve
from unpaired.recipe.validate import raise_problems, validate
from unpaired.inference.translator import load_networks
from unpaired.runs.rundir import load
from unpaired.runtime.device import pick_device


def evaluate_run(run: str | Path, overrides=(), device: str = "auto", out: str | Path | None = None,
                 registry: Registry | None = None, weights: str | None = None) -> tuple[EvalResult, Path]:
    """Evaluate a run's latest checkpoint (or a checkpoint directory) as its recipe's eval section says.

    The saved recipe was checked when the run trained; its eval section (with the overrides) is
    checked again, and only the generators' plugins are needed.

    Args:
        run: a run directory or a checkpoint directory (e.g. ``RUN/checkpoints/best``).
        overrides: ``key=value`` changes to the saved recipe, e.g. ``eval.num_images=100``.
        out: folder for metrics.json and metrics.md (default ``RUN/eval/<checkpoint name>``,
            ``-<weights>`` added for a weight set, and a hash of the overrides for overrides).
        weights: a weight set of the checkpoint to evaluate (``"ema"``); ``"raw"``: the trained
            weights; None: the EMA when the recipe's ``ema`` section keeps one, else the trained weights.

    Returns:
        The result and the path of its metrics.json.

    Raises:
        CheckpointError: no checkpoint, no such weight set, or weights that do not fit the recipe.
        RecipeError: no metrics in the recipe, or a bad eval section.
    """
    loaded = load(run, overrides, weights)
    registry = registry or default_registry()
    raise_problems([p for p in validate(loaded.recipe, registry) if p.key.startswith("eval")])
    recipe = resolve(require_metrics(loaded.recipe, f"{loaded.checkpoint}'s recipe"), registry, checked=False)
    device = pick_device(device)
    evaluator = Evaluator(recipe, device)
    nets = load_networks(recipe, recipe.generators(), loaded.weights, loaded.checkpoint, device)
    counters = loaded.counters()
    about = {"checkpoint": str(loaded.checkpoint), "iteration": counters.get("iteration"), "epoch": counters.get("epoch"),
             **({"weights": loaded.weight_set} if loaded.weight_set else {}),
             **({"overrides": list(overrides)} if overrides else {})}
    result = evaluator(nets, about)
    # the recipe's own settings go to eval/<checkpoint> (as training's evaluations: the EMA's weights
    # where the recipe keeps one); other settings never replace them
    own = "ema" if recipe.config.get("ema") is not None else None
    weights_tag = "" if loaded.weight_set == own else f"-{loaded.weight_set or 'raw'}"
    name = loaded.checkpoint.name + weights_tag + (
        f"-{hashlib.sha256(' '.join(overrides).encode()).hexdigest()[:8]}" if overrides else "")
    folder = loaded.run.evaluation(name) if loaded.run else loaded.checkpoint / "eval" / name
    return result, result.write(Path(out) if out else folder)


def _read_folder(folder: Path, channels: int) -> tuple[list[str], Tensor]:
    if not folder.is_dir():
        raise DataError(f"{folder}: not a folder of images.", key=str(folder), code="not-a-folder")
    files = list_images(folder)[0]
    if not files:
        raise DataError(f"{folder}: no images ({', '.join(IMAGE_EXTENSIONS)}).", key=str(folder), code="no-images")
    images = [to_float(read_image(f, channels)) for f in files]
    sizes = {tuple(x.shape) for x in images}
    if len(sizes) > 1:
        raise DataError(f"{folder}: images of different sizes {sorted(sizes)[:3]}; resize them to one size first.",
                        key=str(folder), code="sizes")
    return [str(f.relative_to(folder)) for f in files], torch.stack(images)


def evaluate_folders(fake: str | Path, real: str | Path, recipe: DictConfig, direction: str = "AtoB",
                     paired: bool = False, out: str | Path | None = None,
                     registry: Registry | None = None, device: str = "auto") -> tuple[EvalResult, Path]:
    """Score a folder of translations against a folder of real target-domain images.

    The recipe gives the eval section (metrics, feature extractor, classifier, classes) and the
    target domain's channel count (``direction``'s target: its class is the classifier's target);
    nothing is trained or translated, and the recipe's data section is not read. Metrics that need
    reconstructions or identity outputs are skipped; with ``paired`` each translation is compared
    with the real image of the same relative file name (the paired metrics).

    Returns:
        The result and the path of its metrics.json (``out``, default ``<fake>-eval/``).

    Raises:
        DataError: a folder without images, images of mixed sizes, or (paired) names without a match.
        RecipeError: a bad eval section, or an unknown direction.
    """
    require_metrics(recipe, "the recipe")  # its data section is not used here, so it is not checked
    if not DIRECTION.fullmatch(direction):
        raise RecipeError(f"direction '{direction}' is not AtoB or BtoA.", key="--direction", code="bad-direction")
    scorer = Scorer(resolve(recipe, registry, checked=False), pick_device(device))
    tgt = direction[-1]
    channels = domain_channels(recipe.data.args.get("channels", 3), tgt)
    fake_names, fakes = _read_folder(Path(fake), channels)
    real_names, reals = _read_folder(Path(real), channels)
    truth = None
    if paired:
        index = {n: i for i, n in enumerate(real_names)}
        unmatched = [n for n in fake_names if n not in index]
        if unmatched:
            raise DataError(f"{real}: no real image named {unmatched[0]} (and {len(unmatched) - 1} more) to pair "
                            "with the translations; paired folders need the same relative file names.",
                            key=str(real), code="unpaired-files")
        truth = reals[[index[n] for n in fake_names]]
        if truth.shape != fakes.shape:
            raise DataError(f"{fake} and {real}: paired images differ in size ({tuple(fakes.shape[1:])} and "
                            f"{tuple(truth.shape[1:])}); resize one folder to the other's size first.",
                            key=str(fake), code="pair-sizes")
        if not any("paired" in getattr(m, "needs", ()) for m in scorer.metrics.values()):
            raise RecipeError("--paired: the eval section has no metric that compares pairs; add one, e.g. "
                              "eval.metrics.paired={} (or label_map, edges).", key="--paired", code="no-paired-metric")
    start = time.perf_counter()
    ts = TranslationSet(direction, source=fakes[:0], fake=fakes, target=reals, paired=truth,
                        target_class=scorer.classes.get(tgt), judge=scorer.judge())
    values, skipped = scorer.score(ts)
    protocol = {"fake": str(fake), "real": str(real), "images": {"fake": len(fakes), "real": len(reals)},
                "image_size": {"fake": list(fakes.shape[1:]), "real": list(reals.shape[1:])},
                "transform": "files as they are (uint8 / 127.5 - 1), no resize", "paired": paired,
                **scorer.protocol, "seconds": round(time.perf_counter() - start, 2)}
    result = EvalResult({direction: values}, {direction: skipped} if skipped else {}, scorer.better, protocol)
    return result, result.write(Path(out) if out else Path(f"{Path(fake)}-eval"))
