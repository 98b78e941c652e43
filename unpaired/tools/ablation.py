"""Ablations: variants of one recipe trained with the same seed, data and budget, each evaluated,
then one table (Markdown + JSON, a row per variant) and one figure (a row per variant, the same
test inputs in both directions, as Figure 7 of Zhu et al., ICCV 2017).

A variant is ``full`` (the base recipe itself) or a recipe file whose own keys are applied to the
base: ``ablations/gan-alone`` deletes the cycle terms of whatever recipe it is applied to, so the
paper's ablation runs on any task. Each variant trains in ``<out>/<variant>/``; running the same
command again skips the variants that finished and resumes one that was interrupted.
"""

from __future__ import annotations

import json
import signal
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torchvision.transforms.v2.functional import to_pil_image
from torchvision.utils import make_grid

from unpaired.runs import checkpoint
from unpaired.runs.checkpoint import atomic_write_text
from unpaired.runs.rundir import RunDir
from unpaired.errors import RecipeError
from unpaired.domains import DIRECTION
from unpaired.evaluation.result import EvalResult, mean_std
from unpaired.evaluation.entry import evaluate_run
from unpaired.evaluation.evaluator import require_metrics
from unpaired.inference.translator import Translator
from unpaired.evaluation.metrics import ARROWS
from unpaired.recipe.load import _read, find_recipe, load_recipe, plugin_args
from unpaired.plugin.registry import Registry, closest, default_registry
from unpaired.loop.trainer import Trainer

__all__ = ["AblationResult", "PAPER_VARIANTS", "resolve_variant", "run_ablation", "variant_recipe"]

#: The CycleGAN paper's loss ablation (section 5.1.4, Tables 4-5, Figure 7).
PAPER_VARIANTS = ("full", "ablations/cycle-alone", "ablations/gan-alone", "ablations/gan-forward-cycle",
                  "ablations/gan-backward-cycle")


def variant_name(variant: str) -> str:
    """``ablations/gan-alone`` -> ``gan-alone`` (the run folder and the table row)."""
    return Path(variant).stem if variant != "full" else "full"


def resolve_variant(variant: str) -> str:
    """``variant`` itself when it is ``full`` or names a recipe file or built-in recipe; a paper
    variant's bare name gives its built-in recipe (``gan-alone`` -> ``ablations/gan-alone``).

    Raises:
        RecipeError: none of these, with the paper's variants listed.
    """
    if variant == "full":
        return variant
    try:
        find_recipe(variant)
        return variant
    except RecipeError:
        paper = {variant_name(v): v for v in PAPER_VARIANTS}
        if variant in paper:
            return paper[variant]
        raise RecipeError(f"variant '{variant}': no such recipe file or built-in recipe.{closest(variant, paper)} "
                          f"The paper's variants: {', '.join(paper)}.", key=variant, code="no-recipe") from None


def variant_recipe(base: str, variant: str, overrides=()) -> DictConfig:
    """The base recipe with ``overrides`` (the shared budget), then a variant's own keys applied
    (its ``base:`` ignored): a variant that deletes a network also drops what the overrides set on it.

    Raises:
        RecipeError: unknown base or variant recipe, or a variant that does not fit the base.
    """
    recipe = load_recipe(base, overrides)
    variant = resolve_variant(variant)
    if variant == "full":
        return recipe
    path = find_recipe(variant).resolve()
    patch = _read(path)
    patch.pop("base", None)
    patch.name = f"{recipe.name}-{variant_name(variant)}"
    try:
        return load_recipe(OmegaConf.merge(OmegaConf.to_container(recipe), patch), base_dir=path.parent)
    except RecipeError as err:
        raise RecipeError(f"variant {variant} applied to {base}: {err}", key=variant, code="does-not-fit") from err


@dataclass
class AblationResult:
    """What :func:`run_ablation` returns: the per-variant evaluations (None for a variant not
    reached because training was interrupted), the table and figure paths, and the signal that
    interrupted it (None when every variant finished)."""

    results: dict[str, EvalResult | None]
    table: Path
    figure: Path | None
    interrupted: int | None = None


def run_status(run: Path) -> str | None:
    """A run's ``status`` in its run.json (``completed``, ``interrupted``, ...), None when it has none."""
    try:
        return json.loads(RunDir(run).info.read_text()).get("status")
    except (OSError, ValueError):
        return None


def train_or_resume(recipe: DictConfig, run: Path, registry: Registry | None, label: str) -> int | None:
    """Train ``recipe`` into ``run``, resume it there, or (finished) leave it; returns the signal that
    interrupted it, if any."""
    status = run_status(run)
    if status == "completed":
        print(f"{label}: finished before, not retrained ({run})")
        return None
    if checkpoint.latest(run, missing_ok=True) is not None:
        print(f"{label}: resuming {run} ({status or 'stopped'})")
        trainer = Trainer.resume(run, registry=registry)
    else:
        print(f"{label}: training into {run}")
        trainer = Trainer(recipe, out_dir=run, registry=registry)
    return trainer.fit().interrupted


def final_scores(run: Path, device: str, registry: Registry | None) -> EvalResult:
    """A run's evaluation at its last checkpoint: the one its training wrote there (same
    recipe, same images), else a new one."""
    saved = RunDir(run).evaluation(checkpoint.latest(run).name) / "metrics.json"
    if saved.is_file():
        return EvalResult.read(saved)
    return evaluate_run(run, device=device, registry=registry)[0]


def check_same_folder(out: Path, file: str, config: dict) -> None:
    """An output folder holds one ablation (or benchmark): the same settings when resumed, which
    ``out/file`` records.

    Raises:
        RecipeError: ``out/file`` records other settings (code ``other-ablation``)."""
    path = out / file
    if path.is_file():
        before = OmegaConf.to_container(OmegaConf.load(path))
        if before != config:
            raise RecipeError(f"{out} holds another {path.stem} ({path}: {before}); resume it with the same "
                              "recipes, variants, seeds and overrides, or choose another --out.",
                              key=str(out), code="other-ablation")
    else:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.create(config)))


def run_ablation(base: str, variants=PAPER_VARIANTS, out: str | Path = "runs/ablation", overrides=(),
                 metrics: list[str] | None = None, images: int = 6, registry: Registry | None = None,
                 device: str = "auto", seeds: list[int] | None = None) -> AblationResult:
    """Train and evaluate every variant, then write ``<out>/ablation.{md,json}`` and ``ablation.png``.

    Args:
        base: the task's recipe (file or built-in name); it needs an ``eval`` section.
        variants: ``full``, the paper's variants by name (``gan-alone`` or ``ablations/gan-alone``)
            and/or recipe files whose keys are applied to ``base``.
        out: the ablation's folder; one run directory per variant inside.
        overrides: ``key=value`` for every variant (the shared budget, e.g. ``train.epochs=4``).
        metrics: output keys shown in the Markdown table (default: each of the recipe's eval metrics
            by its first rankable output, e.g. ``target_accuracy``, ``fid``, ``cycle_l1``); the
            JSON has every value.
        images: test inputs per direction in the figure.
        seeds: train every variant once per seed (in ``<out>/<variant>/seed<k>/``); the table
            gives each score's mean ± standard deviation over the seeds and the figure the first
            seed's translations. None: the recipe's seed, one run per variant in ``<out>/<variant>/``.

    Returns:
        The evaluations (with ``seeds``, a list per variant, one per seed), the table and figure
        paths; ``interrupted`` is set when SIGINT/SIGTERM stopped a variant (its checkpoint is
        kept; the same call resumes it).

    Raises:
        RecipeError: a bad variant, a base without eval metrics, ``images`` below 1, a ``metrics``
            key that no metric of the recipe ranks, or ``out`` holding another ablation.
    """
    out = Path(out)
    variants = [resolve_variant(v) for v in variants]
    recipes = {variant_name(v): variant_recipe(base, v, overrides) for v in variants}
    if len(recipes) != len(variants):
        raise RecipeError(f"variants must have distinct names, got {list(variants)}.",
                          key="--variants", code="duplicate")
    require_metrics(next(iter(recipes.values())), str(base))
    if images < 1:
        raise RecipeError(f"--images: the test inputs per direction in the figure, 1 or more; got {images}.",
                          key="--images", code="bad-value")
    keys = table_keys(list(recipes.values()), metrics, registry)  # the table's columns
    config = {"base": str(base), "variants": list(variants), "overrides": list(overrides)}
    if seeds is not None:
        if not seeds or len(set(seeds)) != len(seeds):
            raise RecipeError(f"--seeds: distinct seeds, at least one; got {seeds}.", key="--seeds", code="duplicate")
        config["seeds"] = [int(k) for k in seeds]
    check_same_folder(out, "ablation.yaml", config)
    cells = [(name, k) for name in recipes for k in (seeds if seeds is not None else [None])]
    runs = {(name, k): out / name / f"seed{k}" if k is not None else out / name for name, k in cells}
    scores: dict[tuple, EvalResult | None] = dict.fromkeys(cells)

    def results():
        if seeds is None:
            return {name: scores[name, None] for name in recipes}
        return {name: [scores[name, k] for k in seeds] if all(scores[name, k] for k in seeds) else None
                for name in recipes}

    for i, (name, k) in enumerate(cells, 1):
        label = f"[{i}/{len(cells)}] {name}" + (f" seed {k}" if k is not None else "")
        recipe = recipes[name] if k is None else variant_recipe(base, variants[list(recipes).index(name)],
                                                                [*overrides, f"seed={k}"])
        stopped = train_or_resume(recipe, runs[name, k], registry, label)
        if stopped:
            print(f"{label}: stopped by {signal.Signals(stopped).name}; run the same command again to go on.")
            return AblationResult(results(), _write_table(out, results(), keys, ""), None, stopped)
        scores[name, k] = final_scores(runs[name, k], device, registry)
    first = {name: runs[name, seeds[0] if seeds is not None else None] for name in recipes}
    figure, caption = _write_figure(out, recipes, images, device, first)
    return AblationResult(results(), _write_table(out, results(), keys, caption), figure)


def headline_keys(recipe: DictConfig, registry: Registry | None = None) -> list[str]:
    """One output per eval metric of ``recipe``: its first rankable key (the first of the metric
    plugin's ``better``); a metric that ranks nothing is left out."""
    reg = (registry or default_registry()).for_recipe(recipe)
    keys = []
    for name, spec in recipe.eval.metrics.items():
        metric = reg.create("metric", spec.type or name, f"eval.metrics.{name}", **plugin_args(spec.args))
        better = list(getattr(metric, "better", {}))
        if better:
            keys.append(better[0])
    return keys


def table_keys(recipes: list[DictConfig], metrics: list[str] | None, registry: Registry | None = None) -> list[str]:
    """The output keys a table shows: ``metrics`` when each is ranked by a metric of one of the
    ``recipes`` (a metric plugin's ``better``), else each recipe's :func:`headline_keys`.

    Raises:
        RecipeError: a key that none of the recipes' metrics ranks (code ``unknown-metric``): its
            column would stay empty after all the training.
    """
    if not metrics:
        return list(dict.fromkeys(k for r in recipes for k in headline_keys(r, registry)))
    known: dict[str, None] = {}
    for recipe in recipes:
        reg = (registry or default_registry()).for_recipe(recipe)
        for name, spec in recipe.eval.metrics.items():
            known.update(dict.fromkeys(getattr(reg.create("metric", spec.type or name, f"eval.metrics.{name}",
                                                          **plugin_args(spec.args)), "better", {})))
    for key in metrics:
        if key not in known:
            raise RecipeError(f"--metrics: no metric of the recipe ranks '{key}'.{closest(key, known)} The recipe's "
                              f"metrics rank {', '.join(known)}.", key="--metrics", code="unknown-metric")
    return list(metrics)


def _write_table(out: Path, results: dict[str, EvalResult | list[EvalResult] | None], keys: list[str] | None,
                 caption: str) -> Path:
    """A row per variant; a variant trained with several seeds shows each score's mean ± std."""
    runs = {n: r if isinstance(r, list) else [r] for n, r in results.items() if r is not None}
    done = [r for rs in runs.values() for r in rs]
    better = {k: v for r in done for k, v in r.better.items()}
    directions = list(dict.fromkeys(d for r in done for d in r.metrics))
    keys = keys or list(better)
    columns = [(d, k) for d in directions for k in keys if any(k in r.metrics.get(d, {}) for r in done)]
    heads = [f"{d} {k}" + (f" {ARROWS[better[k]]}" if k in better else "") for d, k in columns] or [""]
    lines = ["| variant | " + " | ".join(heads) + " |", "|---|" + "---:|" * len(heads)]
    for name in results:
        cells = ["(not run yet)"] + [""] * (len(heads) - 1) if name not in runs else [
            mean_std([r.metrics.get(d, {}).get(k) for r in runs[name]]) for d, k in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    seeds = max((len(rs) for rs in runs.values()), default=1)
    note = f"\nMean ± standard deviation over {seeds} seeds.\n" if seeds > 1 else ""
    atomic_write_text(out / "ablation.md", "\n".join(lines) + "\n" + note + (f"\n{caption}\n" if caption else ""))
    payload = {n: None if r is None else [{"metrics": x.metrics, "protocol": x.protocol} for x in r]
               if isinstance(r, list) else {"metrics": r.metrics, "protocol": r.protocol} for n, r in results.items()}
    atomic_write_text(out / "ablation.json", json.dumps({"better": better, "variants": payload}, indent=2) + "\n")
    return out / "ablation.md"


@torch.no_grad()
def _write_figure(out: Path, recipes: dict[str, DictConfig], count: int, device: str,
                  runs: dict[str, Path]) -> tuple[Path, str]:
    """Rows: the inputs, then one row per variant; columns: ``count`` test images of each source
    domain, translated by each variant (AtoB inputs first, then BtoA)."""
    from unpaired.data.build import build_dataset
    from unpaired.recipe.resolved import resolve

    first = resolve(next(iter(recipes.values())), checked=False)
    data = build_dataset(first)
    directions = [d for d in first.inference if DIRECTION.fullmatch(d)]
    domains = {d: data.domain(d[0], first.eval.split) for d in directions}
    count = min(count, *(len(ds) for ds in domains.values()))
    inputs = {d: torch.stack([ds[i][0] for i in range(count)]) for d, ds in domains.items()}
    rows = [torch.cat([inputs[d] for d in directions])]
    heads = [f"{d[0]} \u2192 {d[-1]}" for d in directions]  # A -> B over the AtoB columns
    for name in recipes:
        rows.append(torch.cat([Translator(runs[name], d, device)(inputs[d]) for d in directions]))
    grid = torch.cat([r.expand(-1, 3, -1, -1) if r.shape[1] == 1 else r for r in rows])
    scale = max(1, -(-64 // grid.shape[-1]))
    if scale > 1:
        grid = torch.nn.functional.interpolate(grid, scale_factor=scale, mode="nearest")
    path = out / "ablation.png"
    sheet = make_grid(grid, nrow=len(rows[0]), normalize=True, value_range=(-1, 1), pad_value=1.0)
    _labelled(sheet, ["input", *recipes], rows=len(rows), columns=heads).save(path)
    caption = (f"Figure {path.name}: rows = the test inputs, then {', '.join(recipes)}; columns = "
               + ", then ".join(f"{count} {d} translations" for d in directions) + ".")
    return path, caption


#: Width in pixels of the figure's label column.
LABEL_WIDTH = 150


#: Height in pixels of the figure's heading row (the directions).
HEADING_HEIGHT = 26


def _labelled(sheet: torch.Tensor, labels: list[str], rows: int, columns: list[str]):
    """The grid (3, H, W) in [0, 1] as a PIL image with a white column of row labels on its left and
    a heading over each equal group of columns (one per direction)."""
    from PIL import Image, ImageDraw, ImageFont

    grid = to_pil_image(sheet)
    page = Image.new("RGB", (LABEL_WIDTH + grid.width, HEADING_HEIGHT + grid.height), "white")
    page.paste(grid, (LABEL_WIDTH, HEADING_HEIGHT))
    draw, font = ImageDraw.Draw(page), ImageFont.load_default(size=15)
    row_height = grid.height / rows
    for i, label in enumerate(labels):
        draw.text((LABEL_WIDTH - 8, HEADING_HEIGHT + (i + 0.5) * row_height), label, fill="black", font=font,
                  anchor="rm")
    group = grid.width / max(1, len(columns))
    for i, heading in enumerate(columns):
        draw.text((LABEL_WIDTH + (i + 0.5) * group, HEADING_HEIGHT / 2), heading, fill="black", font=font, anchor="mm")
    return page
