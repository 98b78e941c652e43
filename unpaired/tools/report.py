"""An HTML report of a run directory: one self-contained file (plots and sample grids embedded as
data URIs, nothing fetched) with the run's time and hardware, loss, learning-rate and evaluation
curves, sample grids over time, the final metrics and the resolved recipe.

It reads what the trainer writes::

    recipe.yaml                         the resolved recipe (required)
    log.jsonl                           one record a line (required; may still be empty)
    run.json                            start, end, wall time, hardware, status (optional)
    samples/iter_XXXXXXXX.png           sample grids (optional; step_XXXXXXXX.png before format unpaired/2)
    eval/<checkpoint>/metrics.json      final evaluations; the newest by iteration is shown (optional)
    checkpoints/best/eval.json          the best checkpoint's evaluation (optional)
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
import re
from datetime import datetime
from pathlib import Path

import PIL.Image
from omegaconf import OmegaConf

from unpaired.errors import CheckpointError
from unpaired.evaluation.metrics import ARROWS
from unpaired.runs import checkpoint
from unpaired.runs.checkpoint import atomic_write_text
from unpaired.runs.rundir import BEST_FILE, RunDir, read_record

__all__ = ["write_report"]

#: At most this many sample grids, evenly spread over the run, the first and last included.
MAX_GRIDS = 12
#: Sample grids narrower than this are enlarged by a whole factor (crisp pixels).
GRID_TARGET_WIDTH = 520
#: Resolution of the embedded plots.
PLOT_DPI = 90

_MISSING = "\u2014"
_SAMPLE_NAME = re.compile(r"(?:iter|step)_(\d+)\.png")

_CSS = """
body { margin: 0; background: #f6f7f9; color: #1d2330;
       font: 15px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 28px 48px; background: #fff;
       min-height: 100vh; box-sizing: border-box; }
h1 { margin: 0 0 2px; font-size: 26px; }
h2 { margin: 36px 0 10px; padding-bottom: 4px; border-bottom: 1px solid #e3e6eb; font-size: 19px; }
h3 { margin: 18px 0 6px; font-size: 16px; }
code, pre { font: 13px/1.45 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.muted { color: #667085; }
.empty { color: #667085; font-style: italic; }
nav a { margin-right: 14px; color: #2958c9; text-decoration: none; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 3px 18px; margin: 14px 0; }
dl.facts dt { color: #667085; }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
img.plot { display: block; max-width: 100%; height: auto; margin: 8px 0; }
.grids { display: flex; flex-wrap: wrap; gap: 18px; }
.grids figure { margin: 0; max-width: 100%; }
.grid { display: flex; }
.rows { display: grid; align-items: center; padding-right: 6px; font-size: 12px; color: #667085;
        text-align: right; }
.grids img { display: block; min-width: 0; max-width: 100%; height: auto; image-rendering: pixelated;
             border: 1px solid #e3e6eb; }
figcaption { font-size: 13px; color: #667085; margin-top: 2px; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { padding: 4px 14px; border-bottom: 1px solid #e3e6eb; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f0f2f5; }
td.num { font-variant-numeric: tabular-nums; }
pre { background: #f6f7f9; border: 1px solid #e3e6eb; padding: 12px; overflow-x: auto; }
"""

_SCRIPT = """
window.addEventListener("load", function () {
  var imgs = Array.prototype.slice.call(document.images);
  var loaded = imgs.filter(function (img) { return img.complete && img.naturalWidth > 0; });
  document.body.dataset.imagesTotal = imgs.length;
  document.body.dataset.imagesLoaded = loaded.length;
});
"""


def write_report(run_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the HTML report of a run directory and return its path.

    Args:
        run_dir: a run directory written by the trainer (holds ``recipe.yaml`` and ``log.jsonl``).
        out: where to write the report; ``<run_dir>/report.html`` by default. Written atomically
            (a temporary file in the same folder, then renamed), so a reader never sees half a file.

    Sections with nothing to show yet (no sample grids, no records, no evaluation) say so.

    Raises:
        CheckpointError: ``run_dir`` is not a run directory, or one of its files is unreadable.
    """
    run = Path(run_dir)
    files = RunDir(run)
    recipe_text, log = _required(run, files.recipe_file), _required(run, files.log)
    recipe = _parse_recipe(files.recipe_file, recipe_text)
    records = _read_log(files.log, log)
    run_info, best = _optional_json(files.info), _optional_json(files.best / BEST_FILE)
    final = _newest_eval(run)
    better = (final or best or {}).get("better", {})
    name = str(recipe.get("name") or run.name)

    body = [
        f"<h1>{_esc(name)} <span class='muted'>run report</span></h1>",
        f"<div class='muted'><code>{_esc(run.resolve())}</code></div>",
        "<nav><a href='#training'>training</a><a href='#samples'>samples</a>"
        "<a href='#evaluation'>evaluation</a><a href='#recipe'>recipe</a></nav>",
        _facts(_summary(run_info, records)),
        "<h2 id='training'>Training</h2>",
        _training_section(records, better),
        "<h2 id='samples'>Sample grids</h2>",
        _samples_section(files.samples, recipe.get("samples") or None),
        "<h2 id='evaluation'>Final evaluation</h2>",
        _evaluation_section(final, best),
        "<h2 id='recipe'>Resolved recipe</h2>",
        f"<pre>{_esc(recipe_text)}</pre>",
    ]
    page = (
        "<!DOCTYPE html>\n<html lang='en'>\n<head>\n<meta charset='utf-8'>\n"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>\n"
        f"<title>{_esc(name)} \u2014 run report</title>\n<style>{_CSS}</style>\n"
        f"<script>{_SCRIPT}</script>\n</head>\n<body>\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )
    path = Path(out) if out is not None else files.report
    path.parent.mkdir(parents=True, exist_ok=True)
    # Non-ASCII characters as character references: the file reads the same under any locale.
    atomic_write_text(path, page.encode("ascii", "xmlcharrefreplace").decode("ascii"))
    return path


# -- reading the run directory ---------------------------------------------------------------------
def _required(run: Path, path: Path) -> str:
    if not run.is_dir():
        raise CheckpointError(f"{run}: no such run directory. Give the out_dir of a training run "
                              "(the folder holding recipe.yaml and log.jsonl).", key=str(run), code="no-run")
    if not path.is_file():
        raise CheckpointError(f"{path}: missing, so {run} is not a run directory (or training has not "
                              "logged anything yet). Give the out_dir of a training run.", key=str(path), code="no-run")
    return path.read_text(encoding="utf-8")


def _parse_recipe(path: Path, text: str) -> dict:
    try:
        recipe = OmegaConf.to_container(OmegaConf.create(text))
    except Exception as err:  # OmegaConf raises several YAML and config error types
        raise CheckpointError(f"{path}: not a readable recipe ({err}). "
                              "Restore it from a checkpoint's metadata.", key=str(path), code="bad-recipe") from err
    if not isinstance(recipe, dict):
        raise CheckpointError(f"{path}: not a recipe (a YAML mapping). Restore it from a checkpoint's metadata.",
                              key=str(path), code="bad-recipe")
    return recipe


def _read_log(path: Path, text: str) -> list[dict]:
    """The records of ``log.jsonl`` (:func:`unpaired.runs.rundir.read_record`: older runs' ``step`` as
    ``iteration``); a cut-off last line (a killed run) is left out."""
    lines = [line for line in text.splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(read_record(line))
        except (ValueError, KeyError, TypeError) as err:
            if i == len(lines) - 1:
                break
            raise CheckpointError(f"{path} line {i + 1}: not JSON ({err}). Remove or repair the line.",
                                  key=str(path), code="bad-log") from err
    return records


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: unreadable ({err}). Delete it or write it again.",
                              key=str(path), code="unreadable") from err


def _optional_json(path: Path) -> dict | None:
    return _read_json(path) if path.is_file() else None


def _newest_eval(run: Path) -> dict | None:
    """The newest (by iteration) ``eval/iter_*/metrics.json`` (the run's own settings; evaluations
    with overrides or of other checkpoints live in other folders), with its ``checkpoint``,
    ``iteration`` and ``epoch`` at the top level whether the file has them there or in its protocol."""
    evals = []
    for path in sorted((run / "eval").glob("*/metrics.json")):
        if not checkpoint.ITERATION_NAME.fullmatch(path.parent.name):
            continue
        evaluation = _read_json(path)
        about = {**evaluation.get("protocol", {}), **evaluation}
        evals.append({**evaluation, "checkpoint": about.get("checkpoint", path.parent.name),
                      "iteration": about.get("iteration", about.get("step")), "epoch": about.get("epoch")})
    return max(evals, key=lambda e: e["iteration"] if isinstance(e["iteration"], int) else -1, default=None)


# -- the summary -------------------------------------------------------------------------------------
def _summary(run_info: dict | None, records: list[dict]) -> list[tuple[str, str]]:
    """(label, HTML) pairs: status, times, progress and hardware."""
    logged = [r for r in records if "iteration" in r]
    times = [r["time"] for r in records if isinstance(r.get("time"), (int, float))]
    facts = []
    if run_info is None:
        facts.append(("Status", "unknown <span class='muted'>(no run.json)</span>"))
        if times:
            facts.append(("Started", _esc(_clock(min(times))) + " <span class='muted'>(first log record)</span>"))
            facts.append(("Run time", f"\u2248 {_duration(max(times) - min(times))} "
                                      "<span class='muted'>(first to last log record)</span>"))
    else:
        facts.append(("Status", _esc(run_info.get("status", "unknown"))))
        facts.append(("Started", _esc(run_info.get("started") or "\u2014")))
        facts.append(("Finished", _esc(run_info.get("finished") or "not finished")))
        if isinstance(run_info.get("wall_s"), (int, float)):
            facts.append(("Run time", _duration(run_info["wall_s"])))
        if run_info.get("sessions", 1) > 1:
            facts.append(("Sessions", f"{run_info['sessions']} (resumed {run_info['sessions'] - 1} time(s))"))
    if logged:
        last = logged[-1]
        facts.append(("Progress", f"iteration {last['iteration']:,}, epoch {last.get('epoch', '?')}"))
    hw = (run_info or {}).get("hardware") or {}
    if hw:
        cpu = f"{hw.get('cpu', '?')} ({hw['cores']} cores)" if hw.get("cores") else hw.get("cpu", "?")
        facts += [("Device", _esc(f"{hw.get('device', '?')}, {hw.get('precision', '?')} precision")),
                  ("GPU", _esc(hw.get("gpu") or "none")), ("CPU", _esc(cpu)), ("PyTorch", _esc(hw.get("torch", "?")))]
    facts.append(("Report written", _clock(datetime.now().timestamp())))
    return facts


def _facts(pairs: list[tuple[str, str]]) -> str:
    return "<dl class='facts'>" + "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in pairs) + "</dl>"


def _clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    s = round(seconds)
    h, m = s // 3600, s % 3600 // 60
    return f"{h} h {m:02d} min" if h else f"{m} min {s % 60:02d} s" if m else f"{seconds:.1f} s"


# -- curves ------------------------------------------------------------------------------------------
def _series(records: list[dict], key: str) -> tuple[list[int], list[float]]:
    """(iterations, values) of one key; an iteration logged twice (a resumed run) keeps its later value."""
    by_iteration = {r["iteration"]: r[key] for r in records if key in r and "iteration" in r}
    iterations = sorted(by_iteration)
    return iterations, [float(by_iteration[i]) for i in iterations]


def _training_section(records: list[dict], better: dict) -> str:
    keys = sorted({k for r in records for k in r if "/" in k})
    loss_keys = [k for k in keys if not k.startswith(("lr/", "eval/"))]
    lr_keys = [k for k in keys if k.startswith("lr/")]
    eval_keys = [k for k in keys if k.startswith("eval/")]
    if not loss_keys and not eval_keys:
        return "<p class='empty'>No log records yet.</p>"
    parts = []
    if loss_keys:
        groups = _group(loss_keys, lambda k: k.split("/", 1))
        parts += ["<h3>Losses</h3>", _plot(records, groups, "loss", ncols=3)]
    if lr_keys:
        lines = {"learning rate": [(k[3:], k) for k in lr_keys]}
        parts += ["<h3>Learning rates</h3>", _plot(records, lines, "lr", ncols=1)]
    if eval_keys:
        groups = _group(eval_keys, _eval_parts)
        # the rankable metrics first, in the order the metrics declare them; the rest after
        groups = dict(sorted(groups.items(), key=lambda kv: list(better).index(kv[0]) if kv[0] in better else len(better)))
        titled = {f"{m} {ARROWS.get(better.get(m), '')}".strip(): lines for m, lines in groups.items()}
        parts += ["<h3>Evaluation during training</h3>", _plot(records, titled, "value", ncols=4)]
    return "\n".join(parts)


def _eval_parts(key: str) -> tuple[str, str]:
    """``eval/AtoB/fid`` -> ("fid", "AtoB"); ``eval/fid`` -> ("fid", "")."""
    parts = key.split("/")
    return ("/".join(parts[2:]), parts[1]) if len(parts) > 2 else (parts[1], "")


def _group(keys: list[str], split) -> dict[str, list[tuple[str, str]]]:
    """``{title: [(line label, key), ...]}`` with ``split(key) -> (title, label)``."""
    groups: dict[str, list[tuple[str, str]]] = {}
    for key in keys:
        title, label = split(key)
        groups.setdefault(title, []).append((label, key))
    return groups


def _plot(records: list[dict], groups: dict[str, list[tuple[str, str]]], ylabel: str, ncols: int) -> str:
    """One subplot per group, one line per key, as an embedded PNG."""
    from matplotlib.figure import Figure  # lazily: only reports need matplotlib
    from matplotlib.ticker import MaxNLocator

    ncols = min(ncols, len(groups))
    nrows = math.ceil(len(groups) / ncols)
    width = 11.4 if ncols > 1 else 8
    fig = Figure(figsize=(width, nrows * (3.1 if ncols < 4 else 2.4)), dpi=PLOT_DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (title, lines) in zip(axes, groups.items()):
        xs = set()
        for label, key in lines:
            steps, values = _series(records, key)
            xs.update(steps)
            ax.plot(steps, values, label=label or None, linewidth=1.4, marker="o" if len(steps) < 12 else None,
                    markersize=3)
        ax.set_title(title, fontsize=11)
        ax.set_xlabel("iteration", fontsize=9)
        if len(xs) == 1:  # one point: one tick (a locator would invent fractional iterations around it)
            ax.set_xticks(sorted(xs))
        else:
            ax.xaxis.set_major_locator(MaxNLocator(nbins=4 if ncols >= 4 else "auto", integer=True,
                                                   steps=[1, 2, 2.5, 5, 10]))
        ax.set_ylabel(ylabel, fontsize=9)
        ax.tick_params(labelsize=8)
        ax.grid(alpha=0.3)
        if any(label for label, _ in lines):
            ax.legend(fontsize=8, frameon=False)
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return f"<img class='plot' alt='{_esc(ylabel)} curves' src='{_data_uri(buf.getvalue())}'>"


# -- sample grids ------------------------------------------------------------------------------------
def _samples_section(folder: Path, rows: list | None) -> str:
    """The grids (at most ``MAX_GRIDS``), each labelled with its iteration and, when the recipe
    names them, its rows."""
    grids = sorted((int(m.group(1)), p) for p in folder.glob("*.png") if (m := _SAMPLE_NAME.fullmatch(p.name)))
    if not grids:
        return "<p class='empty'>No sample grids yet.</p>"
    shown = [grids[i] for i in _spread(len(grids), MAX_GRIDS)]
    count = f"{len(shown)} of {len(grids)} grids" if len(shown) < len(grids) else f"{len(grids)} grid(s)"
    labels = (f"<div class='rows' style='grid-template-rows: repeat({len(rows)}, 1fr)'>"
              + "".join(f"<span>{_esc(r)}</span>" for r in rows) + "</div>") if rows else ""
    figures = []
    for step, path in shown:
        data = path.read_bytes()
        size = _image_size(data)
        width = f" width='{size[0] * max(1, min(4, GRID_TARGET_WIDTH // size[0]))}'" if size else ""
        figures.append(f"<figure><div class='grid'>{labels}<img alt='samples at iteration {step}'{width} "
                       f"src='{_data_uri(data)}'></div><figcaption>iteration {step:,}</figcaption></figure>")
    return (f"<p class='muted'>{count}; one row per image kind, one column per test image.</p>\n"
            "<div class='grids'>" + "".join(figures) + "</div>")


def _spread(n: int, k: int) -> list[int]:
    """At most ``k`` indices of ``range(n)``, evenly spaced, the first and last included."""
    if n <= k:
        return list(range(n))
    return sorted({round(i * (n - 1) / (k - 1)) for i in range(k)})


def _image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) of an image file's bytes (Pillow reads the header only), or None."""
    try:
        with PIL.Image.open(io.BytesIO(data)) as image:
            return image.size
    except PIL.UnidentifiedImageError:
        return None


# -- final evaluation --------------------------------------------------------------------------------
def _evaluation_section(final: dict | None, best: dict | None) -> str:
    """The best checkpoint's line and the newest final evaluation's tables (the best checkpoint's
    when there is no final evaluation)."""
    if final is None and best is None:
        return "<p class='empty'>No final evaluation yet (no eval/*/metrics.json).</p>"
    parts = [] if best is None else [_best_line(best)]
    shown = final if final is not None else {**best, "checkpoint": "checkpoints/best"}
    iteration, epoch = shown.get("iteration", shown.get("step")), shown.get("epoch")
    parts.append(f"<p>Checkpoint <code>{_esc(shown['checkpoint'])}</code>, iteration "
                 f"{_esc('?' if iteration is None else iteration)}, epoch {_esc('?' if epoch is None else epoch)}.</p>")
    parts.append(_metrics_table(shown.get("metrics", {}), shown.get("better", {})))
    skipped = [(d, m, why) for d, ms in shown.get("skipped", {}).items() for m, why in ms.items()]
    if skipped:
        parts.append("<h3>Skipped</h3><ul>" + "".join(
            f"<li><code>{_esc(d)}/{_esc(m)}</code>: {_esc(why)}</li>" for d, m, why in skipped) + "</ul>")
    if shown.get("protocol"):
        parts.append("<h3>Protocol</h3>" + _facts(
            [(_esc(k), f"<code>{_esc(_compact(v))}</code>") for k, v in shown["protocol"].items()]))
    return "\n".join(parts)


def _best_line(best: dict) -> str:
    """``checkpoints/best/eval.json``: the metric that chose the checkpoint and its value (a key
    without a direction is the mean over the directions that have it)."""
    metric = str(best.get("metric", "?"))
    arrow = ARROWS.get(best.get("better", {}).get(metric.rpartition("/")[2]), "")
    value = ""
    if "value" in best:
        value = f" = {_fmt(best['value'])}" + ("" if "/" in metric else " (mean over directions)")
    return (f"<p><strong>Best checkpoint:</strong> <code>checkpoints/best</code> (iteration "
            f"{_esc(best.get('iteration', best.get('step', '?')))}, epoch {_esc(best.get('epoch', '?'))}), chosen by "
            f"<code>{_esc(metric)}</code> {arrow}{value}.</p>")


def _metrics_table(metrics: dict, better: dict) -> str:
    if not metrics:
        return "<p class='empty'>No metrics were computed.</p>"
    directions = list(metrics)
    names = sorted({m for values in metrics.values() for m in values})
    head = "".join(f"<th>{_esc(d)}</th>" for d in directions)
    rows = []
    for m in names:
        arrow = ARROWS.get(better.get(m), "")
        cells = "".join(f"<td class='num'>{_fmt(metrics[d][m]) if m in metrics[d] else _MISSING}</td>"
                        for d in directions)
        rows.append(f"<tr><td><code>{_esc(m)}</code> {arrow}</td>{cells}</tr>")
    return f"<table><thead><tr><th>metric</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


# -- formatting ----------------------------------------------------------------------------------------
def _fmt(value) -> str:
    """Numbers to 4 significant digits; anything else as text."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return _esc(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:.4g}"


def _compact(value) -> str:
    return value if isinstance(value, str) else json.dumps(value, separators=(", ", ": "))


def _esc(value) -> str:
    return html.escape(str(value), quote=True)


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")
