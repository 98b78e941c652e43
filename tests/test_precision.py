"""The fast paths compute the same losses: bf16 autocast within bf16 rounding, channels_last exactly."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from unpaired.engine.executor import Executor as Trainer

from conftest import raises


def first_losses(recipe) -> dict[str, float]:
    trainer = Trainer(recipe)
    torch.manual_seed(0)
    batch = {k: torch.rand(4, 1, 28, 28) * 2 - 1 for k in ("real_A", "real_B")}
    return {k: v.item() for k, v in trainer.run_iteration(batch).items()}


def test_bf16_losses_match_fp32(tiny_recipe, device):
    fp32 = first_losses(tiny_recipe("train.precision=fp32", f"device={device}"))
    bf16 = first_losses(tiny_recipe("train.precision=bf16", f"device={device}"))
    assert fp32.keys() == bf16.keys() and len(fp32) == 8
    for key in fp32:  # bf16 keeps 8 bits of mantissa: ~0.4% per op; a few percent end to end
        assert bf16[key] == pytest.approx(fp32[key], rel=0.03), key
    assert any(bf16[k] != fp32[k] for k in fp32)  # autocast really ran in bf16


@pytest.mark.slow
def test_channels_last_matches_fp32(tiny_recipe, device):
    plain = first_losses(tiny_recipe(f"device={device}"))
    nhwc = first_losses(tiny_recipe("train.channels_last=true", f"device={device}"))
    for key in plain:
        assert nhwc[key] == pytest.approx(plain[key], rel=1e-5, abs=1e-6), key


@pytest.mark.cuda
def test_fp16_trains_with_the_gradient_scaler_on_cuda(tiny_recipe):
    """fp16 autocast with a gradient scaler per step: the first losses within fp16 rounding of
    fp32, and the scaler's scale stays finite over a few iterations."""
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device here")
    fp32 = first_losses(tiny_recipe("train.precision=fp32", "device=cuda"))
    fp16 = first_losses(tiny_recipe("train.precision=fp16", "device=cuda"))
    for key in fp32:
        assert fp16[key] == pytest.approx(fp32[key], rel=0.03), key
    ex = Trainer(tiny_recipe("train.precision=fp16", "device=cuda"))
    assert all(s.is_enabled() for s in ex.scalers.values())
    for i in range(4):
        values = ex.run_iteration({k: torch.rand(4, 1, 28, 28) * 2 - 1 for k in ("real_A", "real_B")}, i)
        assert all(torch.isfinite(v) for v in values.values())
    assert all(0 < s.get_scale() < float("inf") for s in ex.scalers.values())


@pytest.mark.slow
def test_compiled_batched_passes_match_eager(tiny_recipe):
    """torch.compile with batched passes (each generator called at batch 8 and 4): static shapes,
    the same losses as eager over two iterations (the second after an optimizer step)."""
    torch.manual_seed(0)
    batches = [{k: torch.rand(4, 1, 28, 28) * 2 - 1 for k in ("real_A", "real_B")} for _ in range(2)]
    losses = {}
    for compiled in (False, True):
        trainer = Trainer(tiny_recipe(f"train.compile={str(compiled).lower()}", "data.batch_size=4"))
        losses[compiled] = [{k: v.item() for k, v in trainer.run_iteration(b, i).items()} for i, b in enumerate(batches)]
    for eager, compiled in zip(losses[False], losses[True]):
        assert eager.keys() == compiled.keys()
        for key in eager:
            assert compiled[key] == pytest.approx(eager[key], rel=1e-4, abs=1e-6), key


def test_fp16_needs_cuda(tiny_recipe):
    if torch.cuda.is_available():
        pytest.skip("CUDA present: fp16 is allowed")
    from unpaired import RecipeError

    with raises(RecipeError, "needs-cuda", key="train.precision"):
        Trainer(tiny_recipe("train.precision=fp16"))


@pytest.mark.slow
def test_auto_precision_is_bf16_only_where_native(tiny_recipe, monkeypatch):
    from unpaired.runtime import device as build
    from unpaired.engine.executor import Executor

    monkeypatch.setattr(build, "native_bf16", lambda device: False)
    assert Executor(tiny_recipe("train.precision=auto")).precision == "fp32"
    monkeypatch.setattr(build, "native_bf16", lambda device: True)
    ex = Executor(tiny_recipe("train.precision=auto"))
    assert ex.precision == "bf16" and ex.autocast_dtype == torch.bfloat16
    assert build.resolve_precision("fp16", torch.device("cpu")) == "fp16"  # explicit choices are kept


@pytest.mark.subprocess
@pytest.mark.parametrize("preset", [None, "mine"])
def test_compiled_kernels_are_cached_in_the_user_cache(tmp_path, preset):
    """torch sets $TORCHINDUCTOR_CACHE_DIR to /tmp/torchinductor_<user> when torchvision imports
    its compiler; compile_cache moves it to ~/.cache/unpaired/inductor unless the user chose one."""
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    env.pop("TORCHINDUCTOR_CACHE_DIR", None)
    if preset:
        env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path / preset)
    code = ("import os, torchvision, unpaired.runtime.device as b; before = os.environ.get('TORCHINDUCTOR_CACHE_DIR'); "
            "print(before, b.compile_cache(), os.environ['TORCHINDUCTOR_CACHE_DIR'])")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    before, chosen, env_after = out.stdout.split()
    expected = str(tmp_path / preset) if preset else str(tmp_path / "unpaired" / "inductor")
    assert chosen == env_after == expected
    assert before != "None"  # torch set it on import: the case compile_cache must override
