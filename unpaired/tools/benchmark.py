"""Benchmarks: several recipes, each trained with the same overrides (the shared budget) and one
or more seeds, and scored side by side, best and last.

Each (recipe, seed) cell trains in ``<out>/<recipe>/seed<k>/`` and is evaluated every
``train.eval_every`` epochs by its recipe's judge. The table gives, per recipe, the **last**
checkpoint's scores and the **best** score each metric reached at any evaluation (what papers
report), as the mean ± sample standard deviation over seeds, with the epoch at which the recipe's
``eval.best`` key peaked, the training time per epoch and peak memory; for a recipe that keeps an EMA of its
generators (whose weights its evaluations use) also the last checkpoint's trained weights; and the
judge's scores of the test inputs left untranslated, the floor a translation must beat. Under
each table, the protocol (test-set sizes, feature space, preprocessing, which checkpoints) and a
plot of each score against the epoch, a line per recipe with its seed band. Recipes are grouped by
task (their ``eval`` sections): a table per task. Running the same command again skips the finished cells and
resumes an interrupted one; a recipe added to the command trains while the others are kept.
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import signal
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf
from torch import nn

from unpaired.errors import RecipeError
from unpaired.evaluation.entry import evaluate_run
from unpaired.evaluation.evaluator import Evaluator, require_metrics
from unpaired.evaluation.metrics import ARROWS
from unpaired.evaluation.result import EvalResult, mean_std
from unpaired.plugin.registry import Registry
from unpaired.recipe.load import load_recipe
from unpaired.recipe.resolved import resolve
from unpaired.runs import checkpoint
from unpaired.runs.checkpoint import atomic_write_text
from unpaired.runs.rundir import RunDir
from unpaired.tools.ablation import final_scores, headline_keys, run_status, table_keys, train_or_resume
from unpaired.tools.benchmark_plot import plot_curves

__all__ = ["BenchmarkResult", "Cell", "run_benchmark"]


@dataclass
class Cell:
    """One trained (recipe, seed): its last evaluation, the best value of every key over its
    evaluations (``"<direction>/<key>"`` -> value), the epoch of each evaluation's ``eval.best``
    key peak, seconds per epoch (the training steps, and all of the run's wall time) and the peak
    memory of training in MiB (``run.json``'s ``peak_memory``; NaN for a run trained before it was
    recorded)."""

    last: EvalResult
    best: dict[str, float]
    best_epoch: int | None
    step_s_per_epoch: float
    wall_s_per_epoch: float
    peak_mib: float
    trained: EvalResult | None = None  # the last checkpoint's trained weights, where ``last`` is the EMA's
    curve: list[tuple[int, dict[str, float]]] = field(default_factory=list)  # (epoch, scores) per evaluation


@dataclass
class BenchmarkResult:
    """The cells by recipe then seed (None: not trained yet), the table's path, the signal that
    stopped a cell, if one did (the same call resumes it), and the cells whose training raised an
    error (``"<recipe> seed <k>"`` -> the error; the others trained on, the same call retries them)."""

    cells: dict[str, dict[int, Cell | None]]
    table: Path
    interrupted: int | None = None
    failed: dict[str, str] = field(default_factory=dict)


def recipe_label(recipe: str) -> str:
    """``recipes/dclgan-fashion.yaml`` -> ``dclgan-fashion`` (the run folder and the table row)."""
    return Path(recipe).stem if recipe.endswith((".yaml", ".yml")) else recipe


def _evaluations(run: Path) -> list[tuple[int, dict[str, float]]]:
    """(epoch, {"<direction>/<key>": value}) of each evaluation logged during training."""
    found = []
    log = RunDir(run).path / "log.jsonl"
    for line in log.read_text().splitlines() if log.is_file() else ():
        entry = json.loads(line)
        scores = {k[len("eval/"):]: v for k, v in entry.items() if k.startswith("eval/") and isinstance(v, (int, float))}
        if scores:
            found.append((int(entry.get("epoch", 0)), scores))
    return found


def _check_same_benchmark(out: Path, config: dict) -> None:
    """A folder holds one benchmark: the same seeds and overrides when resumed; recipes may be added
    (the finished cells stay, the new recipes train), not dropped.

    Raises:
        RecipeError: ``out/benchmark.yaml`` records other seeds or overrides, or a recipe not asked
            for now (code ``other-ablation``)."""
    path = out / "benchmark.yaml"
    if path.is_file():
        before = OmegaConf.to_container(OmegaConf.load(path))
        same = before.get("seeds") == config["seeds"] and before.get("overrides") == config["overrides"]
        if not same or not set(before.get("recipes", [])) <= set(config["recipes"]):
            raise RecipeError(f"{out} holds another benchmark ({path}: {before}); resume it with the same seeds and "
                              "overrides and at least its recipes, or choose another --out.",
                              key=str(out), code="other-ablation")
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, OmegaConf.to_yaml(OmegaConf.create(config)))


def _matches(key: str, target: str) -> bool:
    """Whether a logged ``<direction>/<key>`` is the recipe's ``eval.best`` (a key, or direction/key)."""
    return key == target or key.endswith("/" + target)


def _cell(run: Path, recipe: DictConfig, device: str, registry: Registry | None) -> Cell:
    last = final_scores(run, device, registry)
    info = json.loads(RunDir(run).info.read_text())
    evals = _evaluations(run) or [(int(info.get("epoch", 0)), last.flat())]
    best: dict[str, float] = {}
    for _, scores in evals:
        for key, value in scores.items():
            how = last.better.get(key.split("/", 1)[-1])
            if how and (key not in best or (value > best[key] if how == "max" else value < best[key])):
                best[key] = value
    target, best_epoch = recipe.eval.best, None
    peaks = [(epoch, [v for k, v in scores.items() if _matches(k, target)]) for epoch, scores in evals] if target else []
    peaks = [(epoch, sum(v) / len(v)) for epoch, v in peaks if v]
    if peaks:
        pick = max if last.better.get(target.split("/", 1)[-1], "max") == "max" else min
        best_epoch = pick(peaks, key=lambda p: p[1])[0]
    epochs = max(1, int(info.get("epoch", 1)))
    return Cell(last, best, best_epoch, info.get("timings", {}).get("training step", math.nan) / epochs,
                info.get("wall_s", math.nan) / epochs, (info.get("peak_memory") or {}).get("mib", math.nan),
                _trained_scores(run, device, registry) if recipe.ema else None, evals)


def _trained_scores(run: Path, device: str, registry: Registry | None) -> EvalResult:
    """The last checkpoint's trained weights (not the EMA) evaluated, once: kept in the run's
    ``eval/<checkpoint>-raw``."""
    saved = RunDir(run).evaluation(f"{checkpoint.latest(run).name}-raw") / "metrics.json"
    if saved.is_file():
        return EvalResult.read(saved)
    return evaluate_run(run, device=device, registry=registry, weights="raw")[0]


def protocol_line(result: EvalResult, eval_every: int | None) -> str:
    """How a table's numbers were made, from its first cell's last evaluation: the test images per
    domain, the feature space and classifier (with their weights' SHA-256), the preprocessing and
    which checkpoints."""
    p = result.protocol
    images = ", ".join(f"{d} {n}" for d, n in (p.get("images") or {}).items())
    judges = [f"{role} {spec['type']}" + (f" (weights sha256 {spec['sha256'][:12]}; {spec.get('preprocess', '')})"
                                          if spec.get("sha256") else "")
              for role, spec in (("features", p.get("features")), ("classifier", p.get("classifier"))) if spec]
    every = f"every {eval_every} epochs and at the end" if eval_every else "at the end"
    return (f"**Protocol**: {images or '?'} test images per domain ('{p.get('split', '?')}' split, "
            f"{'paired' if p.get('paired') else 'unpaired'}); {'; '.join(judges) or 'no learned judge'}; inputs: "
            f"{p.get('transform', '?')}; last = the final checkpoint (iteration {p.get('iteration', '?')}); best = over "
            f"the evaluations {every}; a recipe with an EMA of its generators is scored with the EMA's weights, "
            "its trained weights on a row of their own.")


def untranslated(recipe: DictConfig, device: str, registry: Registry | None = None) -> EvalResult | None:
    """The recipe's judge on the test inputs left as they are (every network the identity): the
    score a translation must beat. None when a direction changes the channel count."""
    resolved = resolve(recipe, registry)
    try:
        return Evaluator(resolved, device)({name: nn.Identity() for name in resolved.networks})
    except (ValueError, RuntimeError):  # e.g. 1-channel inputs where the judge expects 3
        return None


def _task(recipe: DictConfig) -> str:
    """The task a recipe is judged on: its dataset, its classes and its judge (feature space and
    classifier), as one comparable key. Recipes of one task share a table (each its own metrics)."""
    ev = OmegaConf.to_container(recipe.eval, resolve=True)
    data = {k: v for k, v in OmegaConf.to_container(recipe.data.args, resolve=True).items()
            if k in ("class_A", "class_B", "classes", "root", "source") and v is not None}
    return json.dumps([recipe.data.dataset, data, ev.get("classes"), ev.get("features"), ev.get("classifier")],
                      default=str, sort_keys=True)


def _write_tables(out: Path, recipes: dict[str, DictConfig], cells: dict[str, dict[int, Cell | None]],
                  keys: dict[str, list[str]], overrides: list[str], baselines: dict[str, EvalResult | None],
                  failed: dict[str, str]) -> Path:
    lines, payload = [], {}
    tasks: dict[str, list[str]] = {}
    for name, recipe in recipes.items():
        tasks.setdefault(_task(recipe), []).append(name)
    for task_no, members in enumerate(tasks.values(), 1):
        done = [c for n in members for c in cells[n].values() if c is not None]
        inputs = baselines.get(members[0])
        better = {k: v for c in done for k, v in c.last.better.items()}
        directions = list(dict.fromkeys(d for c in done for d in c.last.metrics))
        wanted = list(dict.fromkeys(k for n in members for k in keys[n]))
        columns = [f"{d}/{k}" for d in directions for k in wanted if any(k in c.last.metrics.get(d, {}) for c in done)]
        recipe = recipes[members[0]]
        judges = ", ".join(dict.fromkeys(m for n in members for m in recipes[n].eval.metrics))
        lines += [f"**Task**: {recipe.data.dataset} {json.loads(_task(recipe))[1]}; judged by {judges} on the "
                  f"'{recipe.eval.split}' split; best = the best value of each score over the evaluations during "
                  "training, last = the final checkpoint; mean ± std over seeds; s/epoch = the training steps' "
                  "seconds per epoch; peak MiB = the training's peak memory (the process's resident set on the "
                  "CPU, tensors on a GPU).", ""]
        heads = [f"{c} {ARROWS.get(better.get(c.split('/', 1)[1]), '')}".strip() for c in columns]
        lines += ["| recipe | seeds | checkpoint | " + " | ".join(heads) + " | best epoch | s/epoch | peak MiB |",
                  "|---|---:|---|" + "---:|" * (len(heads) + 3)]
        if inputs is not None:
            cols = [inputs.metrics.get(c.split("/")[0], {}).get(c.split("/")[1]) for c in columns]
            lines.append("| (inputs, untranslated) | | | " + " | ".join(mean_std([v]) for v in cols) + " | | | |")
        for name in members:
            runs = [c for c in cells[name].values() if c is not None]
            if not runs:
                lines.append(f"| {name} | 0 | (not run yet) |" + " |" * (len(heads) + 3))
                continue
            last = [mean_std([c.last.metrics.get(col.split("/")[0], {}).get(col.split("/")[1]) for c in runs])
                    for col in columns]
            best = [mean_std([c.best.get(col) for c in runs]) for col in columns]
            epochs = mean_std([c.best_epoch for c in runs if c.best_epoch is not None])
            speed = mean_std([c.step_s_per_epoch for c in runs])
            peak = mean_std([c.peak_mib for c in runs])
            ema = " (EMA)" if any(c.trained is not None for c in runs) else ""
            lines.append(f"| {name} | {len(runs)} | last{ema} | " + " | ".join(last) + f" | | {speed} | {peak} |")
            if ema:
                trained = [mean_std([c.trained.metrics.get(col.split("/")[0], {}).get(col.split("/")[1])
                                     for c in runs if c.trained is not None]) for col in columns]
                lines.append("| | | last (trained weights) | " + " | ".join(trained) + " | | | |")
            lines.append(f"| | | best{ema} | " + " | ".join(best) + f" | {epochs} | | |")
        if done:
            lines += ["", protocol_line(done[0].last, recipe.train.eval_every)]
            curves = {n: [c.curve for c in cells[n].values() if c is not None] for n in members}
            plot = plot_curves(out / ("benchmark.png" if len(tasks) == 1 else f"benchmark-{task_no}.png"), columns, curves,
                               better)
            if plot:
                lines += ["", f"![each score against the epoch: a line per recipe, the mean over seeds, in a band "
                              f"from the lowest to the highest seed]({plot.name})"]
        lines.append("")
    for name, by_seed in cells.items():
        payload[name] = {str(seed): None if c is None else {
            "last": c.last.metrics, "best": c.best, "best_epoch": c.best_epoch,
            "step_s_per_epoch": c.step_s_per_epoch, "wall_s_per_epoch": c.wall_s_per_epoch,
            "peak_mib": None if math.isnan(c.peak_mib) else c.peak_mib, "curve": c.curve,
            "last_trained": None if c.trained is None else c.trained.metrics,
            "protocol": c.last.protocol} for seed, c in by_seed.items()}
    lines.append(f"Shared overrides: {' '.join(overrides) or '(none)'}.")
    if failed:
        lines += ["", "Failed cells (not in the table; the same command retries them):"]
        lines += [f"- {cell}: {error}" for cell, error in failed.items()]
    atomic_write_text(out / "benchmark.md", "\n".join(lines) + "\n")
    inputs = {n: None if r is None else r.metrics for n, r in baselines.items()}
    atomic_write_text(out / "benchmark.json", json.dumps({"overrides": overrides, "cells": payload,
                                                          "untranslated": inputs, "failed": failed}, indent=2) + "\n")
    return out / "benchmark.md"


def run_benchmark(recipes: list[str], seeds=(0,), out: str | Path = "runs/benchmark", overrides=(),
                  metrics: list[str] | None = None, registry: Registry | None = None,
                  device: str = "auto", jobs: int = 1) -> BenchmarkResult:
    """Train and score every (recipe, seed), then write ``<out>/benchmark.{md,json}``.

    Args:
        recipes: recipe files or built-in names, each with an ``eval`` section.
        seeds: the seeds each recipe trains with (the recipe's ``seed``).
        out: the benchmark's folder: ``<out>/<recipe>/seed<k>/`` per cell.
        overrides: ``key=value`` for every cell: the shared budget, e.g. ``train.epochs=8``.
        metrics: output keys in the table (default: each eval metric's first rankable key).
        jobs: cells trained at once, each in a process of its own with ``cpu_count // jobs`` threads.

    Returns:
        The cells and the table's path; ``interrupted`` is set when SIGINT/SIGTERM stopped a cell
        (its checkpoint is kept; the same call resumes it).

    Raises:
        RecipeError: no recipes or seeds, a recipe twice, a recipe without eval metrics, a
            ``metrics`` key that no recipe's metric ranks, ``out``
            holding another benchmark, jobs below 1, or a ``registry`` with jobs above 1.
    """
    out, overrides, seeds = Path(out), list(overrides), [int(s) for s in seeds]
    if jobs < 1:
        raise RecipeError(f"benchmark: --jobs must be 1 or more, got {jobs}.", key="--jobs", code="bad-value")
    names = [recipe_label(r) for r in recipes]
    if not recipes or not seeds:
        raise RecipeError("benchmark: name at least one recipe and one seed.", key="recipes", code="empty")
    if len(set(names)) != len(names) or len(set(seeds)) != len(seeds):
        raise RecipeError(f"benchmark: recipes and seeds must be distinct, got {names} and {seeds}.",
                          key="recipes", code="duplicate")
    loaded = {n: load_recipe(r, overrides) for n, r in zip(names, recipes)}
    for name, recipe in loaded.items():
        require_metrics(recipe, name)
    if metrics:  # a key no recipe's metric ranks would leave an empty column after all the training
        table_keys(list(loaded.values()), metrics, registry)
    _check_same_benchmark(out, {"recipes": list(recipes), "seeds": seeds, "overrides": overrides})
    keys = {n: metrics or headline_keys(r, registry) for n, r in loaded.items()}
    cells: dict[str, dict[int, Cell | None]] = {n: dict.fromkeys(seeds) for n in names}
    firsts = {}
    for name, recipe in loaded.items():
        firsts.setdefault(_task(recipe), name)
    baselines = {name: untranslated(loaded[name], device, registry) for name in firsts.values()}
    todo = [(name, source, seed) for name, source in zip(names, recipes) for seed in seeds]
    train = _train_side_by_side if jobs > 1 else _train_in_turn
    failed: dict[str, str] = {}
    stopped = train(todo, out, overrides, registry, jobs, failed)
    for name, _, seed in todo:
        if run_status(out / name / f"seed{seed}") == "completed":
            cells[name][seed] = _cell(out / name / f"seed{seed}", loaded[name], device, registry)
    if stopped:
        print(f"stopped by {signal.Signals(stopped).name}; run the same command again to go on.")
    return BenchmarkResult(cells, _write_tables(out, loaded, cells, keys, overrides, baselines, failed), stopped, failed)


def _failure(failed: dict[str, str], name: str, seed: int, run: Path, err: Exception) -> None:
    """Record a cell whose training raised, and say so: the benchmark trains the other cells on."""
    failed[f"{name} seed {seed}"] = f"{type(err).__name__}: {err}"
    print(f"{name} seed {seed} failed ({type(err).__name__}: {err}); its run folder {run} keeps its log and last "
          "checkpoint, and the same command retries it. The other cells go on.", file=sys.stderr)


def _train_in_turn(todo: list, out: Path, overrides: list, registry: Registry | None, jobs: int,
                   failed: dict[str, str]) -> int | None:
    """Train the cells one after another in this process; the signal that stopped one, if any. A
    cell that raises goes into ``failed`` and the next one trains."""
    for i, (name, source, seed) in enumerate(todo, 1):
        run = out / name / f"seed{seed}"
        try:
            stopped = _train_cell(source, overrides, seed, run, f"[{i}/{len(todo)}] {name} seed {seed}", registry)
        except Exception as err:  # noqa: BLE001 - one cell's error (a recipe, a plugin) must not cost the others
            _failure(failed, name, seed, run, err)
            continue
        if stopped:
            return stopped
    return None


#: In a --jobs worker: the event the main process sets on Ctrl-C. A worker whose cell stopped
#: is handed the next queued cell at once; this keeps it from training one after the stop.
_STOP = None


def _init_worker(stop) -> None:
    global _STOP
    _STOP = stop


def _train_cell(source: str, overrides: list, seed: int, run: Path, label: str, registry: Registry | None = None,
                threads: int | None = None) -> int | None:
    """One cell, trained, resumed or left as it is (finished); in a process of its own with ``threads``.
    Returns the signal that stopped it (SIGINT, untouched, when the benchmark was stopped before it began)."""
    if _STOP is not None and _STOP.is_set():
        return signal.SIGINT
    if threads:
        torch.set_num_threads(threads)
    return train_or_resume(load_recipe(source, [*overrides, f"seed={seed}"]), Path(run), registry, label)


def _train_side_by_side(todo: list, out: Path, overrides: list, registry: Registry | None, jobs: int,
                        failed: dict[str, str]) -> int | None:
    """Train the cells in ``jobs`` processes at once, each with its share of the CPU cores (torch's
    threads). Ctrl-C (SIGINT to the whole process group) stops every running cell at its next
    iteration with a checkpoint, as it stops one; cells not started yet are left for the next call.
    A cell that raises goes into ``failed``; the others train on.

    Raises:
        RecipeError: a registry object was given (the processes build the installed plugins' own).
    """
    if registry is not None:
        raise RecipeError("benchmark --jobs: cells train in processes of their own, with the installed plugins "
                          "and the recipes' plugins; a registry object cannot go along (use jobs=1).",
                          key="--jobs", code="registry-with-jobs")
    threads = max(1, (os.cpu_count() or 1) // jobs)
    stops: list[int] = []
    context = multiprocessing.get_context("spawn")
    stop = context.Event()

    def on_interrupt(signum, frame):  # the running cells stop themselves; the queued ones must not start
        stops.append(signum)
        stop.set()

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        with ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(stop,)) as pool:
            futures = {pool.submit(_train_cell, source, overrides, seed, out / name / f"seed{seed}",
                                   f"[{i}/{len(todo)}] {name} seed {seed} ({threads} threads)", None, threads):
                       (name, seed) for i, (name, source, seed) in enumerate(todo, 1)}
            for future in as_completed(futures):
                name, seed = futures[future]
                try:
                    stopped = future.result()
                except Exception as err:  # noqa: BLE001 - as in _train_in_turn
                    _failure(failed, name, seed, out / name / f"seed{seed}", err)
                    continue
                if stopped or stops:
                    stops.append(stopped or stops[0])
                    for other in futures:
                        other.cancel()  # not started yet: left for the next call
    finally:
        signal.signal(signal.SIGINT, previous)
    return stops[0] if stops else None
