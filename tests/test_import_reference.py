"""unpaired import-reference: the authors' CycleGAN .pth files as a run (translate, train from it).

The authors' networks are defined here as their pytorch-CycleGAN-and-pix2pix ``models/networks.py``
writes them (``ResnetGenerator``, ``ResnetBlock``, ``NLayerDiscriminator``), so the files saved
below have their exact key layout; small sizes keep the tests fast.
"""

from __future__ import annotations

import functools
import json

import pytest
import torch
from omegaconf import OmegaConf
from torch import nn
from torchvision.io import write_png
from torchvision.transforms import v2

from unpaired import hookimpl
from unpaired.runs import checkpoint
from unpaired.cli import main
from unpaired.data.io import read_image, to_uint8
from unpaired.errors import CheckpointError
from unpaired.runs.import_reference import OUR_NAME, generator_spec, import_reference
from unpaired.inference.translator import Translator, load_networks
from unpaired.recipe.resolved import resolve
from unpaired.recipe.load import from_yaml, load_recipe
from unpaired.recipe.validate import validate
from unpaired.loop.trainer import Trainer

from conftest import raises


# -- the authors' architecture (models/networks.py), layer for layer ---------------------------------
class ResnetBlock(nn.Module):
    def __init__(self, dim, padding_type, norm_layer, use_dropout, use_bias):
        super().__init__()
        conv_block = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
                      norm_layer(dim), nn.ReLU(True)]
        if use_dropout:
            conv_block += [nn.Dropout(0.5)]
        conv_block += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, kernel_size=3, padding=0, bias=use_bias),
                       norm_layer(dim)]
        self.conv_block = nn.Sequential(*conv_block)

    def forward(self, x):
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    def __init__(self, input_nc, output_nc, ngf=64, norm_layer=nn.BatchNorm2d, use_dropout=False, n_blocks=6,
                 padding_type="reflect"):
        super().__init__()
        use_bias = norm_layer.func == nn.InstanceNorm2d if isinstance(norm_layer, functools.partial) \
            else norm_layer == nn.InstanceNorm2d
        model = [nn.ReflectionPad2d(3), nn.Conv2d(input_nc, ngf, kernel_size=7, padding=0, bias=use_bias),
                 norm_layer(ngf), nn.ReLU(True)]
        n_downsampling = 2
        for i in range(n_downsampling):
            mult = 2 ** i
            model += [nn.Conv2d(ngf * mult, ngf * mult * 2, kernel_size=3, stride=2, padding=1, bias=use_bias),
                      norm_layer(ngf * mult * 2), nn.ReLU(True)]
        mult = 2 ** n_downsampling
        for i in range(n_blocks):
            model += [ResnetBlock(ngf * mult, padding_type=padding_type, norm_layer=norm_layer,
                                  use_dropout=use_dropout, use_bias=use_bias)]
        for i in range(n_downsampling):
            mult = 2 ** (n_downsampling - i)
            model += [nn.ConvTranspose2d(ngf * mult, int(ngf * mult / 2), kernel_size=3, stride=2, padding=1,
                                         output_padding=1, bias=use_bias),
                      norm_layer(int(ngf * mult / 2)), nn.ReLU(True)]
        model += [nn.ReflectionPad2d(3)]
        model += [nn.Conv2d(ngf, output_nc, kernel_size=7, padding=0)]
        model += [nn.Tanh()]
        self.model = nn.Sequential(*model)

    def forward(self, input):
        return self.model(input)


class NLayerDiscriminator(nn.Module):
    def __init__(self, input_nc, ndf=64, n_layers=3, norm_layer=nn.BatchNorm2d):
        super().__init__()
        use_bias = norm_layer.func == nn.InstanceNorm2d if isinstance(norm_layer, functools.partial) \
            else norm_layer == nn.InstanceNorm2d
        kw, padw = 4, 1
        sequence = [nn.Conv2d(input_nc, ndf, kernel_size=kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]
        nf_mult = 1
        for n in range(1, n_layers):
            nf_mult_prev, nf_mult = nf_mult, min(2 ** n, 8)
            sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=2, padding=padw,
                                   bias=use_bias),
                         norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        nf_mult_prev, nf_mult = nf_mult, min(2 ** n_layers, 8)
        sequence += [nn.Conv2d(ndf * nf_mult_prev, ndf * nf_mult, kernel_size=kw, stride=1, padding=padw,
                               bias=use_bias),
                     norm_layer(ndf * nf_mult), nn.LeakyReLU(0.2, True)]
        sequence += [nn.Conv2d(ndf * nf_mult, 1, kernel_size=kw, stride=1, padding=padw)]
        self.model = nn.Sequential(*sequence)

    def forward(self, input):
        return self.model(input)


#: get_norm_layer('instance'); ``track_running_stats=True`` gives the running-stat keys of old files.
INSTANCE = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=False)
OLD_INSTANCE = functools.partial(nn.InstanceNorm2d, affine=False, track_running_stats=True)


def generator(in_nc=3, out_nc=3, n_blocks=2, seed=0, norm=INSTANCE):
    torch.manual_seed(seed)
    return ResnetGenerator(in_nc, out_nc, ngf=8, norm_layer=norm, n_blocks=n_blocks).eval()


def discriminator(in_nc=3, seed=0):
    torch.manual_seed(seed)
    return NLayerDiscriminator(in_nc, ndf=8, n_layers=2, norm_layer=INSTANCE).eval()


@pytest.fixture
def authors(tmp_path):
    """The authors' four networks (ngf=8, 2 blocks; ndf=8, 2 layers), saved as latest_net_*.pth."""
    nets = {"G_A": generator(seed=1), "G_B": generator(seed=2), "D_A": discriminator(seed=3), "D_B": discriminator(seed=4)}
    folder = tmp_path / "horse2zebra_pretrained"
    folder.mkdir()
    for name, net in nets.items():
        torch.save(net.state_dict(), folder / f"latest_net_{name}.pth")
    return folder, nets


def images(n=2, channels=3, size=32, seed=5):
    return torch.rand(n, channels, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_imported_generators_translate_as_the_authors_do(authors, tmp_path, capsys):
    folder, nets = authors
    run = tmp_path / "run"
    assert main(["import-reference", str(folder), "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "G_A  -> G_AB" in out and "D_A  -> D_B" in out and "D_B  -> D_A" in out
    x = images()
    with torch.no_grad():
        assert (Translator(run, "AtoB", "cpu", scale="native")(x) - nets["G_A"](x)).abs().max() < 1e-5
        assert (Translator(run, "BtoA", "cpu", scale="native")(x) - nets["G_B"](x)).abs().max() < 1e-5

    src = tmp_path / "in" / "horse.png"
    src.parent.mkdir()
    write_png(to_uint8(x[0]), str(src))
    assert main(["translate", str(run), "--input", str(src), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    # translated at the authors' training scale (resize_and_crop, load_size 286) and resized back
    assert Translator(run, "AtoB", "cpu").size_for(32, 32) == (286, 286)
    resize = functools.partial(v2.functional.resize, interpolation=v2.InterpolationMode.BICUBIC, antialias=True)
    with torch.no_grad():
        x = read_image(src, 3)[None].float() / 127.5 - 1
        native = Translator(run, "AtoB", "cpu", scale="native")  # the authors' network, as asserted above
        expected = to_uint8(resize(native(resize(x, [286, 286]).clamp(-1, 1)), [32, 32]).clamp(-1, 1)[0])
    assert (read_image(tmp_path / "out" / "horse.png", 3).int() - expected.int()).abs().max() <= 1


def test_discriminators_are_swapped_and_the_run_records_its_source(authors, tmp_path):
    folder, nets = authors
    done = import_reference(folder, tmp_path / "run", data_root="datasets/horse2zebra")
    recipe_yaml, weights = checkpoint.load_weights(done.run)
    recipe = from_yaml(recipe_yaml)
    for theirs, ours in (("G_A", "G_AB"), ("G_B", "G_BA"), ("D_A", "D_B"), ("D_B", "D_A")):
        assert weights[ours].keys() == nets[theirs].state_dict().keys()
        assert all(torch.equal(weights[ours][k], v) for k, v in nets[theirs].state_dict().items()), (theirs, ours)
    d = load_networks(resolve(recipe, checked=False), ["D_A", "D_B"], weights, done.run, torch.device("cpu"))
    x = images()
    with torch.no_grad():
        assert torch.allclose(d["D_B"](x), nets["D_A"](x), atol=1e-6)  # their D_A judges domain B
        assert torch.allclose(d["D_A"](x), nets["D_B"](x), atol=1e-6)
    nets_spec = OmegaConf.to_container(recipe.networks)
    assert nets_spec["G_AB"]["type"] == "resnet" and nets_spec["G_AB"]["args"] == {
        "in_channels": 3, "out_channels": 3, "ngf": 8, "norm": "instance", "n_blocks": 2}
    assert nets_spec["D_B"]["type"] == "n_layers" and nets_spec["D_B"]["args"] == {
        "in_channels": 3, "ndf": 8, "norm": "instance", "n_layers": 2}
    assert recipe.name == "horse2zebra_pretrained" and recipe.data.args.root == "datasets/horse2zebra"
    assert validate(recipe) == []  # recipe check's static part; the dry run would open the data

    about = json.loads((done.checkpoint / checkpoint.SOURCE).read_text())
    assert about["epoch"] == "latest" and about["directions"] == ["AtoB", "BtoA"] and about["not_imported"] == []
    assert {n: (s["file"], s["reference_name"], s["sha256"]) for n, s in about["networks"].items()} == {
        ours: (f"latest_net_{theirs}.pth", theirs, checkpoint.file_sha256(folder / f"latest_net_{theirs}.pth"))
        for theirs, ours in (("G_A", "G_AB"), ("G_B", "G_BA"), ("D_A", "D_B"), ("D_B", "D_A"))}
    assert not (done.checkpoint / checkpoint.STATE).exists()
    assert (done.run / "recipe.yaml").read_text() == recipe_yaml


def test_their_D_A_is_ours_D_B_by_the_recipes_wiring():
    recipe = load_recipe("cyclegan")
    judge_of_g_ab = recipe.steps.generators.losses.gan_AB  # judges fake_B = G_AB(real_A), as their D_A judges G_A(A)
    assert recipe.images[judge_of_g_ab.fake].net == OUR_NAME["G_A"] == "G_AB"
    assert judge_of_g_ab.discriminator == OUR_NAME["D_A"] == "D_B"
    assert recipe.steps.discriminators.losses.D_B.real == "real_B"  # their backward_D_A: real_B against fake_B


def test_without_data_the_recipe_asks_for_it(authors, tmp_path, capsys):
    done = import_reference(authors[0], tmp_path / "run")
    recipe = load_recipe(done.run / "recipe.yaml")
    assert OmegaConf.is_missing(recipe.data.args, "root")
    assert validate(recipe) == ["data.args.root: required value is missing (???); set it in the recipe or as "
                                "data.args.root=VALUE."]
    assert main(["translate", str(done.run), "--device", "cpu"]) == 2  # the test split: no dataset to read
    assert capsys.readouterr().err == ("error: translating the test split needs the run's dataset, but its recipe "
                                       "leaves data.args.root unset; translate image files with --input IMAGES.\n")


@pytest.mark.slow
def test_old_instance_norm_statistics_are_dropped(tmp_path):
    old, new = generator(seed=1, norm=OLD_INSTANCE), generator(seed=1)
    new.load_state_dict({k: v for k, v in old.state_dict().items() if not k.endswith(("running_mean", "running_var",
                                                                                          "num_batches_tracked"))})
    folder = tmp_path / "old"
    folder.mkdir()
    torch.save(old.state_dict(), folder / "latest_net_G_A.pth")
    torch.save(generator(seed=2, norm=OLD_INSTANCE).state_dict(), folder / "latest_net_G_B.pth")
    done = import_reference(folder, tmp_path / "run")
    x = images()
    with torch.no_grad():
        assert (Translator(done.run, "AtoB", "cpu", scale="native")(x) - new(x)).abs().max() < 1e-5
    about = json.loads((done.checkpoint / checkpoint.SOURCE).read_text())
    assert about["networks"]["G_AB"]["instance_norm_keys_dropped"] == 27  # 9 InstanceNorm layers x 3 keys
    assert about["not_imported"] == ["D_A", "D_B"]


def test_a_file_that_does_not_fit_is_refused_with_the_key_and_shapes(authors, tmp_path):
    folder, nets = authors
    state = nets["G_B"].state_dict()
    state["model.4.weight"] = torch.zeros(16, 8, 1, 1)
    torch.save(state, folder / "latest_net_G_B.pth")
    with pytest.raises(CheckpointError) as err:
        import_reference(folder, tmp_path / "run")
    assert str(err.value) == (
        f"{folder / 'latest_net_G_B.pth'}: key 'model.4.weight': expected (16, 8, 3, 3), found (16, 8, 1, 1) "
        "(a resnet generator with ngf=8, 2 residual blocks, 3 -> 3 channels, as read from its keys).")

    state = nets["G_B"].state_dict()
    del state["model.10.conv_block.5.bias"]
    state["model.10.conv_block.5.scale"] = torch.ones(32)
    torch.save(state, folder / "latest_net_G_B.pth")
    with raises(CheckpointError, "does-not-fit", key=str(folder / "latest_net_G_B.pth"),
                says=("'model.10.conv_block.5.bias'", "(32,)", "1 more key(s)")):
        import_reference(folder, tmp_path / "run")

    torch.save(generator(in_nc=1, seed=2).state_dict(), folder / "latest_net_G_B.pth")  # B -> A on 1 channel
    with raises(CheckpointError, "channels-disagree", key="domain B",
                says=("latest_net_D_A.pth: 3, latest_net_G_A.pth: 3, latest_net_G_B.pth: 1",)):
        import_reference(folder, tmp_path / "run")

    torch.save({"model.model.0.weight": torch.zeros(8, 3, 4, 4)}, folder / "latest_net_G_B.pth")  # a U-Net
    with raises(CheckpointError, "not-cyclegan", key=str(folder / "latest_net_G_B.pth"), says=("'model.1.weight'",)):
        import_reference(folder, tmp_path / "run")

    good = folder / "latest_net_G_A.pth"
    (folder / "latest_net_G_B.pth").write_bytes(good.read_bytes()[: good.stat().st_size // 2])  # cut short
    with raises(CheckpointError, "unreadable", key=str(folder / "latest_net_G_B.pth")):
        import_reference(folder, tmp_path / "run")

    torch.save(nets["G_B"], folder / "latest_net_G_B.pth")  # a pickled module: never unpickled
    with raises(CheckpointError, "unsafe", key=str(folder / "latest_net_G_B.pth"),
                says=("test_import_reference.ResnetGenerator",)):
        import_reference(folder, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_one_direction_test_model_translates_AtoB_only(tmp_path, capsys):
    g = generator(seed=7)
    folder = tmp_path / "style_monet_pretrained"
    folder.mkdir()
    torch.save(g.state_dict(), folder / "latest_net_G.pth")
    run = tmp_path / "run"
    assert main(["import-reference", str(folder), "--out", str(run)]) == 0
    out = capsys.readouterr().out
    assert "G    -> G_AB" in out and "'init_from.networks=[G_AB]' inference.BtoA=G_BA" in out
    x = images()
    with torch.no_grad():
        assert (Translator(run, "AtoB", "cpu", scale="native")(x) - g(x)).abs().max() < 1e-5
    assert list(checkpoint.load_weights(run)[1]) == ["G_AB"]

    src = tmp_path / "photo.png"
    write_png(to_uint8(x[0]), str(src))
    assert main(["translate", str(run), "--direction", "BtoA", "--input", str(src), "--device", "cpu"]) == 2
    assert capsys.readouterr().err == (
        f"error: {run}: direction 'BtoA' is not available: it was imported from latest_net_G.pth, the authors' "
        "one-direction test model (A to B); their B-to-A model (e.g. zebra2horse for horse2zebra) is another "
        "download: import it as another run.\n")


def test_epochs_latest_or_highest_or_chosen(tmp_path):
    folder = tmp_path / "ckpts"
    folder.mkdir()
    for epoch, seed in (("5", 1), ("10", 2)):
        torch.save(generator(seed=seed).state_dict(), folder / f"{epoch}_net_G.pth")
    x = images()
    assert import_reference(folder, tmp_path / "a").epoch == "10"
    with torch.no_grad():
        assert (Translator(tmp_path / "a", "AtoB", "cpu", scale="native")(x) - generator(seed=2)(x)).abs().max() < 1e-5
    assert import_reference(folder, tmp_path / "b", epoch="5").epoch == "5"
    with raises(CheckpointError, "no-epoch", key=str(folder), says=("epochs here: 10, 5",)):
        import_reference(folder, tmp_path / "c", epoch="7")
    with raises(CheckpointError, "run-exists", key=str(tmp_path / "a")):
        import_reference(folder, tmp_path / "a")


@pytest.mark.parametrize("n_blocks, kind", [(9, "resnet_9blocks"), (6, "resnet_6blocks"), (3, "resnet")])
def test_the_block_count_picks_the_generator(tmp_path, n_blocks, kind):
    state = ResnetGenerator(3, 1, ngf=4, norm_layer=INSTANCE, n_blocks=n_blocks, use_dropout=True).state_dict()
    assert generator_spec(state, tmp_path / "f.pth") == (kind, {
        "in_channels": 3, "out_channels": 1, "ngf": 4, "norm": "instance", "dropout": True,
        **({"n_blocks": n_blocks} if kind == "resnet" else {})})


@pytest.mark.slow
def test_training_starts_from_the_imported_weights(authors, tmp_path, image_root):
    folder, nets = authors
    (folder / "latest_net_D_A.pth").unlink()  # the authors publish generators only
    (folder / "latest_net_D_B.pth").unlink()
    done = import_reference(folder, tmp_path / "imported", data_root=str(image_root))
    with raises(CheckpointError, "imported", says=("init_from.path=",)):
        Trainer.resume(done.run, ["device=cpu", "data.num_workers=0"])
    x = images()
    seen = {}

    class Probe:
        @hookimpl
        def unpaired_train_start(self, trainer):
            with torch.no_grad():
                seen["AtoB"] = trainer.nets["G_AB"].eval()(x)
                trainer.nets["G_AB"].train()

    recipe = load_recipe(done.run / "recipe.yaml", [
        f"init_from.path={done.run}", "init_from.networks=[G_AB,G_BA]", "device=cpu", "data.num_workers=0",
        "data.args.load_size=32", "data.args.crop_size=32", "networks.D_A.args.ndf=8", "networks.D_B.args.ndf=8",
        "train.max_iterations=1", f"out_dir={tmp_path / 'tuned'}"])
    result = Trainer(recipe, hooks=[Probe()]).fit()
    assert result.iteration == 1 and result.error is None
    with torch.no_grad():
        assert (seen["AtoB"] - nets["G_A"](x)).abs().max() < 1e-5


def test_resuming_a_complete_import_says_how_to_train_from_it(authors, tmp_path, image_root):
    done = import_reference(authors[0], tmp_path / "run", data_root=str(image_root))
    with raises(CheckpointError, "imported", says=("init_from.path=",)):
        Trainer.resume(done.run, ["device=cpu", "data.num_workers=0", "data.args.load_size=16", "data.args.crop_size=16"])
