"""`unpaired benchmark`: recipes x seeds on one budget, best and last, mean ± std; resumable."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal

import PIL.Image
import pytest
import torch

from unpaired import RecipeError
from unpaired.cli import main
from unpaired.evaluation.result import mean_std
from unpaired.runtime import memory
from unpaired.tools import benchmark
from unpaired.tools.benchmark import run_benchmark
from unpaired.tools.benchmark_plot import _mean_band, line_styles

from conftest import raises
from test_ablation import stopping_registry

#: FastCUT and DCLGAN on the embedded sneakers <-> boots at toy size: 2 iterations, evaluated after each.
BUDGET = ["data.args.limit=8", "data.batch_size=4", "train.epochs=2", "train.scheduler.args.n_epochs=1",
          "train.scheduler.args.n_epochs_decay=1", "train.eval_every=1", "eval.num_images=8", "eval.metrics.kid=null",
          "device=cpu"]


def test_mean_and_sample_std():
    assert mean_std([1.0, 3.0]) == "2 ± 1.4"  # sqrt(((1-2)^2 + (3-2)^2) / (2-1))
    assert mean_std([0.5]) == "0.5" and mean_std([]) == "—" and mean_std([None, float("nan")]) == "—"


@pytest.mark.slow
def test_the_peak_memory_of_a_session_is_its_own():
    cpu = torch.device("cpu")
    assert memory.reset_peak(cpu)  # Linux lets a process reset its high-water mark
    before = memory.peak_mib(cpu)
    block = torch.ones(200 * 2**18)  # 200 MiB of float32, touched
    during = memory.peak_mib(cpu)
    del block
    assert during - before > 190
    memory.reset_peak(cpu)  # the next cell's peak does not carry this one's
    assert memory.peak_mib(cpu) < during - 150


def test_the_plotted_line_is_the_seeds_mean_and_its_band_their_range():
    curves = [[(1, {"AtoB/fid": 10.0}), (2, {"AtoB/fid": 6.0})],
              [(1, {"AtoB/fid": 14.0}), (2, {"AtoB/fid": 4.0}), (3, {"AtoB/fid": 1.0})]]  # epoch 3: one seed only
    assert _mean_band(curves, "AtoB/fid") == ([1, 2], [12.0, 5.0], [10.0, 4.0], [14.0, 6.0])


def test_twelve_recipes_get_twelve_line_styles():
    styles = line_styles([f"recipe{i}" for i in range(12)])
    assert len(set(styles.values())) == 12
    assert styles["recipe0"] == ("C0", "-") and styles["recipe10"] == ("C0", "--")


def test_benchmark_table_best_and_last_and_resume(tmp_path, capsys):
    out = tmp_path / "bm"
    args = ["benchmark", "fastcut-fashion", "dclgan-fashion", *BUDGET, "--seeds", "0,1", "--out", str(out),
            "--metrics", "target_accuracy,fid"]
    assert main(args) == 0
    assert capsys.readouterr().out.count(": training into") == 4
    saved = json.loads((out / "benchmark.json").read_text())["cells"]
    assert set(saved) == {"fastcut-fashion", "dclgan-fashion"} and set(saved["dclgan-fashion"]) == {"0", "1"}
    cell = saved["dclgan-fashion"]["1"]
    # last: the final evaluation; best: the best of the two evaluations logged during training
    logged = [json.loads(line) for line in (out / "dclgan-fashion/seed1/log.jsonl").read_text().splitlines()]
    fids = [e["eval/BtoA/fid"] for e in logged if "eval/BtoA/fid" in e]
    assert len(fids) == 2 and cell["last"]["BtoA"]["fid"] == pytest.approx(fids[-1])
    assert cell["best"]["BtoA/fid"] == pytest.approx(min(fids)) and cell["best_epoch"] in (1, 2)
    assert cell["step_s_per_epoch"] > 0
    # the peak resident set of training, at least the torch process itself (hundreds of MiB)
    run_json = json.loads((out / "dclgan-fashion/seed1/run.json").read_text())
    assert cell["peak_mib"] == run_json["peak_memory"]["mib"] > 100 and run_json["peak_memory"]["of"] == "resident set"
    table = (out / "benchmark.md").read_text()
    rows = [r for r in table.splitlines() if r.startswith("| dclgan-fashion |") or r.startswith("| fastcut-fashion |")]
    assert len(rows) == 2 and all("| 2 | last |" in r for r in rows) and "±" in rows[0]
    # FastCUT translates A -> B only: its B -> A cells are empty
    assert rows[0].startswith("| fastcut-fashion |") and "—" in rows[0]
    # the floor: the judge's scores of the test inputs themselves (a sneaker is rarely taken for a boot)
    floor = json.loads((out / "benchmark.json").read_text())["untranslated"]["fastcut-fashion"]
    assert floor["AtoB"]["target_accuracy"] <= 0.25 and floor["AtoB"]["identity_l1"] == 0.0
    assert "| (inputs, untranslated) |" in table
    # the plot under the table: a panel per score, a line per recipe, its seeds' band
    assert "![each score against the epoch" in table and "(benchmark.png)" in table
    assert PIL.Image.open(out / "benchmark.png").size[0] >= 400
    assert [scores["BtoA/fid"] for _, scores in cell["curve"]] == pytest.approx(fids)

    assert main(args) == 0  # the same command again: nothing retrained
    assert capsys.readouterr().out.count("finished before, not retrained") == 4
    with raises(RecipeError, "other-ablation", key=str(out)):
        run_benchmark(["fastcut-fashion"], [0], out, BUDGET)  # dclgan-fashion dropped, seed 1 dropped
    with raises(RecipeError, "other-ablation", key=str(out)):
        run_benchmark(["fastcut-fashion", "dclgan-fashion"], [0, 1], out, [*BUDGET, "train.epochs=3"])


@pytest.mark.slow
def test_an_interrupted_benchmark_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "bm"
    stopping = stopping_registry()
    first = run_benchmark(["fastcut-fashion"], [0, 1], out, BUDGET, registry=stopping, device="cpu")
    assert first.interrupted == signal.SIGINT and first.cells == {"fastcut-fashion": {0: None, 1: None}}
    assert "(not run yet)" in (out / "benchmark.md").read_text()
    second = run_benchmark(["fastcut-fashion"], [0, 1], out, BUDGET, device="cpu")
    assert second.interrupted is None and all(second.cells["fastcut-fashion"].values())
    run = json.loads((out / "fastcut-fashion/seed0/run.json").read_text())
    assert run["sessions"] == 2 and run["iteration"] == 4  # resumed at iteration 1, not restarted


def test_a_failing_cell_leaves_the_others_trained_and_is_retried(tmp_path, monkeypatch, capsys):
    out = tmp_path / "bm"
    train_cell = benchmark._train_cell

    def broken_seed_0(source, overrides, seed, run, label, registry=None, threads=None):
        if seed == 0:
            raise RuntimeError("a plugin's bug")
        return train_cell(source, overrides, seed, run, label, registry, threads)

    monkeypatch.setattr(benchmark, "_train_cell", broken_seed_0)
    first = run_benchmark(["fastcut-fashion"], [0, 1], out, BUDGET, device="cpu")
    assert first.failed == {"fastcut-fashion seed 0": "RuntimeError: a plugin's bug"}
    assert first.cells["fastcut-fashion"][0] is None and first.cells["fastcut-fashion"][1] is not None
    assert "fastcut-fashion seed 0 failed (RuntimeError: a plugin's bug)" in capsys.readouterr().err
    table = (out / "benchmark.md").read_text()
    assert "| fastcut-fashion | 1 | last |" in table and "- fastcut-fashion seed 0: RuntimeError: a plugin's bug" in table
    assert json.loads((out / "benchmark.json").read_text())["failed"] == first.failed
    monkeypatch.setattr(benchmark, "_train_cell", train_cell)
    second = run_benchmark(["fastcut-fashion"], [0, 1], out, BUDGET, device="cpu")
    assert second.failed == {} and all(second.cells["fastcut-fashion"].values())
    assert "Failed cells" not in (out / "benchmark.md").read_text()


def test_a_queued_cell_does_not_start_after_ctrl_c(tmp_path, monkeypatch):
    """--jobs: a worker whose cell Ctrl-C stopped is handed the next queued cell at once; once the
    main process has set the stop event, that cell returns untouched (the next call trains it)."""
    stop = multiprocessing.get_context("spawn").Event()
    monkeypatch.setattr(benchmark, "_STOP", None)
    benchmark._init_worker(stop)
    stop.set()
    run = tmp_path / "fastcut-fashion/seed0"
    assert benchmark._train_cell("fastcut-fashion", BUDGET, 0, run, "[1/1] fastcut-fashion seed 0") == signal.SIGINT
    assert not run.exists()


def test_benchmark_refuses_duplicates_and_no_seeds(tmp_path, capsys):
    with raises(RecipeError, "duplicate"):
        run_benchmark(["fastcut-fashion", "fastcut-fashion"], [0], tmp_path, BUDGET)
    with raises(RecipeError, "empty"):
        run_benchmark(["fastcut-fashion"], [], tmp_path, BUDGET)
    assert main(["benchmark", "fastcut-fashion", "--seeds", "0,x", "--out", str(tmp_path)]) == 2
    assert "--seeds: comma-separated integers" in capsys.readouterr().err
    assert not (tmp_path / "benchmark.yaml").exists()
    # a table key no metric outputs left an empty column after the training
    with raises(RecipeError, "unknown-metric", key="--metrics", says=("target_acuracy", "Did you mean 'target_accuracy'")):
        run_benchmark(["cyclegan-fashion"], [0], tmp_path, BUDGET, metrics=["target_acuracy"])
    assert not (tmp_path / "benchmark.yaml").exists()


@pytest.mark.slow
def test_a_recipe_with_an_ema_gets_its_trained_weights_row_and_the_protocol(tmp_path):
    recipe = tmp_path / "cyclegan-ema.yaml"
    recipe.write_text("base: cyclegan-fashion\nname: cyclegan-ema\nema: {networks: [G_AB, G_BA], decay: 0.5}\n")
    out = tmp_path / "bm"
    result = run_benchmark([str(recipe)], [0], out, BUDGET, metrics=["target_accuracy"], device="cpu")
    cell = result.cells["cyclegan-ema"][0]
    assert cell.trained is not None and cell.trained.protocol.get("weights") is None
    assert cell.last.protocol.get("weights") == "ema"
    # the EMA (decay 0.5 over 2 iterations) and the trained weights translate differently
    assert cell.trained.metrics["AtoB"]["identity_l1"] != cell.last.metrics["AtoB"]["identity_l1"]
    table = (out / "benchmark.md").read_text()
    assert "| cyclegan-ema | 1 | last (EMA) |" in table and "| | | last (trained weights) |" in table
    assert "| | | best (EMA) |" in table
    protocol = next(line for line in table.splitlines() if line.startswith("**Protocol**"))
    assert "A 8, B 8 test images per domain ('test' split, unpaired)" in protocol
    assert "features fashion_mnist (weights sha256 e71092947675" in protocol and "iteration 4" in protocol
    saved = json.loads((out / "benchmark.json").read_text())["cells"]["cyclegan-ema"]["0"]
    assert saved["last_trained"] == cell.trained.metrics
    # the trained weights' evaluation sits beside the run's own (the EMA's), never in its place
    evals = out / "cyclegan-ema/seed0/eval"
    assert sorted(p.name for p in evals.iterdir())[-2:] == ["iter_00000004", "iter_00000004-raw"]
    assert json.loads((evals / "iter_00000004/metrics.json").read_text())["protocol"]["weights"] == "ema"


@pytest.mark.slow
def test_cells_train_side_by_side_with_jobs(tmp_path, capsys):
    out = tmp_path / "bm"
    result = run_benchmark(["fastcut-fashion"], [0, 1], out, BUDGET, metrics=["target_accuracy"], device="cpu", jobs=2)
    assert result.interrupted is None and all(result.cells["fastcut-fashion"].values())
    for seed in (0, 1):  # each cell a run of its own, trained to the end in its own process
        info = json.loads((out / f"fastcut-fashion/seed{seed}/run.json").read_text())
        assert info["status"] == "completed" and info["iteration"] == 4
    # the same seed trains the same weights alone or side by side (with as many threads: 1 on 2 cores)
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // 2))
    try:
        alone = run_benchmark(["fastcut-fashion"], [1], tmp_path / "alone", BUDGET, metrics=["target_accuracy"],
                              device="cpu")
    finally:
        torch.set_num_threads(threads)
    assert alone.cells["fastcut-fashion"][1].last.metrics == result.cells["fastcut-fashion"][1].last.metrics
    with raises(RecipeError, "bad-value", key="--jobs"):
        run_benchmark(["fastcut-fashion"], [0], out, BUDGET, jobs=0)
