"""UVCGAN2 as recipes: the pretraining by masked inpainting, the translation that starts from it
(init_from.map), the discriminators' queues as the authors' training uses them, the zero-centred
penalty on real/fake mixes, and the cosine schedule with restarts. The networks themselves are
checked against the authors' code in tests/test_uvcgan2_networks.py."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from safetensors.torch import load_file

from unpaired.cli import main
from unpaired.engine.executor import Executor
from unpaired.recipe.load import load_recipe
from unpaired.runs import checkpoint
from unpaired.tools.check import check_all
from unpaired_plugins.losses.adversarial import gradient_penalty
from unpaired_plugins.losses.penalties import InterpolatedGP
from unpaired_plugins.networks.uvcgan2 import UVCGAN2Discriminator
from unpaired_plugins.ops.masking import PatchMask
from unpaired_plugins.optim import cosine_restarts

TINY = ["data.args.limit=8", "data.batch_size=2", "device=cpu", "train.log_every=1", "train.report=false"]


def test_patch_mask_hides_whole_patches_in_every_channel():
    x = torch.rand(64, 3, 8, 8) * 2 - 1
    masked = PatchMask(patch_size=4, fraction=0.4)(x, {}, torch.Generator().manual_seed(0))
    hidden = (masked == -1).all(dim=1)  # (N, H, W): the same pixels in every channel
    assert ((masked == x) | (masked == -1)).all()
    patches = hidden.reshape(64, 2, 4, 2, 4).permute(0, 1, 3, 2, 4).reshape(64, 4, 16)
    assert (patches.all(-1) | ~patches.any(-1)).all()  # a patch is hidden whole or not at all
    assert patches.all(-1).float().mean().item() == pytest.approx(0.4, abs=0.07)  # 256 Bernoulli(0.4) draws
    assert torch.equal(PatchMask(4, 0.0)(x, {}, torch.Generator()), x)
    assert (PatchMask(4, 1.0)(x, {}, torch.Generator()) == -1).all()
    with pytest.raises(ValueError, match="do not divide into 3x3 patches"):
        PatchMask(patch_size=3)(x, {}, torch.Generator())
    with pytest.raises(ValueError, match="fraction"):
        PatchMask(fraction=1.5)


def test_cosine_restarts_by_hand():
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched, lrs = cosine_restarts(opt, t_0=2, eta_min=0.0), []
    for _ in range(5):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs == pytest.approx([1.0, 0.5, 1.0, 0.5, 1.0])  # (1 + cos(pi e / 2)) / 2, restarting every 2 epochs
    with pytest.raises(ValueError):
        cosine_restarts(opt, t_0=0)


def test_zero_gp_on_mixes_by_hand():
    """A linear 'discriminator' x -> w · x per pixel: the gradient of each sample's mean output is
    w / (H W) at every pixel, so ‖∇‖² = |w|² / (H W): 25 / 4 for w = (3, 4) on 2x2 images, and
    |w|² H W = 100 when the outputs are summed. The one mixing weight reaches D as ``mix``."""
    w = torch.tensor([3.0, 4.0]).reshape(1, 2, 1, 1)
    seen = []

    def disc(x, mix=None):
        seen.append((x.detach().clone(), mix))
        return (x * w).sum(1, keepdim=True)

    real, fake = torch.ones(3, 2, 2, 2), torch.zeros(3, 2, 2, 2)
    value = gradient_penalty(disc, real, fake, eps=torch.tensor(0.25), center=0.0, per_sample=False,
                             reduction="mean", pass_mix=True)
    assert value.item() == pytest.approx(25 / 4)
    x_hat, mix = seen[-1]
    assert torch.equal(x_hat, torch.full((3, 2, 2, 2), 0.25)) and mix.item() == 0.25
    assert gradient_penalty(disc, real, fake, center=0.0).item() == pytest.approx(100.0)
    assert seen[-1][1] is None  # a plain call without mix_queues
    with pytest.raises(ValueError, match="per_sample to false"):
        gradient_penalty(disc, real, fake, per_sample=True, pass_mix=True)
    with pytest.raises(ValueError, match="per_sample: false"):
        InterpolatedGP(0.0, per_sample=True, mix_queues=True)


def test_zero_gp_equals_the_authors_on_a_queued_discriminator():
    """The authors' ``GradientPenalty('real-fake', 0, 1.0, seed=0)`` (LS4GAN/uvcgan2
    ``torch/gradient_penalty.py``) run on this discriminator (equal to theirs), in training mode
    (the head's batch statistics over the batch and the queue), with the queues mixed by their
    ``recursively_mix_args``, in /work/scratch/uvcgan2/work/gp_check.py: 0.006347830407321453 with
    its first α, 0.49625658988952637 (``torch.rand(1)`` of a generator seeded 0)."""
    torch.manual_seed(0)
    D = UVCGAN2Discriminator(in_channels=1, image_size=32, ndf=8, n_layers=2)
    g = torch.Generator().manual_seed(1)
    real, fake = torch.rand(2, 1, 32, 32, generator=g) * 2 - 1, torch.rand(2, 1, 32, 32, generator=g) * 2 - 1
    with torch.no_grad():
        D.push("real", D._body(torch.rand(3, 1, 32, 32, generator=g)))
        D.push("fake", D._body(torch.rand(3, 1, 32, 32, generator=g)))
    state = copy.deepcopy(D.state_dict())  # each call moves spectral norm's vectors and batch-norm statistics
    alpha = torch.rand(1, generator=torch.Generator().manual_seed(0))
    assert alpha.item() == pytest.approx(0.49625658988952637)
    ours = gradient_penalty(D, real, fake, eps=alpha, center=0.0, per_sample=False, reduction="mean", pass_mix=True)
    assert ours.item() == pytest.approx(0.006347830407321453, rel=1e-5)
    D.load_state_dict(state)
    without_queues = gradient_penalty(D, real, fake, eps=alpha, center=0.0, per_sample=False, reduction="mean")
    assert without_queues.item() != pytest.approx(ours.item(), rel=1e-2)  # the mixed queues count


def test_mix_reads_both_queues():
    torch.manual_seed(0)
    D = UVCGAN2Discriminator(in_channels=1, image_size=32, ndf=8, n_layers=2).eval()
    x = torch.rand(2, 1, 32, 32)
    assert torch.equal(D(x, mix=0.3), D(x))  # empty queues: nothing to mix
    with torch.no_grad():
        D.push("real", D._body(torch.rand(3, 1, 32, 32)))
        D.push("fake", D._body(torch.rand(3, 1, 32, 32)))
    mixed = 0.3 * D.query("real") + 0.7 * D.query("fake")
    assert torch.allclose(D(x, mix=0.3), D(x, extra_bodies=mixed), atol=1e-6)
    with pytest.raises(ValueError, match="without queue"):
        D(x, queue="real", mix=0.3)


def test_an_iteration_uses_the_queues_as_the_authors(monkeypatch, tmp_path):
    """G's step reads each D's fake queue without filling it; D's step, D_B then D_A as theirs,
    computes the penalty at the mix (no push), then reads and fills the real queue, then the fake."""
    calls = []
    forward = UVCGAN2Discriminator.forward

    def spy(self, x, queue=None, update_queue=False, extra_bodies=None, mix=None):
        calls.append((names[id(self)], queue, update_queue, mix is not None))
        return forward(self, x, queue, update_queue, extra_bodies, mix)

    monkeypatch.setattr(UVCGAN2Discriminator, "forward", spy)
    ex = Executor(load_recipe("uvcgan2-fashion", [*TINY, "init_from=null"]), device="cpu")
    names = {id(ex.nets[n]): n for n in ("D_A", "D_B")}
    g = torch.Generator().manual_seed(0)
    batch = {k: torch.rand(2, 1, 32, 32, generator=g) * 2 - 1 for k in ("real_A", "real_B")}
    values = ex.run_iteration(batch)
    assert calls == [("D_B", "fake", False, False), ("D_A", "fake", False, False),
                     ("D_B", None, False, True), ("D_B", "real", True, False), ("D_B", "fake", True, False),
                     ("D_A", None, False, True), ("D_A", "real", True, False), ("D_A", "fake", True, False)]
    assert all(math.isfinite(v.item()) for v in values.values()) and values["discriminators/gp_B"].item() >= 0
    ex.run_iteration(batch)
    D = ex.nets["D_B"]
    assert int(D.queue_real_count) == 3 and int(D.queue_fake_count) == 3  # 2 + 2 samples, ring of 3


@pytest.mark.parametrize("override, key, code", [
    ("steps.generators.losses.gan_AB.discriminator_args.real={queue: real}",
     "steps.generators.losses.gan_AB.discriminator_args.real", "bad-key"),
    ("steps.generators.losses.cycle_A.discriminator_args.fake={queue: fake}",
     "steps.generators.losses.cycle_A.discriminator_args", "bad-value"),
    ("steps.discriminators.losses.gp_B.discriminator_args.fake={queue: fake}",
     "steps.discriminators.losses.gp_B.discriminator_args.fake", "bad-key"),
])
def test_discriminator_args_are_checked(override, key, code):
    problems = check_all(load_recipe("uvcgan2-fashion", ["init_from=null", override]))
    assert [(p.key, p.code) for p in problems] == [(key, code)]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A short pretraining run on the embedded data, and its log's inpainting losses."""
    out = tmp_path_factory.mktemp("pretrain") / "run"
    code = main(["train", "uvcgan2-pretrain-fashion", "train.epochs=1", "train.max_iterations=120",
                 "train.log_every=1", "train.report=false", "--out", str(out)])
    assert code == 0
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    losses = [r["encoder/inpaint_A"] + r["encoder/inpaint_B"] for r in logs if "encoder/inpaint_A" in r]
    return out, losses


def test_pretraining_inpaints_better_as_it_trains(pretrained):
    _, losses = pretrained
    assert len(losses) == 120
    first, last = sum(losses[:10]) / 10, sum(losses[-10:]) / 10
    assert last < 0.5 * first, (first, last)  # 1.54 -> 0.62 here


def test_translation_starts_both_generators_from_the_pretrained_encoder(pretrained, tmp_path):
    source, _ = pretrained
    out = tmp_path / "uvcgan2"
    code = main(["train", "uvcgan2-fashion", *TINY, "train.max_iterations=1", "train.eval_every=null",
                 "ema.warmup=false",  # the plain momentum: the average has moved 0.1% from where it started
                 f"init_from.path={source}", "--out", str(out)])
    assert code == 0
    recorded = load_recipe(str(out / "recipe.yaml")).init_from
    assert list(recorded.networks) == ["G_AB", "G_BA"] and dict(recorded.map) == {"G_AB": "encoder", "G_BA": "encoder"}
    _, before = checkpoint.load_weights(checkpoint.latest(source))
    ema = load_file(checkpoint.latest(out) / "weights.ema.safetensors")
    encoder = before["encoder"]
    for net in ("G_AB", "G_BA"):  # one iteration at 0.999 moves the average 0.1% of the way
        for key, value in encoder.items():
            assert torch.allclose(ema[f"{net}.{key}"], value, atol=1e-4), (net, key)
    assert ema["G_AB.net.layer_input.0.weight"].abs().sum() > 0


def test_init_from_map_is_checked(pretrained):
    source, _ = pretrained

    def problems(*overrides):
        return [str(p) for p in check_all(load_recipe("uvcgan2-fashion", [
            f"init_from.path={source}", *overrides]))]

    assert problems() == []
    [absent] = problems("init_from.map.G_AB=G")
    assert absent.startswith("init_from.networks: ") and "holds no weights for G_AB (from G)" in absent
    assert "map a network to one of these with init_from.map" in absent
    [left_out] = problems("init_from.networks=[G_BA]")
    assert left_out.startswith("init_from.map: G_AB mapped but left out of init_from.networks (G_BA)")


@pytest.mark.parametrize("name", ["uvcgan2", "uvcgan2-pretrain"])
def test_paper_recipes_check(name, image_root):
    assert check_all(load_recipe(name, [f"data.args.root={image_root}", "init_from=null"])) == []


def test_paper_recipe_has_the_authors_settings():
    recipe = load_recipe("uvcgan2", ["data.args.root=/nowhere"])
    gen, disc = recipe.steps.generators, recipe.steps.discriminators
    assert dict(recipe.init_from.map) == {"G_AB": "encoder", "G_BA": "encoder"}
    assert [gen.losses[t].weight for t in ("cycle_A", "cycle_B", "idt_A", "idt_B")] == [5.0, 5.0, 2.5, 2.5]
    for step in (gen, disc):
        assert step.optimizer.args.lr == 1e-4 and list(step.optimizer.args.betas) == [0.5, 0.99]
    assert list(disc.losses) == ["gp_B", "D_B", "gp_A", "D_A"]  # their order: D_b's penalty, D_b, then D_a
    assert dict(disc.losses.gp_B.args) == {"center": 0.0, "per_sample": False, "reduction": "mean", "mix_queues": True}
    assert recipe.ema.decay == 0.9999 and recipe.train.max_iterations == 1_000_000
    pre = load_recipe("uvcgan2-pretrain", ["data.args.root=/nowhere"])
    assert dict(pre.images.masked_A.args) == {"patch_size": 32, "fraction": 0.4}
    assert pre.steps.encoder.optimizer.type == "adamw" and pre.steps.encoder.optimizer.args.weight_decay == 0.05
