"""The benchmark's plot: each score against the epoch, one line per recipe (the mean over seeds)
in a band from the lowest to the highest seed, so the best-vs-last gap and the seed spread show
at a glance."""

from __future__ import annotations

from pathlib import Path

from unpaired.evaluation.metrics import ARROWS

__all__ = ["line_styles", "plot_curves"]

#: (epoch, {"<direction>/<key>": value}) of one evaluation.
Evaluation = tuple[int, dict[str, float]]


def _mean_band(curves: list[list[Evaluation]], column: str) -> tuple[list[int], list[float], list[float], list[float]]:
    """Epochs where every seed has the score, and the mean, lowest and highest over seeds there."""
    by_seed = [{epoch: scores[column] for epoch, scores in curve if column in scores} for curve in curves]
    epochs = sorted(set.intersection(*(set(s) for s in by_seed))) if by_seed else []
    values = [[s[e] for s in by_seed] for e in epochs]
    return epochs, [sum(v) / len(v) for v in values], [min(v) for v in values], [max(v) for v in values]


def line_styles(recipes: list[str]) -> dict[str, tuple[str, str]]:
    """recipe -> (matplotlib colour, dash), the same in every panel and distinct for up to 30
    recipes: matplotlib's 10 cycle colours, solid, then dashed, then dotted."""
    return {recipe: (f"C{i % 10}", ("-", "--", ":")[i // 10 % 3]) for i, recipe in enumerate(recipes)}


def plot_curves(path: Path, columns: list[str], curves: dict[str, list[list[Evaluation]]],
                better: dict[str, str]) -> Path | None:
    """Write ``path`` (PNG): a panel per column, a line per recipe with its seed band.

    Args:
        columns: ``"<direction>/<key>"`` scores, one panel each.
        curves: recipe -> one list of evaluations per trained seed.
        better: key -> "max" or "min" (the panel title's arrow).

    Returns:
        ``path``, or None when no recipe has two evaluations of any column (nothing to draw).
    """
    from matplotlib.figure import Figure  # lazily: only plots need matplotlib

    drawn = {c: {r: _mean_band(seeds, c) for r, seeds in curves.items() if seeds} for c in columns}
    drawn = {c: {r: line for r, line in lines.items() if len(line[0]) >= 2} for c, lines in drawn.items()}
    drawn = {c: lines for c, lines in drawn.items() if lines}
    if not drawn:
        return None
    ncols = min(3, len(drawn))
    nrows = -(-len(drawn) // ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows), dpi=100, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    styles = line_styles(list(curves))
    for ax, (column, lines) in zip(axes, drawn.items()):
        for recipe, (epochs, mean, low, high) in lines.items():
            colour, dash = styles[recipe]
            ax.plot(epochs, mean, marker="o", markersize=3, linewidth=1.4, label=recipe, color=colour, linestyle=dash)
            if any(h > lo for lo, h in zip(low, high)):
                ax.fill_between(epochs, low, high, color=colour, alpha=0.2, linewidth=0)
        ax.set_title(f"{column} {ARROWS.get(better.get(column.split('/', 1)[-1]), '')}".strip(), fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
    for ax in axes[:len(drawn)]:  # each panel names its own lines: a direction may lack some recipes
        ax.legend(fontsize=7, frameon=False)
    for ax in axes[len(drawn):]:
        ax.set_visible(False)
    fig.savefig(path, format="png")
    return path
