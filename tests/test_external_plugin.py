"""A third-party plugin package (docs/examples/unpaired-extras): installed with pip, its
components are found through the ``unpaired`` entry-point group, listed with their provider, and
a recipe deriving from the built-in demo trains with them."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import unpaired
from conftest import run_parallel

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "docs" / "examples" / "unpaired-extras"
RECIPE = EXAMPLE / "charbonnier-fashion.yaml"
EXTRAS_VERSION = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]["version"]
#: The example recipe at toy size. Not conftest's TINY: that switches the generators to `resnet`.
SMALL = [
    "data.args.limit=32",
    "data.batch_size=4",
    "data.num_workers=0",
    "networks.D_A.args.ndf=8",
    "networks.D_B.args.ndf=8",
    "train.precision=fp32",
    "train.log_every=1",
    "train.sample_every=1000",
    "train.checkpoint_every=1000",
    "device=cpu",
    "train.max_iterations=3",
]
TIMEOUT = 240


def explain(proc) -> str:
    return f"command {proc.args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The example package pip-installed into a target folder (package + .dist-info).

    Installed from a copy so that the in-tree build leaves no build/ or egg-info in the repository.
    """
    tmp = tmp_path_factory.mktemp("extras")
    src = tmp / "unpaired-extras"
    shutil.copytree(EXAMPLE, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = tmp / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "--target", str(target), str(src)],
        capture_output=True, text=True, timeout=TIMEOUT,
    )
    assert proc.returncode == 0, explain(proc)
    assert (target / "unpaired_extras" / "__init__.py").is_file()
    assert list(target.glob("unpaired_extras-*.dist-info/entry_points.txt"))
    return target


@pytest.fixture(scope="module")
def cli(site, tmp_path_factory):
    """``unpaired plugins`` and a 3-step training run with the package on PYTHONPATH, run
    concurrently (each spends seconds importing torch) from a folder outside the repository:
    {label: CompletedProcess}."""
    work = tmp_path_factory.mktemp("cwd")
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    unpaired = [sys.executable, "-m", "unpaired.cli"]
    commands = {
        "plugins": [*unpaired, "plugins"],
        "train": [*unpaired, "train", str(RECIPE), "--out", str(work / "run"), *SMALL],
    }
    results = run_parallel(commands, work, env, TIMEOUT)
    results["run_dir"] = work / "run"
    return results


@pytest.fixture
def extras(site, monkeypatch):
    """The installed ``unpaired_extras`` module, imported from the target folder."""
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop("unpaired_extras", None)
    import unpaired_extras

    assert Path(unpaired_extras.__file__).resolve().is_relative_to(site.resolve())
    yield unpaired_extras
    for name in [m for m in sys.modules if m == "unpaired_extras" or m.startswith("unpaired_extras.")]:
        del sys.modules[name]


# -- the installed package through the command line ---------------------------------------------
def sections(output: str) -> dict[str, dict[str, str]]:
    """``unpaired plugins`` output as {kind: {name: rest of the line}}."""
    kinds: dict[str, dict[str, str]] = {}
    kind = None
    for line in output.splitlines():
        if line.strip() and not line.startswith(" ") and line.rstrip().endswith(":"):
            kind = kinds.setdefault(line.strip()[:-1], {})
        elif line.strip() and kind is not None:
            name, _, rest = line.strip().partition(" ")
            kind[name] = rest.strip()
    return kinds


@pytest.mark.subprocess
def test_plugins_lists_the_components_with_their_provider(cli):
    proc = cli["plugins"]
    assert proc.returncode == 0, explain(proc)
    kinds = sections(proc.stdout)
    losses, generators = kinds.get("consistency_loss", {}), kinds.get("generator", {})
    assert "charbonnier" in losses, proc.stdout
    assert "tiny_resnet" in generators, proc.stdout
    extras = f"unpaired-extras {EXTRAS_VERSION} (extras)"  # the example package's own version, from its pyproject
    assert losses["charbonnier"].startswith(extras) and generators["tiny_resnet"].startswith(extras)
    assert "Charbonnier" in losses["charbonnier"]  # the first docstring line
    # side by side with the built-ins
    assert losses["l1"].startswith(f"unpaired {unpaired.__version__}") and "resnet_9blocks" in generators


@pytest.mark.subprocess
def test_example_recipe_trains_with_the_plugins(cli):
    proc = cli["train"]
    assert proc.returncode == 0, explain(proc)
    run_dir = cli["run_dir"]
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    records = [r for r in records if not any(k.startswith("eval/") for k in r)]  # the loss records
    assert records, "log.jsonl is empty"
    assert max(r["iteration"] for r in records) == 3
    for term in ("generators/cycle_A", "generators/cycle_B"):
        values = [r[term] for r in records]
        assert len(values) == len(records), f"{term} missing from some records"
        # a Charbonnier term is >= eps and finite
        assert all(math.isfinite(v) and v >= 1e-3 for v in values), (term, values)

    # the run's resolved recipe uses both components, and the args the example restates
    resolved = (run_dir / "recipe.yaml").read_text()
    assert resolved.count("type: tiny_resnet") == 2
    assert resolved.count("consistency: charbonnier") == 2

    ckpts = sorted((run_dir / "checkpoints").glob("iter_*/weights.safetensors"))
    assert ckpts, f"no checkpoint under {run_dir / 'checkpoints'}"
    weights = load_file(str(ckpts[-1]))
    for net in ("G_AB", "G_BA"):
        keys = {k for k in weights if k.startswith(f"{net}.")}
        assert f"{net}.head.1.weight" in keys and f"{net}.tail.1.weight" in keys, sorted(keys)
        assert any(k.startswith(f"{net}.blocks.") for k in keys), sorted(keys)
        assert not any(k.startswith(f"{net}.model.") for k in keys), "a built-in resnet, not tiny_resnet"
        # the example's args: ngf 32, 1-channel images in and out, 4 blocks
        assert tuple(weights[f"{net}.head.1.weight"].shape) == (32, 1, 3, 3)
        assert tuple(weights[f"{net}.tail.1.weight"].shape) == (1, 32, 3, 3)
        assert {k.split(".")[2] for k in keys if k.startswith(f"{net}.blocks.")} == {"0", "1", "2", "3"}


# -- the components themselves (imported from the installed copy) -------------------------------
@pytest.mark.subprocess
def test_charbonnier_value_by_hand(extras):
    x = torch.tensor([0.5, 0.9, -0.2, 1.0]).view(1, 1, 2, 2)
    y = torch.tensor([0.5, 0.5, 0.2, 0.28]).view(1, 1, 2, 2)
    # differences 0, 0.4, -0.4, 0.72 with eps 0.3: sqrt(d^2 + 0.09) = 0.3, 0.5, 0.5, 0.78
    assert extras.CharbonnierLoss(eps=0.3)(x, y).item() == pytest.approx(2.08 / 4, abs=1e-6)
    # default eps 1e-3: identical images give eps; a difference of 2 gives sqrt(4 + 1e-6)
    loss = extras.CharbonnierLoss()
    assert loss(y, y).item() == pytest.approx(1e-3, rel=1e-5)
    ones = torch.ones(2, 3, 4, 4)
    assert loss(ones, -ones).item() == pytest.approx(math.sqrt(4 + 1e-6), abs=1e-6)


@pytest.mark.subprocess
def test_charbonnier_gradient_and_errors(extras):
    x = torch.zeros(1, 1, 2, 2, requires_grad=True)
    extras.CharbonnierLoss()(x, torch.zeros(1, 1, 2, 2)).backward()
    assert torch.isfinite(x.grad).all() and (x.grad == 0).all()  # smooth at zero, unlike L1
    with pytest.raises(ValueError, match=r"\(1, 1, 2, 2\).*\(1, 3, 2, 2\)"):
        extras.CharbonnierLoss()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 3, 2, 2))
    with pytest.raises(ValueError, match="eps"):
        extras.CharbonnierLoss(eps=0)


@pytest.mark.subprocess
def test_tiny_resnet_shapes_and_range(extras):
    torch.manual_seed(0)
    G = extras.TinyResnetGenerator(in_channels=1, out_channels=3, ngf=8, n_blocks=2)
    assert G.in_channels == 1 and G.size_divisor == 1
    x = torch.rand(2, 1, 13, 17) * 2 - 1  # any size: no down- or upsampling
    y = G(x)
    assert y.shape == (2, 3, 13, 17)
    assert y.min() >= -1 and y.max() <= 1
    with pytest.raises(ValueError, match=r"\(N, 1, H, W\)"):
        G(torch.zeros(1, 3, 8, 8))
    defaults = extras.TinyResnetGenerator()
    assert defaults.in_channels == 3 and len(defaults.blocks) == 2


@pytest.mark.subprocess
def test_hookimpl_registers_both_components(extras):
    from unpaired import Registry

    reg = Registry(entry_points=False)
    reg.register_plugin(extras)
    assert reg.names("consistency_loss") == ["charbonnier"]
    assert reg.names("generator") == ["tiny_resnet"]
    assert reg.create("consistency_loss", "charbonnier", eps=0.01).eps == 0.01
