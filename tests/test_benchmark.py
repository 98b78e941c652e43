"""`unpaired benchmark`: recipes x seeds on one budget, best and last, mean ± std; resumable."""

from __future__ import annotations

import json
import signal
import types

import pytest

from unpaired import RecipeError
from unpaired.cli import main
from unpaired.plugin.registry import Registry
from unpaired.evaluation.result import mean_std
from unpaired.tools.benchmark import run_benchmark

from conftest import raises
from test_ablation import StopAtFirstStep

#: FastCUT and DCLGAN on the embedded sneakers <-> boots at toy size: 2 iterations, evaluated after each.
BUDGET = ["data.args.limit=8", "data.batch_size=4", "train.epochs=2", "train.scheduler.args.n_epochs=1",
          "train.scheduler.args.n_epochs_decay=1", "train.eval_every=1", "eval.num_images=8", "eval.metrics.kid=null",
          "device=cpu"]


def test_mean_and_sample_std():
    assert mean_std([1.0, 3.0]) == "2 ± 1.4"  # sqrt(((1-2)^2 + (3-2)^2) / (2-1))
    assert mean_std([0.5]) == "0.5" and mean_std([]) == "—" and mean_std([None, float("nan")]) == "—"


@pytest.mark.slow
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
    table = (out / "benchmark.md").read_text()
    rows = [r for r in table.splitlines() if r.startswith("| dclgan-fashion |") or r.startswith("| fastcut-fashion |")]
    assert len(rows) == 2 and all("| 2 | last |" in r for r in rows) and "±" in rows[0]
    # FastCUT translates A -> B only: its B -> A cells are empty
    assert rows[0].startswith("| fastcut-fashion |") and "—" in rows[0]
    # the floor: the judge's scores of the test inputs themselves (a sneaker is rarely taken for a boot)
    floor = json.loads((out / "benchmark.json").read_text())["untranslated"]["fastcut-fashion"]
    assert floor["AtoB"]["target_accuracy"] <= 0.25 and floor["AtoB"]["identity_l1"] == 0.0
    assert "| (inputs, untranslated) |" in table

    assert main(args) == 0  # the same command again: nothing retrained
    assert capsys.readouterr().out.count("finished before, not retrained") == 4
    with raises(RecipeError, "other-ablation", key=str(out)):
        run_benchmark(["fastcut-fashion"], [0], out, BUDGET)  # dclgan-fashion dropped, seed 1 dropped
    with raises(RecipeError, "other-ablation", key=str(out)):
        run_benchmark(["fastcut-fashion", "dclgan-fashion"], [0, 1], out, [*BUDGET, "train.epochs=3"])


@pytest.mark.slow
def test_an_interrupted_benchmark_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "bm"
    plugin = types.ModuleType("stop_plugin")
    plugin.unpaired_after_step = StopAtFirstStep().unpaired_after_step
    stopping = Registry()
    stopping.register_plugin(plugin)
    first = run_benchmark(["fastcut-fashion"], [0, 1], out, BUDGET, registry=stopping, device="cpu")
    assert first.interrupted == signal.SIGINT and first.cells == {"fastcut-fashion": {0: None, 1: None}}
    assert "(not run yet)" in (out / "benchmark.md").read_text()
    second = run_benchmark(["fastcut-fashion"], [0, 1], out, BUDGET, device="cpu")
    assert second.interrupted is None and all(second.cells["fastcut-fashion"].values())
    run = json.loads((out / "fastcut-fashion/seed0/run.json").read_text())
    assert run["sessions"] == 2 and run["iteration"] == 4  # resumed at iteration 1, not restarted


def test_benchmark_refuses_duplicates_and_no_seeds(tmp_path, capsys):
    with raises(RecipeError, "duplicate"):
        run_benchmark(["fastcut-fashion", "fastcut-fashion"], [0], tmp_path, BUDGET)
    with raises(RecipeError, "empty"):
        run_benchmark(["fastcut-fashion"], [], tmp_path, BUDGET)
    assert main(["benchmark", "fastcut-fashion", "--seeds", "0,x", "--out", str(tmp_path)]) == 2
    assert "--seeds: comma-separated integers" in capsys.readouterr().err
    assert not (tmp_path / "benchmark.yaml").exists()
