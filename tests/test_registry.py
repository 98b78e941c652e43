"""The plugin registry: entry-point discovery, duplicates, unknown names, run-time plugins."""

from __future__ import annotations

import sys
import types
from importlib.metadata import entry_points

import pytest

import unpaired
from torch import nn

from unpaired import Component, RecipeError, Registry, hookimpl

from conftest import raises


def plugin(*components, name="fake_plugin"):
    mod = types.ModuleType(name)

    @hookimpl
    def unpaired_components():
        return list(components)

    mod.unpaired_components = unpaired_components
    return mod


def test_builtins_arrive_through_the_entry_point_group():
    eps = {ep.value for ep in entry_points(group="unpaired")}
    assert "unpaired_plugins.networks.resnet" in eps and "unpaired_plugins.losses.consistency" in eps
    reg = Registry()
    comp = reg.get("generator", "resnet_9blocks")
    assert comp.provider == f"unpaired {unpaired.__version__} (resnet)"
    assert {"lsgan", "bce", "hinge", "wgan_gp"} <= set(reg.names("adversarial_loss"))
    assert {"l1", "l2", "ssim", "perceptual"} <= set(reg.names("consistency_loss"))
    assert {"unaligned_folder", "fashion_mnist"} <= set(reg.names("dataset"))
    assert reg.names("generator", "unet*") == ["unet", "unet_128", "unet_256"]


def test_no_entry_points_means_no_components():
    reg = Registry(entry_points=False)
    assert reg.components() == []


def test_duplicate_kind_and_name_fails_only_where_used_and_names_both_plugins():
    reg = Registry()
    reg.register_plugin(plugin(Component("generator", "resnet_9blocks", nn.Identity), name="my_gans"))
    assert reg.get("generator", "resnet_6blocks")  # the other components still work
    assert reg.clashes() == {("generator", "resnet_9blocks"): [reg.get("generator", "resnet_6blocks").provider,
                                                               "my_gans"]}
    with pytest.raises(RecipeError) as err:
        reg.get("generator", "resnet_9blocks", "networks.G_AB")
    assert (err.value.key, err.value.code) == ("networks.G_AB", "clash")
    assert f"by unpaired {unpaired.__version__} (resnet) and by my_gans" in str(err.value)


def test_same_name_in_another_kind_is_fine():
    reg = Registry()
    reg.register_plugin(plugin(Component("consistency_loss", "basic", nn.L1Loss)))
    assert reg.get("consistency_loss", "basic").factory is nn.L1Loss


def test_unknown_name_lists_known_names_and_the_closest():
    reg = Registry()
    with pytest.raises(RecipeError) as err:
        reg.get("adversarial_loss", "lsgam", where="steps.g.losses.gan")
    msg = str(err.value)
    assert msg.startswith("steps.g.losses.gan: unknown adversarial_loss 'lsgam'. Did you mean 'lsgan'?")
    assert "Known adversarial_loss names: bce, hinge, lsgan, wgan_gp." in msg


def test_unknown_kind_in_a_plugin_is_an_error():
    with raises(RecipeError, "unknown-kind", says=("'generatr'",)):
        Registry(entry_points=False).register_plugin(plugin(Component("generatr", "x", nn.Identity)))


def test_create_checks_arguments_with_a_suggestion():
    reg = Registry()
    with raises(RecipeError, "unknown-argument", key="networks.G.args.ngff", says=("'ngf'",)):
        reg.create("generator", "resnet_9blocks", where="networks.G", ngff=3)
    net = reg.create("generator", "resnet_6blocks", ngf=4)
    assert sum(p.numel() for p in net.parameters()) > 0


def test_run_time_plugin_by_module_path(monkeypatch):
    mod = plugin(Component("consistency_loss", "charbonnier", nn.SmoothL1Loss, "Charbonnier-like loss."), name="my_losses")
    monkeypatch.setitem(sys.modules, "my_losses", mod)
    reg = Registry()
    reg.register_plugin("my_losses")
    comp = reg.get("consistency_loss", "charbonnier")
    assert comp.provider == "my_losses" and comp.summary == "Charbonnier-like loss."
    with raises(RecipeError, "no-module", key="plugins", says=("'no_such_module'",)):
        reg.register_plugin("no_such_module")


def test_plugins_command_lists_every_kind(capsys):
    from unpaired.cli import main

    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert not out.startswith("\n") and "\n\ndiscriminator:\n" in out  # kinds separated, not led, by a blank line
    for kind in ("generator:", "discriminator:", "adversarial_loss:", "consistency_loss:", "dataset:"):
        assert kind in out
    assert "resnet_9blocks" in out and f"unpaired {unpaired.__version__} (resnet)" in out
