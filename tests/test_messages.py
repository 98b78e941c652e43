"""Golden messages: a few one-line errors, word for word, because their wording is a product
feature (what a user reads first). Every other test asserts an error's fields (``key``, ``code``)
and the facts it names, not its prose."""

from __future__ import annotations

import pytest
import torch

from unpaired import RecipeError
from unpaired.cli import main
from unpaired.recipe.load import load_recipe
from unpaired.recipe.validate import validate
from unpaired.runtime.device import pick_device
from unpaired.plugin.registry import default_registry


def test_an_unknown_plugin_names_the_closest_and_the_known_ones():
    [problem] = validate(load_recipe("cyclegan-fashion", ["networks.D_A.type=n_layer"]))
    known = ", ".join(default_registry().names("discriminator"))
    assert problem == (f"networks.D_A: unknown discriminator 'n_layer'. Did you mean 'n_layers'? Known discriminator "
                       f"names: {known}.")


def test_an_unknown_argument_names_the_closest_and_how_to_drop_it():
    with pytest.raises(RecipeError) as err:
        default_registry().create("generator", "resnet_9blocks", where="networks.G", ngff=3)
    assert str(err.value) == (
        "networks.G.args.ngff: unknown argument. Did you mean 'ngf'? Accepted: in_channels, out_channels, ngf, norm, "
        "dropout, padding_type, antialias, antialias_up. (If a base recipe set it for another type, drop it with "
        "networks.G.args.ngff=null.)")


def test_every_argument_another_plugin_type_does_not_take_is_named_at_once():
    # a dataset switched on the command line keeps the base's args: all three, not one per attempt
    problems = validate(load_recipe("cyclegan-fashion", ["data.dataset=unaligned_folder", "data.args.root=/tmp"]))
    assert [(p.key, p.code) for p in problems] == [(f"data.args.{k}", "unknown-argument")
                                                   for k in ("source", "class_A", "class_B")]


def test_the_reference_gpu_ids_idiom_is_translated():
    with pytest.raises(RecipeError) as err:
        pick_device("-1")
    assert str(err.value) == ("device: '-1' is the reference's gpu_ids setting, not a device name; use device=cpu "
                              "(valid: auto, cpu, cuda or cuda:N).")


def test_an_override_without_a_value(capsys):
    assert main(["train", "cyclegan-fashion", "train.epochs"]) == 2
    assert capsys.readouterr().err == ("error: command-line override 'train.epochs': write overrides as key=value "
                                       "(null deletes an entry).\n")


def test_fp16_on_the_cpu(capsys):
    if torch.cuda.is_available():
        pytest.skip("fp16 is allowed where CUDA is")
    assert main(["recipe", "check", "cyclegan-fashion", "train.precision=fp16", "device=cpu"]) == 1
    assert capsys.readouterr().out == ("  - train.precision: fp16 needs CUDA; use bf16 on the CPU.\n"
                                       "cyclegan-fashion: 1 problem(s)\n")


MAP_L1 = """
from torch import nn
from unpaired import Component, hookimpl


class MapL1(nn.Module):
    def forward(self, input, target):
        return (input - target).abs()  # not reduced


@hookimpl
def unpaired_components():
    return [Component("consistency_loss", "map_l1", MapL1)]
"""


def test_a_loss_that_does_not_reduce(tmp_path, capsys):
    (tmp_path / "map_l1.py").write_text(MAP_L1)
    (tmp_path / "r.yaml").write_text("base: cyclegan-fashion\nplugins: [map_l1]\ndevice: cpu\n")
    assert main(["recipe", "check", str(tmp_path / "r.yaml"), "steps.generators.losses.cycle_A.consistency=map_l1"]) == 1
    assert capsys.readouterr().out.splitlines()[0] == (
        "  - steps.generators.losses.cycle_A: the loss returned a tensor of shape (8, 1, 28, 28) and type "
        "torch.float32, not a scalar floating tensor; its plugin must reduce (e.g. .mean()).")
