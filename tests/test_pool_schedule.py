"""The image history pool, the optimizer factory and the learning-rate schedules."""

from __future__ import annotations

import math

import pytest
import torch

from unpaired.engine.pool import ImagePool
from unpaired_plugins.optim import adam, adamw, constant, cosine, linear, plateau, sgd, step

LR = 2e-4


# --------------------------------------------------------------------------------------------
# ImagePool


def _tagged(*tags: float) -> torch.Tensor:
    """A batch (N, 1, 2, 2) whose image k is filled with tags[k], so each image is recognisable."""
    return torch.tensor(tags, dtype=torch.float32).view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone()


def _tags(batch: torch.Tensor) -> list[float]:
    assert all(torch.all(img == img.flatten()[0]) for img in batch)
    return [float(img.flatten()[0]) for img in batch]


def test_pool_size_zero_is_identity():
    pool = ImagePool(0)
    batch = torch.randn(3, 3, 4, 4)
    out = pool.query(batch)
    assert torch.equal(out, batch)
    assert pool.images == []


def test_pool_filling_returns_new_and_stores():
    pool = ImagePool(4, seed=0)
    out = pool.query(_tagged(1, 2, 3))
    assert _tags(out) == [1, 2, 3]
    assert [_tags(i[None])[0] for i in pool.images] == [1, 2, 3]
    # the last free slot fills with the first image of this batch; the second may already swap
    out = pool.query(_tagged(4, 5))
    assert _tags(out)[0] == 4
    assert len(pool.images) == 4
    assert _tags(out)[1] in (1, 2, 3, 4, 5)


def test_pool_stores_detached_copies():
    pool = ImagePool(2)
    fake = torch.ones(1, 1, 2, 2, requires_grad=True) * 3
    out = pool.query(fake)
    assert not out.requires_grad
    assert not pool.images[0].requires_grad
    out.zero_()  # changing what it returned does not touch the pool
    assert torch.all(pool.images[0] == 3)


def test_pool_full_returns_old_about_half_the_time():
    size = 10
    pool = ImagePool(size, seed=1234)
    pool.query(_tagged(*range(size)))
    old, tag = 0, size
    for _ in range(1000):
        stored = [_tags(i[None])[0] for i in pool.images]
        (got,) = _tags(pool.query(_tagged(tag)))
        after = [_tags(i[None])[0] for i in pool.images]
        assert len(after) == size
        if got == tag:  # the new image, pool unchanged
            assert after == stored
        else:  # a stored one, replaced in place by the new image
            assert got in stored
            j = stored.index(got)
            assert after == stored[:j] + [tag] + stored[j + 1 :]
            old += 1
        tag += 1
    assert 350 <= old <= 650


def test_pool_batches_query_per_image():
    pool = ImagePool(5, seed=0)
    for start in range(0, 200, 4):
        batch = list(range(start, start + 4))
        before = {_tags(i[None])[0] for i in pool.images}
        out = _tags(pool.query(_tagged(*batch)))
        assert len(out) == 4
        for k, got in enumerate(out):
            # the new image, an image stored before, or an earlier image of this same batch
            assert got == batch[k] or got in before or got in batch[:k]
    assert len(pool.images) == 5


def test_pool_state_round_trip():
    pool = ImagePool(6, seed=7)
    for t in range(20):
        pool.query(_tagged(t))
    state = pool.state_dict()
    clone = ImagePool(6, seed=999)
    clone.load_state_dict(state)
    seq_a, seq_b = [], []
    for t in range(20, 120):
        seq_a += _tags(pool.query(_tagged(t, t + 0.5)))
        seq_b += _tags(clone.query(_tagged(t, t + 0.5)))
    assert seq_a == seq_b
    assert any(x < 20 for x in seq_a)  # the restored contents do come back
    assert all(torch.equal(x, y) for x, y in zip(pool.images, clone.images))


def test_pool_state_survives_torch_save(tmp_path):
    pool = ImagePool(3, seed=2)
    pool.query(_tagged(1, 2, 3, 4))
    torch.save(pool.state_dict(), tmp_path / "pool.pt")
    clone = ImagePool(3)
    clone.load_state_dict(torch.load(tmp_path / "pool.pt", weights_only=True))
    for t in range(10, 30):
        assert _tags(pool.query(_tagged(t))) == _tags(clone.query(_tagged(t)))


def test_pool_seed_matters_and_global_rng_untouched():
    def run(seed):
        pool = ImagePool(4, seed=seed)
        return [_tags(pool.query(_tagged(t)))[0] for t in range(60)]

    torch.manual_seed(0)
    state = torch.get_rng_state()
    first = run(1)
    assert torch.equal(torch.get_rng_state(), state)
    assert run(1) == first
    assert run(2) != first


# --------------------------------------------------------------------------------------------
# optimizers


def _params():
    return [torch.nn.Parameter(torch.zeros(3))]


def test_adam_defaults():
    opt = adam(_params())
    assert isinstance(opt, torch.optim.Adam)
    assert opt.defaults["lr"] == 2e-4
    assert opt.defaults["betas"] == (0.5, 0.999)
    assert opt.defaults["weight_decay"] == 0.0
    assert adam(_params(), lr=1e-3, betas=[0.9, 0.99]).defaults["betas"] == (0.9, 0.99)  # lists from a recipe


@pytest.mark.parametrize("factory", [adam, adamw])
def test_adam_is_fused_by_default_and_takes_the_same_steps(factory):
    torch.manual_seed(0)
    start, grads = torch.randn(50), [torch.randn(50) for _ in range(5)]
    results = {}
    for kind, kwargs in {"fused": {}, "loop": {"fused": False}, "foreach": {"foreach": True}}.items():
        p = torch.nn.Parameter(start.clone())
        opt = factory([p], lr=0.1, **kwargs)
        assert bool(opt.defaults["fused"]) is (kind == "fused") and bool(opt.defaults["foreach"]) is (kind == "foreach")
        for g in grads:
            p.grad = g.clone()
            opt.step()
        results[kind] = p.detach()
    assert not torch.equal(results["fused"], start)
    torch.testing.assert_close(results["fused"], results["loop"], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(results["foreach"], results["loop"], rtol=1e-6, atol=1e-7)


def test_adam_takes_param_groups_and_generators():
    groups = [{"params": _params(), "lr": 1e-3}, {"params": iter(_params() + _params())}]  # read once
    opt = adam(groups)
    assert opt.defaults["fused"] is True and [len(g["params"]) for g in opt.param_groups] == [1, 2]
    assert adamw(iter(_params())).param_groups[0]["params"][0].shape == (3,)
    assert adam(_params(), foreach=False).defaults["fused"] is None  # the per-parameter loop, as asked


def test_other_optimizers():
    opt = adamw(_params())
    assert isinstance(opt, torch.optim.AdamW) and opt.defaults["betas"] == (0.5, 0.999)
    assert opt.defaults["weight_decay"] == 0.01
    opt = sgd(_params(), lr=0.1, momentum=0.9)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9


# --------------------------------------------------------------------------------------------
# schedules: stepped once per epoch; "after e steps" is the LR of epoch e + 1 (counting from 1)


def _lrs(make_scheduler, epochs: int, lr: float = LR) -> list[float]:
    """LR after stepping the scheduler e times, for e = 0..epochs-1."""
    opt = adam(_params(), lr=lr)
    sched = make_scheduler(opt)
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_linear_schedule_reference_values():
    lrs = _lrs(lambda o: linear(o, n_epochs=100, n_epochs_decay=100), 200)
    # hand-computed: 2e-4 * (1 - max(0, e + 1 - 100) / 101)
    assert lrs[0] == pytest.approx(2e-4, rel=1e-12)
    assert lrs[99] == pytest.approx(2e-4, rel=1e-12)
    assert lrs[100] == pytest.approx(2e-4 * 100 / 101, rel=1e-12)
    assert lrs[150] == pytest.approx(2e-4 * 50 / 101, rel=1e-12)
    assert lrs[199] == pytest.approx(2e-4 * 1 / 101, rel=1e-12)
    for e, lr in enumerate(lrs):
        assert lr == pytest.approx(2e-4 * (1 - max(0, e + 1 - 100) / 101), rel=1e-12)
    assert all(lr > 0 for lr in lrs)
    assert lrs[:100] == [lrs[0]] * 100  # constant for n_epochs
    assert all(a > b for a, b in zip(lrs[100:], lrs[101:]))  # then strictly decreasing


def test_linear_schedule_epoch_count():
    # starting from epoch 51 (a resume with the reference's --epoch_count 51)
    lrs = _lrs(lambda o: linear(o, n_epochs=100, n_epochs_decay=100, epoch_count=51), 150)
    assert lrs[49] == pytest.approx(2e-4)
    assert lrs[50] == pytest.approx(2e-4 * 100 / 101)
    assert lrs[149] == pytest.approx(2e-4 / 101)


def test_step_schedule():
    lrs = _lrs(lambda o: step(o, step_size=50, gamma=0.1), 151)
    assert lrs[0] == pytest.approx(2e-4)
    assert lrs[49] == pytest.approx(2e-4)
    assert lrs[50] == pytest.approx(2e-5)
    assert lrs[99] == pytest.approx(2e-5)
    assert lrs[100] == pytest.approx(2e-6)
    assert lrs[150] == pytest.approx(2e-7)


def test_cosine_schedule():
    t_max, eta_min = 100, 1e-6
    lrs = _lrs(lambda o: cosine(o, t_max=t_max, eta_min=eta_min), 101)
    assert lrs[0] == pytest.approx(2e-4)
    assert lrs[50] == pytest.approx((2e-4 + 1e-6) / 2, rel=1e-6)  # half way: the mean
    assert lrs[25] == pytest.approx(1e-6 + (2e-4 - 1e-6) * (1 + math.cos(math.pi / 4)) / 2, rel=1e-6)
    assert lrs[100] == pytest.approx(1e-6, rel=1e-6)  # reaches eta_min at t_max
    lrs = _lrs(lambda o: cosine(o), 201)  # defaults: t_max 200, eta_min 0
    assert lrs[100] == pytest.approx(1e-4, rel=1e-6)
    assert lrs[200] == pytest.approx(0.0, abs=1e-12)


def test_plateau_schedule():
    opt = adam(_params())
    sched = plateau(opt, patience=5)  # factor 0.2, threshold 0.01 (relative)
    sched.step(1.0)  # the first value is the best so far
    for _ in range(5):  # patience non-improving steps: no change yet
        sched.step(1.0)
        assert opt.param_groups[0]["lr"] == pytest.approx(2e-4)
    sched.step(0.995)  # the sixth (patience + 1): less than 1% better does not count
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.2)
    # a real improvement resets the count
    sched.step(0.5)
    for _ in range(5):
        sched.step(0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.2)
    sched.step(0.5)
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-4 * 0.04)


def test_plateau_improving_keeps_lr():
    opt = adam(_params())
    sched = plateau(opt, patience=2)
    loss = 1.0
    for _ in range(20):
        loss *= 0.9
        sched.step(loss)
    assert opt.param_groups[0]["lr"] == pytest.approx(2e-4)


def test_constant_schedule():
    lrs = _lrs(constant, 30)
    assert lrs == [2e-4] * 30


def test_schedulers_are_registered():
    from unpaired_plugins import optim

    kinds = {(c.kind, c.name) for c in optim.unpaired_components()}
    for name in ("linear", "step", "plateau", "cosine", "constant"):
        assert ("scheduler", name) in kinds
    for name in ("adam", "adamw", "sgd"):
        assert ("optimizer", name) in kinds
