"""Packaging: the wheel built from pyproject.toml holds the core, the built-in plugins (with the
embedded Fashion-MNIST subset) and every recipe, and gives a working ``unpaired`` command in a
fresh environment that sees neither the source tree nor the editable install.

The fresh environment reuses this environment's dependencies (torch, ...) through a ``.pth`` file
holding only the path of this environment's site-packages: a path line adds the directory to
``sys.path``, but the ``.pth`` files inside it (the editable install's finder among them) are not
processed, so ``unpaired`` can only come from the wheel. ``test_fresh_env_imports_the_wheel``
checks exactly that.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

import unpaired
from conftest import TINY, run_parallel

REPO = Path(__file__).resolve().parents[1]
#: Not part of a build: environments, VCS data, build leftovers, and run outputs (the top-level
#: runs/, not the package's unpaired/runs/).
_LEFTOVERS = shutil.ignore_patterns(".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                    ".whl")


def NOT_SOURCE(folder: str, names: list[str]) -> set[str]:
    return set(_LEFTOVERS(folder, names)) | ({"runs"} if Path(folder) == REPO else set())
TIMEOUT = 240


def run(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=TIMEOUT, **kw)


def explain(proc) -> str:
    return f"command {proc.args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel built from a clean copy of the repository.

    Built from a copy so that a stale ``build/lib`` cannot leak files into the wheel (setuptools
    never cleans it) and the shared checkout gets no ``build/`` of its own.
    """
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(REPO, src, ignore=NOT_SOURCE)
    out = tmp / "dist"
    proc = run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                "-w", out, src])
    if proc.returncode != 0:
        pytest.fail("cannot build the wheel from pyproject.toml (the build needs setuptools>=68 "
                    "in this environment, see the 'test' extras):\n" + explain(proc), pytrace=False)
    wheels = sorted(out.glob("unpaired-*.whl"))
    assert len(wheels) == 1, f"expected one unpaired wheel in {out}, found {wheels}"
    return wheels[0]


@pytest.fixture(scope="module")
def fresh(tmp_path_factory, wheel) -> Path:
    """A new virtual environment with the wheel installed; its dependencies come from ours."""
    env = tmp_path_factory.mktemp("fresh") / "venv"
    base = getattr(sys, "_base_executable", None) or sys.executable
    # Without pip of its own (saves ~6 s): pip, like torch, comes from our site-packages.
    proc = run([base, "-m", "venv", "--without-pip", env])
    assert proc.returncode == 0, explain(proc)
    python = env / "bin" / "python"
    proc = run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    assert proc.returncode == 0, explain(proc)
    site = Path(proc.stdout.strip())
    assert site.is_relative_to(env), site
    (site / "_unpaired_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    # --ignore-installed: pip sees our editable `unpaired` through the .pth and must not try to
    # uninstall it.
    proc = run([python, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                "--disable-pip-version-check", wheel], env=clean_env())
    assert proc.returncode == 0, explain(proc)
    assert (env / "bin" / "unpaired").is_file(), "the wheel installed no 'unpaired' command"
    return env


def clean_env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    return env


# -- the wheel's contents -----------------------------------------------------------------------
def dist_info(wheel: Path) -> str:
    name, version = wheel.name.split("-")[:2]
    return f"{name}-{version}.dist-info"


@pytest.mark.subprocess
def test_wheel_holds_core_plugins_data_and_every_recipe(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {"unpaired_plugins/datasets/data/fashion_sneaker_boot.npz"}
    sources = [("unpaired", REPO / "unpaired", "*.py"), ("unpaired_plugins", REPO / "plugins", "*.py"),
               ("unpaired_recipes", REPO / "recipes", "*.py"), ("unpaired_recipes", REPO / "recipes", "*.yaml")]
    for package, folder, pattern in sources:
        files = [f for f in folder.rglob(pattern) if "__pycache__" not in f.parts]
        assert files, f"no {pattern} in {folder}"
        expected |= {f"{package}/{f.relative_to(folder).as_posix()}" for f in files}
    recipes = {n for n in expected if n.startswith("unpaired_recipes/") and n.endswith(".yaml")}
    assert {"unpaired_recipes/cyclegan.yaml", "unpaired_recipes/cyclegan-fashion.yaml",
            "unpaired_recipes/ablations/gan-alone.yaml"} <= recipes
    missing = sorted(expected - names)
    assert not missing, (f"{wheel.name} lacks {missing}; list the package in [tool.setuptools] "
                         "packages or the data in [tool.setuptools.package-data]")
    top = {n.split("/")[0] for n in names}
    assert top == {"unpaired", "unpaired_plugins", "unpaired_recipes", dist_info(wheel)}, top


@pytest.mark.subprocess
def test_wheel_declares_the_command_and_every_entry_point_resolves(wheel):
    zf = zipfile.ZipFile(wheel)
    names = set(zf.namelist())
    eps = configparser.ConfigParser()
    eps.read_string(zf.read(f"{dist_info(wheel)}/entry_points.txt").decode())
    assert eps["console_scripts"]["unpaired"].strip() == "unpaired.cli:main"
    plugins = dict(eps["unpaired"])
    assert {"resnet", "consistency", "datasets"} <= plugins.keys()
    for name, module in plugins.items():
        path = module.strip().replace(".", "/")
        assert {f"{path}.py", f"{path}/__init__.py"} & names, f"entry point {name} = {module}: not in the wheel"


# -- the installed command in a fresh environment -----------------------------------------------
@pytest.fixture(scope="module")
def cli(fresh, tmp_path_factory):
    """Every command run once, concurrently (each spends ~8 s importing torch), from a folder
    outside the repository: {label: CompletedProcess}."""
    work = tmp_path_factory.mktemp("cwd")
    assert not work.resolve().is_relative_to(REPO)
    bin_ = fresh / "bin"
    # find_spec locates the packages without running them (fast); meta_path and sys.modules at
    # start-up would show the editable install's finder had its .pth been processed.
    where = ("import importlib.util as u, json, sys; "
             "print(json.dumps({'files': [u.find_spec(m).origin for m in "
             "('unpaired', 'unpaired_plugins', 'unpaired_recipes')], "
             "'meta_path': [repr(f) for f in sys.meta_path], "
             "'editable': [m for m in sys.modules if 'editable' in m.lower()]}))")
    commands = {
        "where": [bin_ / "python", "-c", where],
        "show": [bin_ / "unpaired", "recipe", "show", "cyclegan"],
        "show_ablation": [bin_ / "unpaired", "recipe", "show", "ablations/gan-alone"],
        "plugins": [bin_ / "unpaired", "plugins"],
        "train": [bin_ / "unpaired", "train", "cyclegan-fashion", "--out", work / "run", *TINY,
                  "train.max_iterations=3"],
    }
    results = run_parallel(commands, work, clean_env(), TIMEOUT)
    results["run_dir"] = work / "run"
    return results


@pytest.mark.subprocess
def test_fresh_env_imports_the_wheel(cli, fresh):
    proc = cli["where"]
    assert proc.returncode == 0, explain(proc)
    info = json.loads(proc.stdout)
    site = fresh.resolve()
    for file in info["files"]:
        assert Path(file).resolve().is_relative_to(site), f"{file} is not from the fresh environment {site}"
        assert not Path(file).resolve().is_relative_to(REPO), file
    assert not info["editable"], info["editable"]
    assert not any("editable" in f.lower() for f in info["meta_path"]), info["meta_path"]


@pytest.mark.subprocess
def test_recipe_show_cyclegan(cli):
    proc = cli["show"]
    assert proc.returncode == 0, explain(proc)
    assert "resnet_9blocks" in proc.stdout
    assert "n_epochs_decay: 100" in proc.stdout


@pytest.mark.subprocess
def test_recipe_show_ablation(cli):
    proc = cli["show_ablation"]
    assert proc.returncode == 0, explain(proc)
    assert "name: ablation-gan-alone" in proc.stdout
    assert "cycle_A" not in proc.stdout and "cycle_B" not in proc.stdout  # removed by the ablation


@pytest.mark.subprocess
def test_plugins_lists_the_builtins(cli):
    proc = cli["plugins"]
    assert proc.returncode == 0, explain(proc)
    lines = proc.stdout.splitlines()
    resnet = [line for line in lines if line.split()[:1] == ["resnet_9blocks"]]
    assert resnet, proc.stdout
    assert f"unpaired {unpaired.__version__} (resnet)" in resnet[0]
    for name in ("l1", "lsgan", "fashion_mnist"):
        assert any(line.split()[:1] == [name] for line in lines), f"{name} missing:\n{proc.stdout}"


@pytest.mark.subprocess
def test_train_the_demo_a_few_steps(cli):
    proc = cli["train"]
    assert proc.returncode == 0, explain(proc)
    run_dir = cli["run_dir"]
    checkpoints = list((run_dir / "checkpoints").glob("iter_*/weights.safetensors"))
    assert checkpoints, f"no checkpoint under {run_dir / 'checkpoints'}:\n{explain(proc)}"
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    assert records, "log.jsonl is empty"
    assert max(r["iteration"] for r in records) == 3  # train.max_iterations
    assert "generators/cycle_A" in records[-1]
