"""Errors users see: one checked device setting for every command, plugin bugs with their
traceback and recipe mistakes in one line, and the full traceback on request."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import traceback
from pathlib import Path

import pytest
import torch

from conftest import TINY
from unpaired.cli import main
from unpaired.runs.import_reference import import_reference
from unpaired_plugins.networks.resnet import ResnetGenerator

PLUGIN = '''\
from torch import nn

from unpaired import Component, hookimpl


class Buggy(nn.Module):
    def __init__(self, in_channels=1, out_channels=1):
        super().__init__()
        self.scale = 1 / 0


class Typo(nn.Module):
    def __init__(self, in_channels=1, out_channels=1):
        super().__init__()
        self.conv = make_conv(in_channels, out_channels)


class Picky(nn.Module):
    def __init__(self, in_channels=1, out_channels=1, ngf=7):
        super().__init__()
        if ngf % 2:
            raise ValueError(f"ngf must be even, got {ngf}.")


class Needy(nn.Module):
    def __init__(self, path, in_channels=1, out_channels=1):
        super().__init__()


@hookimpl
def unpaired_components():
    return [Component("generator", "buggy", Buggy), Component("generator", "typo", Typo),
            Component("generator", "picky", Picky), Component("generator", "needy", Needy)]
'''


@pytest.fixture
def plugin_recipe(tmp_path):
    """``plugin_recipe(network)``: the tiny fashion recipe whose G_AB is a network of the plugin above."""
    (tmp_path / "my_gans.py").write_text(PLUGIN)

    def make(network: str) -> list[str]:
        recipe = tmp_path / f"{network}.yaml"
        recipe.write_text(textwrap.dedent(f"""\
            base: cyclegan-fashion
            plugins: [my_gans]
            networks:
              G_AB: {{type: {network}, args: {{in_channels: 1, out_channels: 1}}}}
            """))
        tiny = [o for o in TINY if not o.startswith("networks.G_AB.")]
        return ["train", str(recipe), *tiny, f"out_dir={tmp_path / network}"]

    return make


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> str:
    """A run to translate with: a test model in the authors' layout, imported."""
    folder = tmp_path_factory.mktemp("reference")
    torch.save(ResnetGenerator(3, 3, ngf=4, n_blocks=1).state_dict(), folder / "latest_net_G.pth")
    return str(import_reference(folder, folder / "run").run)


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err.strip()


def test_the_references_cpu_idiom_is_refused_in_one_line(run, capsys):
    assert main(["translate", run, "--device", "-1"]) == 2
    assert one_line_error(capsys) == ("error: --device: '-1' is the reference's gpu_ids setting, not a device name; "
                                      "use --device cpu (valid: auto, cpu, cuda or cuda:N).")
    assert main(["evaluate", run, "--device", "0"]) == 2
    assert "use --device cuda:0" in one_line_error(capsys)


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has a cuda:7")
def test_a_missing_gpu_is_refused_in_one_line(run, capsys):
    assert main(["translate", run, "--device", "cuda:7"]) == 2
    err = one_line_error(capsys)
    assert err.startswith("error: --device: 'cuda:7' asked for, but ")
    assert err.endswith("CUDA is not available here; use --device cpu or auto." if not torch.cuda.is_available()
                        else f"has {torch.cuda.device_count()} CUDA device(s), cuda:0 to "
                             f"cuda:{torch.cuda.device_count() - 1}; use one of them, or auto.")


def test_an_option_given_twice_is_refused(capsys, tmp_path):
    """argparse keeps the last: demo.sh --out X trained into X while the script went on with its own
    folder, and failed there after the training."""
    code = main(["train", "cyclegan-fashion", "--out", str(tmp_path / "a"), "--out", str(tmp_path / "b")])
    assert code == 2 and not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert "--out is given twice" in capsys.readouterr().err


def test_ablate_checks_its_device_before_training(capsys):
    assert main(["ablate", "cyclegan-fashion", "--device", "gpu"]) == 2
    assert one_line_error(capsys) == "error: --device: 'gpu' is not a device; use auto, cpu, cuda or cuda:N."


@pytest.mark.parametrize("device, message", [
    ("gpu", "device: 'gpu' is not a device; use auto, cpu, cuda or cuda:N."),
    ("-1", "device: '-1' is the reference's gpu_ids setting, not a device name; use device=cpu"),
])
def test_the_recipe_device_is_checked_the_same_way(capsys, device, message):
    assert main(["train", "cyclegan-fashion", f"device={device}"]) == 2
    assert one_line_error(capsys).startswith(f"error: recipe: {message}")


@pytest.mark.parametrize("network, error, line", [
    ("buggy", ZeroDivisionError, "self.scale = 1 / 0"),
    ("typo", NameError, "self.conv = make_conv(in_channels, out_channels)"),
])
def test_a_bug_in_a_plugin_keeps_its_traceback(plugin_recipe, tmp_path, network, error, line):
    with pytest.raises(error) as caught:
        main(plugin_recipe(network))
    shown = "".join(traceback.format_exception(caught.value))
    frame = traceback.extract_tb(caught.value.__traceback__)[-1]
    assert Path(frame.filename) == tmp_path / "my_gans.py" and frame.line == line
    assert (f"networks.G_AB: raised inside generator plugin '{network}' (my_gans); the traceback shows where. Unless "
            "a value in networks.G_AB.args is of a kind the plugin cannot take, this is a bug in the plugin.") in shown


@pytest.mark.subprocess
def test_the_command_prints_a_plugin_bug_with_file_and_line(plugin_recipe, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-m", "unpaired.cli", *plugin_recipe("buggy")], capture_output=True,
                          text=True, env=env, timeout=300)
    assert done.returncode == 1
    assert f'File "{tmp_path / "my_gans.py"}", line 9, in __init__' in done.stderr
    assert done.stderr.rstrip().endswith("this is a bug in the plugin.")
    assert "ZeroDivisionError: division by zero" in done.stderr


@pytest.mark.parametrize("network, message", [
    ("picky", "error: networks.G_AB: ngf must be even, got 7."),
    ("needy", "error: networks.G_AB: Needy.__init__() missing 1 required positional argument: 'path'"),
])
def test_a_value_the_plugin_rejects_stays_one_line(plugin_recipe, capsys, network, message):
    assert main(plugin_recipe(network)) == 2
    assert one_line_error(capsys) == message


@pytest.mark.parametrize("how", ["env", "option"])
def test_the_full_traceback_on_request(monkeypatch, capsys, how):
    if how == "env":
        monkeypatch.setenv("UNPAIRED_TRACEBACK", "1")
    assert main((["--traceback"] if how == "option" else []) + ["train", "no-such-recipe"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):") and "in find_recipe" in err
    assert err.splitlines()[-1].startswith("error: recipe 'no-such-recipe' not found")


def test_ctrl_c_before_training_starts_is_one_line(monkeypatch, capsys):
    import unpaired.recipe.load

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(unpaired.recipe.load, "load_recipe", interrupted)  # Ctrl-C while the recipe loads
    assert main(["train", "cyclegan-fashion"]) == 130
    assert capsys.readouterr().err == "interrupted.\n"
