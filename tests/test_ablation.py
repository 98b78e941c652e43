"""The paper's loss ablation as recipes applied to any task, and `unpaired ablate`: one row per
variant, a figure of the expected size, and an interrupted ablation that resumes where it stopped."""

from __future__ import annotations

import pytest

import json
import signal
import types

from torchvision.io import read_image

from unpaired import hookimpl
from unpaired.tools.ablation import HEADING_HEIGHT, LABEL_WIDTH, PAPER_VARIANTS, resolve_variant, run_ablation, variant_recipe
from unpaired.cli import main
from unpaired.errors import RecipeError
from unpaired.engine.executor import Executor
from unpaired.plugin.registry import Registry

from conftest import TINY, raises

#: The demo task at toy size with a quick evaluation; the shared budget of every variant.
BUDGET = [*TINY, "train.max_iterations=2", "eval.num_images=8", "eval.metrics.kid=null"]


def terms(executor):
    return {f"{p.name}.{t}" for p in executor.plans for t in p.terms}


def images(executor):
    return {i for p in executor.plans for i in p.images}


@pytest.mark.slow
def test_each_variant_resolves_to_the_papers_loss_terms():
    ex = {v: Executor(variant_recipe("cyclegan-fashion", v, TINY)) for v in PAPER_VARIANTS}
    full = ex["full"]
    assert {"generators.gan_AB", "generators.cycle_A", "generators.cycle_B", "discriminators.D_A"} <= terms(full)
    assert {"rec_A", "rec_B"} <= images(full) and len(full.pools) == 2

    gan = ex["ablations/gan-alone"]
    assert not {"generators.cycle_A", "generators.cycle_B"} & terms(gan)
    assert not {"rec_A", "rec_B"} & images(gan)  # no reconstruction is computed at all
    assert {"generators.gan_AB", "generators.gan_BA"} <= terms(gan)

    cycle = ex["ablations/cycle-alone"]
    assert set(cycle.nets) == {"G_AB", "G_BA"} and not cycle.pools  # no discriminator, no pool
    assert [p.name for p in cycle.plans] == ["generators"] and not any("gan" in t for t in terms(cycle))

    forward, backward = ex["ablations/gan-forward-cycle"], ex["ablations/gan-backward-cycle"]
    assert "generators.cycle_A" in terms(forward) and "generators.cycle_B" not in terms(forward)
    assert "rec_A" in images(forward) and "rec_B" not in images(forward)
    assert "generators.cycle_B" in terms(backward) and "generators.cycle_A" not in terms(backward)
    # the paper's variants by bare name, as the table and docs/ablation.md call them
    assert resolve_variant("gan-alone") == "ablations/gan-alone" and resolve_variant("full") == "full"
    assert variant_recipe("cyclegan-fashion", "gan-alone", TINY) == variant_recipe("cyclegan-fashion",
                                                                                  "ablations/gan-alone", TINY)
    with raises(RecipeError, "no-recipe", key="gan-alon", says=("'gan-alone'", "full, cycle-alone, gan-alone")):
        resolve_variant("gan-alon")
    # applied to another task, a variant keeps that task's data and networks
    edges = variant_recipe("cyclegan-edges", "ablations/gan-alone", TINY)
    assert edges.data.dataset == "fashion_edges" and edges.name == "cyclegan-edges-gan-alone"
    assert "cycle_A" not in edges.steps.generators.losses


@pytest.mark.slow
def test_ablate_writes_a_row_per_variant_and_a_figure(tmp_path, capsys):
    out = tmp_path / "abl"
    code = main(["ablate", "cyclegan-fashion", *BUDGET, "train.eval_every=1", "--variants", "full,gan-alone",
                 "--out", str(out), "--metrics", "target_accuracy,fid,diversity,cycle_l1", "--images", "3"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "[1/2] full: training" in printed and "[2/2] gan-alone: training" in printed
    table = (out / "ablation.md").read_text().splitlines()
    assert table[0].startswith("| variant | AtoB target_accuracy ↑ | AtoB fid ↓ | AtoB diversity ↑ | AtoB cycle_l1 ↓ | BtoA")
    assert [row.split("|")[1].strip() for row in table[2:4]] == ["full", "gan-alone"]
    saved = json.loads((out / "ablation.json").read_text())
    assert set(saved["variants"]) == {"full", "gan-alone"}
    # each variant's scores are the evaluation its training wrote at its last checkpoint
    trained = json.loads((out / "full" / "eval" / "iter_00000002" / "metrics.json").read_text())
    assert saved["variants"]["full"]["metrics"] == trained["metrics"]
    assert saved["variants"]["gan-alone"]["metrics"]["AtoB"]["target_accuracy"] >= 0
    figure = read_image(str(out / "ablation.png"))
    # rows: the inputs + 2 variants; columns: 3 AtoB + 3 BtoA; 28x28 tiles enlarged 3x, 2-pixel padding,
    # a column of row labels (dark text on white) on the left and a heading row naming the directions
    assert figure.shape == (3, HEADING_HEIGHT + 3 * (84 + 2) + 2, LABEL_WIDTH + 6 * (84 + 2) + 2)
    labels = figure[:, :, :LABEL_WIDTH]
    assert (labels < 100).any() and (labels == 255).float().mean() > 0.8
    heading = figure[:, :HEADING_HEIGHT, LABEL_WIDTH:]
    left, right = heading[..., : heading.shape[-1] // 2], heading[..., heading.shape[-1] // 2:]
    assert (left < 100).any() and (right < 100).any()  # "A → B" over the first half, "B → A" over the second

    code = main(["ablate", "cyclegan-fashion", *BUDGET, "train.eval_every=1", "--variants", "full,ablations/gan-alone",
                 "--out", str(out), "--images", "3"])  # the same variants, named by path
    assert code == 0 and capsys.readouterr().out.count("finished before, not retrained") == 2
    # the default table: one column per eval metric of the recipe (kid is off) and direction, its first rankable output
    heads = [h.strip() for h in (out / "ablation.md").read_text().splitlines()[0].split("|")[2:-1]]
    assert heads == [f"{d} {k}" for d in ("AtoB", "BtoA") for k in ("target_accuracy ↑", "fid ↓", "diversity ↑",
                                                                      "cycle_l1 ↓", "identity_l1 ↓")]
    with raises(RecipeError, "other-ablation", key=str(out)):
        run_ablation("cyclegan-fashion", ["full"], out, BUDGET)


class StopAtFirstStep:
    """Sends the trainer a SIGINT after its first iteration, as Ctrl-C would."""

    @hookimpl
    def unpaired_after_step(self, trainer):
        if trainer.iteration == 1:
            trainer._on_signal(signal.SIGINT, None)


def stopping_registry() -> Registry:
    """The built-in plugins and :class:`StopAtFirstStep`: a run that stops after one iteration."""
    plugin = types.ModuleType("stop_plugin")
    plugin.unpaired_after_step = StopAtFirstStep().unpaired_after_step
    registry = Registry()
    registry.register_plugin(plugin)
    return registry


@pytest.mark.slow
def test_ablate_refuses_bad_arguments_before_training(tmp_path):
    """--images 0 raised a raw traceback after every variant had trained; --metrics bogus gave an
    empty table and exit 0."""
    with raises(RecipeError, "bad-value", key="--images"):
        run_ablation("cyclegan-fashion", ["full"], tmp_path / "a", list(TINY), images=0)
    with raises(RecipeError, "unknown-metric", key="--metrics", says=("bogus", "target_accuracy")):
        run_ablation("cyclegan-fashion", ["full"], tmp_path / "b", list(TINY), metrics=["bogus"])
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_an_interrupted_ablation_resumes_where_it_stopped(tmp_path):
    out = tmp_path / "abl"
    variants = ["ablations/cycle-alone", "full"]
    stopping = stopping_registry()
    first = run_ablation("cyclegan-fashion", variants, out, BUDGET, images=2, registry=stopping, device="cpu")
    assert first.interrupted == signal.SIGINT and first.figure is None
    assert first.results == {"cycle-alone": None, "full": None}
    assert "(not run yet)" in (out / "ablation.md").read_text()
    assert json.loads((out / "cycle-alone" / "run.json").read_text())["iteration"] == 1

    second = run_ablation("cyclegan-fashion", variants, out, BUDGET, images=2, device="cpu")
    assert second.interrupted is None and all(second.results.values())
    cycle_run = json.loads((out / "cycle-alone" / "run.json").read_text())
    assert cycle_run["sessions"] == 2 and cycle_run["iteration"] == 2  # resumed at iteration 1, not restarted
    assert "cycle_l1" in second.results["cycle-alone"].metrics["AtoB"]


@pytest.mark.slow
def test_ablate_with_seeds_resumes_and_gives_mean_and_std(tmp_path):
    out = tmp_path / "abl"
    stopping = stopping_registry()
    first = run_ablation("cyclegan-fashion", ["full"], out, BUDGET, images=2, registry=stopping, device="cpu",
                         seeds=[0, 1])
    assert first.interrupted == signal.SIGINT and first.results == {"full": None}
    second = run_ablation("cyclegan-fashion", ["full"], out, BUDGET, images=2, device="cpu", seeds=[0, 1])
    assert second.interrupted is None and len(second.results["full"]) == 2
    seed0 = json.loads((out / "full" / "seed0" / "run.json").read_text())
    assert seed0["sessions"] == 2 and seed0["iteration"] == 2  # resumed at iteration 1, not restarted
    a, b = (r.metrics["AtoB"]["fid"] for r in second.results["full"])
    assert a != b  # two seeds, two trainings
    mean, std = (a + b) / 2, abs(a - b) / 2 ** 0.5
    row = (out / "ablation.md").read_text().splitlines()[2]
    assert row.startswith("| full | ") and f"{mean:.4g} ± {std:.2g}" in row
    assert "Mean ± standard deviation over 2 seeds." in (out / "ablation.md").read_text()
    with raises(RecipeError, "other-ablation", key=str(out)):
        run_ablation("cyclegan-fashion", ["full"], out, BUDGET, images=2, device="cpu", seeds=[0, 2])
