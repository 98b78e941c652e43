"""Which forward passes run: only those the active loss terms need, each once per iteration."""

from __future__ import annotations

import pytest

from collections import Counter

import torch
from omegaconf import OmegaConf

from unpaired.recipe.plan import make_plan
from unpaired.recipe.load import load_recipe
from unpaired.engine.executor import Executor as Trainer


def count_calls(trainer: Trainer, n: int = 2) -> Counter:
    """Passes per network, counted in batches of ``n`` images (a call on two passes' inputs
    concatenated, see ``train.batch_passes``, counts 2)."""
    calls = Counter()
    for name, net in trainer.nets.items():
        net.register_forward_hook(lambda mod, inp, out, name=name: calls.update({name: len(inp[0]) // n}))
    return calls


def record_calls(trainer: Trainer) -> list:
    """(network, batch size) of every call, in order."""
    calls = []
    for name, net in trainer.nets.items():
        net.register_forward_hook(lambda mod, inp, out, name=name: calls.append((name, len(inp[0]))))
    return calls


def one_batch(trainer: Trainer, n: int = 2) -> dict:
    torch.manual_seed(0)
    return {k: torch.rand(n, 1, 28, 28) * 2 - 1 for k in ("real_A", "real_B")}


def test_cyclegan_plan(tiny_recipe):
    gen, disc = make_plan(tiny_recipe())
    assert gen.images == ("fake_B", "fake_A", "rec_A", "rec_B", "idt_B", "idt_A")
    assert gen.fresh == set(gen.images)
    assert set(disc.images) == {"fake_A", "fake_B"} and disc.fresh == frozenset()


def test_cyclegan_runs_the_papers_passes_and_no_more(tiny_recipe):
    """Per iteration: each generator 3 passes (fake, reconstruction, identity); each
    discriminator 3 (the fake in the generator step; real and pooled fake in its own step)."""
    trainer = Trainer(tiny_recipe())
    calls = count_calls(trainer)
    trainer.run_iteration(one_batch(trainer))
    assert calls == {"G_AB": 3, "G_BA": 3, "D_A": 3, "D_B": 3}


def test_passes_of_one_generator_at_the_same_depth_share_a_call(tiny_recipe):
    trainer = Trainer(tiny_recipe())
    assert trainer.calls["generators"] == (("fake_B", "idt_B"), ("fake_A", "idt_A"), ("rec_A",), ("rec_B",))
    calls = record_calls(trainer)
    trainer.run_iteration(one_batch(trainer))
    generator_calls = [c for c in calls if c[0].startswith("G")]
    assert generator_calls == [("G_AB", 4), ("G_BA", 4), ("G_BA", 2), ("G_AB", 2)]


@pytest.mark.slow
def test_batched_passes_train_as_separate_ones(tiny_recipe):
    """One call on real_A and real_B concatenated gives what two calls give (instance norm works
    per sample): the losses and the trained generators' outputs agree to float rounding. (Not
    every weight: a conv bias before instance norm has a gradient of pure rounding noise, which
    Adam scales up to steps of the learning rate; it cancels in the output.)"""
    results = {}
    probe = torch.rand(3, 1, 28, 28, generator=torch.Generator().manual_seed(1)) * 2 - 1
    for batched in (True, False):
        trainer = Trainer(tiny_recipe(f"train.batch_passes={str(batched).lower()}"))
        calls = trainer.calls["generators"]
        assert len(calls) == (4 if batched else 6)
        assert batched or calls == tuple((name,) for name in trainer.plans[0].images)  # the recipe's order
        values = [trainer.run_iteration(one_batch(trainer), i) for i in range(3)]
        with torch.no_grad():
            results[batched] = values, trainer.nets["G_AB"](probe), trainer.nets["G_BA"](probe)
    for a, b in zip(results[True][0], results[False][0]):
        assert a.keys() == b.keys()
        for k in a:
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    for batched_out, separate_out in zip(results[True][1:], results[False][1:]):
        torch.testing.assert_close(batched_out, separate_out, rtol=0, atol=1e-4)


def test_networks_that_mix_samples_are_called_once_per_pass(tiny_recipe):
    trainer = Trainer(tiny_recipe("networks.G_AB.args.norm=batch"))
    assert not trainer.nets["G_AB"].per_sample and trainer.nets["G_BA"].per_sample
    assert trainer.calls["generators"] == (("fake_B",), ("fake_A", "idt_A"), ("idt_B",), ("rec_A",), ("rec_B",))


def test_images_kept_for_two_later_steps_get_a_call_each(tiny_recipe, tmp_path):
    """X and Y are made by G_AB in the discriminator step and needed fresh by two later steps: in
    one call, the first of those steps would free the graph the second backpropagates through."""
    adam = {"type": "adam", "args": {"lr": 0.0002, "betas": [0.5, 0.999]}}
    spec = OmegaConf.to_container(tiny_recipe("train.batch_passes=true"), resolve=True)
    spec.update(base=None, samples=["fake_B", "fake_A"])
    spec["images"] = {"fake_B": {"net": "G_AB", "input": "real_A"}, "fake_A": {"net": "G_BA", "input": "real_B"},
                      "X": {"net": "G_AB", "input": "fake_A"}, "Y": {"net": "G_AB", "input": "fake_B"}}
    spec["steps"] = {
        "discriminators": {"networks": ["D_A", "D_B"], "optimizer": adam, "losses": {
            "D_A": {"adversarial": "lsgan", "discriminator": "D_A", "real": "real_A", "fake": "X"},
            "D_B": {"adversarial": "lsgan", "discriminator": "D_B", "real": "real_B", "fake": "Y"}}},
        "s1": {"networks": ["G_BA"], "optimizer": adam,
               "losses": {"c": {"consistency": "l1", "input": "X", "target": "real_B"}}},
        "s2": {"networks": ["G_AB"], "optimizer": adam,
               "losses": {"c": {"consistency": "l1", "input": "Y", "target": "real_B"}}},
    }
    (tmp_path / "shared.yaml").write_text(OmegaConf.to_yaml(spec))
    recipe = load_recipe(str(tmp_path / "shared.yaml"))
    trainer = Trainer(recipe)
    disc = trainer.plans[0]
    assert {"X", "Y"} <= disc.keep_graph and ("X",) in trainer.calls[disc.name] and ("Y",) in trainer.calls[disc.name]
    values = trainer.run_iteration(one_batch(trainer))
    assert set(values) == {"discriminators/D_A", "discriminators/D_B", "s1/c", "s2/c"}


def test_removing_a_term_removes_the_passes_only_it_needed(tiny_recipe):
    # Without the cycle terms, rec_A and rec_B are no longer made: one generator pass fewer each.
    trainer = Trainer(tiny_recipe("steps.generators.losses.cycle_A=null", "steps.generators.losses.cycle_B.weight=0"))
    assert "rec_A" not in trainer.plans[0].images and "rec_B" not in trainer.plans[0].images
    calls = count_calls(trainer)
    trainer.run_iteration(one_batch(trainer))
    assert calls == {"G_AB": 2, "G_BA": 2, "D_A": 3, "D_B": 3}


def test_gan_alone_ablation(tiny_recipe):
    off = [f"steps.generators.losses.{t}=null" for t in ("cycle_A", "cycle_B", "idt_A", "idt_B")]
    trainer = Trainer(tiny_recipe(*off))
    calls = count_calls(trainer)
    values = trainer.run_iteration(one_batch(trainer))
    assert calls == {"G_AB": 1, "G_BA": 1, "D_A": 3, "D_B": 3}
    assert set(values) == {"generators/gan_AB", "generators/gan_BA", "discriminators/D_A", "discriminators/D_B"}


def test_discriminators_are_frozen_in_the_generator_step(tiny_recipe):
    trainer = Trainer(tiny_recipe())
    before = {n: [p.detach().clone() for p in net.parameters()] for n, net in trainer.nets.items()}
    seen = {}
    opt_step = trainer.optimizers["generators"].step

    def spy(*a, **k):
        seen.update({n: all(p.grad is None for p in trainer.nets[n].parameters()) for n in ("D_A", "D_B")})
        return opt_step(*a, **k)

    trainer.optimizers["generators"].step = spy
    trainer.run_iteration(one_batch(trainer))
    assert seen == {"D_A": True, "D_B": True}  # no gradient reached D in the generator step
    for name, params in before.items():
        assert any(not torch.equal(p, q) for p, q in zip(params, trainer.nets[name].parameters())), name
