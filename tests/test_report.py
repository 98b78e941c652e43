"""The HTML run report: its content from a hand-made run directory, its robustness, and that it
really renders (images load, plots show) in headless Chromium."""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from torchvision.io import read_image, write_png

from unpaired import CheckpointError
from unpaired.tools.report import write_report

from conftest import raises

RECIPE = """\
# demo recipe: <A> & <B>
name: demo
samples: [real_A, fake_B, rec_A]
train:
  epochs: 2
  log_every: 2
"""
T0 = 1_700_000_000.0
#: An evaluation as ``eval/<checkpoint>/metrics.json`` holds it (checkpoint, step, epoch in the protocol).
METRICS = {
    "metrics": {"AtoB": {"fid": 12.3456789, "target_accuracy": 0.912345},
                "BtoA": {"fid": 23.4567, "target_accuracy": 0.87654}},
    "better": {"fid": "min", "target_accuracy": "max"},
    "skipped": {"AtoB": {"paired": "needs paired test images"}},
    "protocol": {"step": 40, "epoch": 2, "checkpoint": "/runs/demo/checkpoints/iter_00000040", "images": 100,
                 "features": "fashion_mnist", "sha256": "0123abcd", "device": "cpu"},
}


def sample_patterns() -> list[torch.Tensor]:
    """Three distinct (3, 64, 192) uint8 grids: a checkerboard, a red ramp, green stripes."""
    y, x = torch.meshgrid(torch.arange(64), torch.arange(192), indexing="ij")
    checker = ((x // 8 + y // 8) % 2 * 255).to(torch.uint8).expand(3, -1, -1)
    ramp = torch.stack([x * 255 // 191, torch.zeros_like(x), torch.zeros_like(x)]).to(torch.uint8)
    stripes = torch.stack([torch.zeros_like(x), (x // 6 % 2) * 220, torch.zeros_like(x)]).to(torch.uint8)
    return [checker.contiguous(), ramp, stripes]


def make_run(root: Path) -> Path:
    """A run directory as the trainer leaves it: 20 loss records (falling), 2 eval records,
    3 sample grids, a final evaluation, the best checkpoint's evaluation and run.json."""
    run = root / "run"
    run.mkdir()
    (run / "recipe.yaml").write_text(RECIPE)
    records = []
    for i in range(1, 21):
        step = 2 * i
        records.append({"step": step, "epoch": step // 20, "time": T0 + 3.0 * step,
                        "generators/gan_AB": 1.5 * math.exp(-step / 15) + 0.3,
                        "generators/cycle_A": 4.0 * math.exp(-step / 10) + 0.5,
                        "discriminators/D_A": 0.6 * math.exp(-step / 30) + 0.2,
                        "lr/generators": 2e-4, "lr/discriminators": 2e-4 * (1 - step / 80)})
        if step in (20, 40):
            records.append({"step": step, "epoch": step // 20, "eval/AtoB/fid": 40.0 - step / 2,
                            "eval/BtoA/fid": 45.0 - step / 2, "eval/AtoB/target_accuracy": 0.5 + step / 100,
                            "eval/BtoA/target_accuracy": 0.4 + step / 100})
    (run / "log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "samples").mkdir()
    for step, img in zip((2, 20, 40), sample_patterns()):
        write_png(img, str(run / "samples" / f"iter_{step:08d}.png"))
    for name, evaluation in [("iter_00000040", METRICS),  # an older one, step and checkpoint at the top level
                             ("earlier", {"checkpoint": "iter_00000020", "step": 20, "epoch": 1,
                                          "metrics": {"AtoB": {"fid": 99.0}}, "better": {"fid": "min"}})]:
        (run / "eval" / name).mkdir(parents=True)
        (run / "eval" / name / "metrics.json").write_text(json.dumps(evaluation))
    (run / "checkpoints" / "best").mkdir(parents=True)
    (run / "checkpoints" / "best" / "eval.json").write_text(json.dumps(
        {"metric": "AtoB/fid", "value": 12.3456789, "step": 40, "epoch": 2, **METRICS}))
    (run / "run.json").write_text(json.dumps({
        "started": "2023-11-14T22:13:20+00:00", "finished": "2023-11-14T22:15:20+00:00", "wall_s": 120.4,
        "sessions": 2, "status": "completed",
        "hardware": {"cpu": "Test CPU 9000", "cores": 2, "gpu": None, "torch": "2.5.0", "device": "cpu",
                     "precision": "fp32"}}))
    return run


def test_report_has_every_section_metric_and_image(tmp_path):
    run = make_run(tmp_path)
    path = write_report(run)
    assert path == run / "report.html"
    page = path.read_text()
    assert not list(run.glob(".*.tmp"))  # written through a temporary file, renamed
    assert "<title>demo &#8212; run report</title>" in page
    for text in ("Training", "Losses", "Learning rates", "Evaluation during training", "Sample grids",
                 "Final evaluation", "Resolved recipe", "Test CPU 9000 (2 cores)", "2 min 00 s", "completed",
                 "2 (resumed 1 time(s))",
                 "iteration 40, epoch 2", "3 grid(s); one row per image kind",
                 "<span>real_A</span><span>fake_B</span><span>rec_A</span>"):
        assert text in page, text
    # metrics to 4 significant digits, arrows from "better", skipped metrics with reasons, protocol
    for value in ("12.35", "0.9123", "23.46", "0.8765"):
        assert f"<td class='num'>{value}</td>" in page, value
    assert "<code>fid</code> &#8595;" in page and "<code>target_accuracy</code> &#8593;" in page
    assert "<code>AtoB/paired</code>: needs paired test images" in page
    assert "<dt>sha256</dt><dd><code>0123abcd</code></dd>" in page
    assert "Checkpoint <code>/runs/demo/checkpoints/iter_00000040</code>, iteration 40, epoch 2." in page
    assert "<td class='num'>99</td>" not in page  # the older evaluation is not the one shown
    assert ("Best checkpoint:</strong> <code>checkpoints/best</code> (iteration 40, epoch 2), "
            "chosen by <code>AtoB/fid</code> &#8595; = 12.35.") in page
    # the recipe, escaped
    assert "# demo recipe: &lt;A&gt; &amp; &lt;B&gt;" in page and "log_every: 2" in page
    # 3 plots (losses, learning rates, evaluation) and 3 sample grids, all embedded
    images = re.findall(r"<img [^>]*src='([^']*)'", page)
    assert len(images) == 6 and all(src.startswith("data:image/png;base64,") for src in images)
    widths = re.findall(r"samples at iteration (\d+)' width='(\d+)'", page)
    assert widths == [("2", "384"), ("20", "384"), ("40", "384")]  # 192 pixels wide, shown twice as wide
    assert "http://" not in page and "https://" not in page


def test_report_of_a_run_that_has_just_started(tmp_path):
    run = tmp_path / "fresh"
    run.mkdir()
    (run / "recipe.yaml").write_text("name: fresh\n")
    (run / "log.jsonl").write_text("")
    page = write_report(run, tmp_path / "new" / "out.html").read_text()  # its folder is made
    assert "No log records yet." in page and "No sample grids yet." in page and "No final evaluation yet" in page
    assert "unknown <span class='muted'>(no run.json)</span>" in page and "<img" not in page

    # losses but no run.json: the run time comes from the log; a cut-off last line is left out
    (run / "log.jsonl").write_text(json.dumps({"step": 1, "epoch": 0, "time": T0, "generators/gan_AB": 1.0}) + "\n"
                                   + json.dumps({"step": 2, "epoch": 0, "time": T0 + 90, "generators/gan_AB": 0.9})
                                   + "\n{\"step\": 3, \"ep")
    page = write_report(run).read_text()
    assert "&#8776; 1 min 30 s" in page and "iteration 2, epoch 0" in page and page.count("<img") == 1


def test_report_shows_at_most_12_grids_spread_over_the_run(tmp_path):
    run = tmp_path / "long"
    (run / "samples").mkdir(parents=True)
    (run / "recipe.yaml").write_text("name: long\n")
    (run / "log.jsonl").write_text("")
    for i in range(30):
        write_png(torch.full((3, 4, 4), 8 * i, dtype=torch.uint8), str(run / "samples" / f"iter_{10 * i:08d}.png"))
    page = write_report(run).read_text()
    steps = [int(s) for s in re.findall(r"samples at iteration (\d+)' width='16'", page)]
    assert "12 of 30 grids" in page and len(steps) == 12 and steps == sorted(steps)
    assert steps[0] == 0 and steps[-1] == 290 and max(b - a for a, b in zip(steps, steps[1:])) <= 30


def test_report_names_the_path_when_it_is_not_a_run(tmp_path):
    with raises(CheckpointError, "no-run", key=str(tmp_path / "missing")):
        write_report(tmp_path / "missing")
    (tmp_path / "recipe.yaml").write_text("name: x\n")
    with raises(CheckpointError, "no-run", key=str(tmp_path / "log.jsonl")):
        write_report(tmp_path)
    (tmp_path / "log.jsonl").write_text("not json\n{}\n")
    with raises(CheckpointError, "bad-log", key=str(tmp_path / "log.jsonl"), says=("line 1",)):
        write_report(tmp_path)


def chromium(*args: str, profile: Path) -> subprocess.CompletedProcess:
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        pytest.skip("headless Chromium not installed (apt-get update && apt-get install -y chromium)")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
             "--allow-file-access-from-files", "--virtual-time-budget=5000", f"--user-data-dir={profile}"]
    return subprocess.run([binary, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


@pytest.mark.subprocess
def test_report_renders_in_headless_chromium(tmp_path):
    page = write_report(make_run(tmp_path))
    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout
    loaded = re.search(r'data-images-loaded="(\d+)"', dom)
    total = re.search(r'data-images-total="(\d+)"', dom)
    assert loaded and total, dom[:500]
    assert loaded.group(1) == total.group(1) == "6"

    shot = tmp_path / "shot.png"
    chromium(f"--screenshot={shot}", "--window-size=1200,2000", page.as_uri(), profile=tmp_path / "profile")
    img = read_image(str(shot))[:3].int()
    assert img.shape[1:] == (2000, 1200)
    r, g, b = img
    non_white = (img.min(0).values < 235).float().mean().item()
    assert non_white > 0.05, f"only {non_white:.1%} of the page is not white"
    assert ((img.max(0).values < 80).sum() > 2000), "no dark text or plot axes"
    assert ((r > 200) & (g > 100) & (g < 160) & (b < 60)).sum() > 200, "no orange plot lines (matplotlib's C1)"
    assert ((g > 180) & (r < 40) & (b < 40)).sum() > 1000, "the last sample grid (green stripes) is not shown"
