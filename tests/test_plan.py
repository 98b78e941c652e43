"""Which forward passes run: only those the active loss terms need, each once per iteration."""

from __future__ import annotations

from collections import Counter

import torch

from unpaired.plan import make_plan
from unpaired.executor import Executor as Trainer  # the executor runs one iteration, no data or run dir needed


def count_calls(trainer: Trainer) -> Counter:
    calls = Counter()
    for name, net in trainer.nets.items():
        net.register_forward_hook(lambda mod, inp, out, name=name: calls.update([name]))
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
    trainer.train_step(one_batch(trainer))
    assert calls == {"G_AB": 3, "G_BA": 3, "D_A": 3, "D_B": 3}


def test_removing_a_term_removes_the_passes_only_it_needed(tiny_recipe):
    # Without the cycle terms, rec_A and rec_B are no longer made: one generator pass fewer each.
    trainer = Trainer(tiny_recipe("steps.generators.losses.cycle_A=null", "steps.generators.losses.cycle_B.weight=0"))
    assert "rec_A" not in trainer.plans[0].images and "rec_B" not in trainer.plans[0].images
    calls = count_calls(trainer)
    trainer.train_step(one_batch(trainer))
    assert calls == {"G_AB": 2, "G_BA": 2, "D_A": 3, "D_B": 3}


def test_gan_alone_ablation(tiny_recipe):
    off = [f"steps.generators.losses.{t}=null" for t in ("cycle_A", "cycle_B", "idt_A", "idt_B")]
    trainer = Trainer(tiny_recipe(*off))
    calls = count_calls(trainer)
    values = trainer.train_step(one_batch(trainer))
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
    trainer.train_step(one_batch(trainer))
    assert seen == {"D_A": True, "D_B": True}  # no gradient reached D in the generator step
    for name, params in before.items():
        assert any(not torch.equal(p, q) for p, q in zip(params, trainer.nets[name].parameters())), name
