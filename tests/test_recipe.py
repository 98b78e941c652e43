"""Recipes: loading, inheritance, overrides, and a clear error for each kind of mistake."""

from __future__ import annotations

import pytest

from unpaired import RecipeError
from unpaired.cli import main
from unpaired.recipe.validate import check, validate
from unpaired.recipe.load import find_recipe, from_yaml, load_recipe, to_yaml
from unpaired.loop.trainer import Trainer

from conftest import raises


def test_reference_recipe_matches_the_paper():
    r = load_recipe("cyclegan", ["data.args.root=/data"])
    assert r.networks.G_AB.type == "resnet_9blocks" and r.networks.D_B.type == "basic"
    assert r.networks.G_AB.init == "normal" and r.networks.G_AB.init_gain == 0.02
    g, d = r.steps.generators, r.steps.discriminators
    assert list(r.steps) == ["generators", "discriminators"]
    assert g.optimizer.args.lr == 0.0002 and list(g.optimizer.args.betas) == [0.5, 0.999]
    assert {t.adversarial for t in g.losses.values() if t.adversarial} == {"lsgan"}
    assert g.losses.cycle_A.weight == 10 and g.losses.idt_A.weight == 5
    assert d.losses.D_A.pool == 50 and d.losses.D_A.weight == 0.5
    assert r.data.args.load_size == 286 and r.data.args.crop_size == 256 and r.data.batch_size == 1
    assert r.train.epochs == 200 and dict(r.train.scheduler.args) == {"n_epochs": 100, "n_epochs_decay": 100}
    assert validate(r) == []


def test_base_inheritance_and_overrides():
    r = load_recipe("cyclegan-fashion", ["train.epochs=3", "steps.generators.losses.idt_A=null"])
    assert r.name == "cyclegan-fashion" and r.base is None
    assert r.networks.G_AB.type == "resnet_6blocks" and r.networks.G_AB.args.ngf == 32
    assert r.steps.generators.losses.cycle_A.weight == 10  # inherited from cyclegan.yaml
    assert "idt_A" not in r.steps.generators.losses and r.train.epochs == 3  # null deletes
    assert r.data.args.root is None  # null removes the base's argument
    assert from_yaml(to_yaml(r)) == r


def test_recipe_show_changed_keeps_what_differs_from_the_schema(capsys):
    assert main(["recipe", "show", "cyclegan-fashion", "train.epochs=3"]) == 0
    full = capsys.readouterr().out
    assert main(["recipe", "show", "--changed", "cyclegan-fashion", "train.epochs=3"]) == 0
    short = capsys.readouterr().out
    assert "init_gain" in full and "init_gain" not in short and "spectral_norm" not in short  # defaults
    assert "  epochs: 3\n" in short and "    type: resnet_6blocks\n" in short and "weight: 10.0" in short
    assert len(short.splitlines()) < len(full.splitlines()) / 2
    assert from_yaml(short) == from_yaml(full)  # the same recipe once the schema fills in its defaults


def test_recipe_names_resolve_to_files(tmp_path):
    assert find_recipe("cyclegan").name == "cyclegan.yaml"
    with raises(RecipeError, "no-recipe", key="cyclegn", says=("'cyclegan'",)):
        find_recipe("cyclegn")


def test_unknown_key_names_the_path_and_suggests(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("base: cyclegan.yaml\ntrain:\n  epocs: 3\n")
    with raises(RecipeError, "schema", key="train.epocs", says=(str(f), "'epochs'")):
        load_recipe(f)


def test_wrong_type_names_the_path():
    with raises(RecipeError, "schema", key="steps.generators.losses.cycle_A.pool", says=("command-line override",)):
        load_recipe("cyclegan-fashion", ["steps.generators.losses.cycle_A.pool=ten"])
    # a weight is a number or a schedule: the check names a word there
    weight = validate(load_recipe("cyclegan-fashion", ["steps.generators.losses.cycle_A.weight=ten"]))
    assert [(p.key, p.code) for p in weight] == [("steps.generators.losses.cycle_A.weight", "bad-value")]


def test_bad_yaml_and_bad_override_syntax(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text("name: [unclosed\n")
    with raises(RecipeError, "bad-yaml", key=str(f.resolve())):
        load_recipe(f)
    with raises(RecipeError, "bad-override", key="train.epochs"):
        load_recipe("cyclegan-fashion", ["train.epochs"])


def test_base_loop_is_reported(tmp_path):
    (tmp_path / "a.yaml").write_text("base: b.yaml\n")
    (tmp_path / "b.yaml").write_text("base: a.yaml\n")
    with raises(RecipeError, "base-loop", key="base"):
        load_recipe(tmp_path / "a.yaml")


@pytest.mark.parametrize(
    "override, message",
    [
        ("steps.generators.losses.cycle_A.input=rec_AA",
         "steps.generators.losses.cycle_A: image 'rec_AA' is not defined. Did you mean 'rec_A'?"),
        ("steps.generators.losses.gan_AB.discriminator=D_C",
         "steps.generators.losses.gan_AB.discriminator: network 'D_C' is not defined."),
        ("images.fake_B.net=G_XY", "images.fake_B.net: network 'G_XY' is not defined."),
        ("steps.generators.networks=[G_AB,G_CD]", "steps.generators.networks: network 'G_CD' is not defined."),
        ("networks.G_AB.type=resnet_9block", "networks.G_AB: unknown generator 'resnet_9block'. Did you mean 'resnet_9blocks'?"),
        ("networks.D_A.type=patchgan", "networks.D_A: unknown discriminator 'patchgan'."),
        ("networks.D_A.args.ndff=3", "networks.D_A.args.ndff: unknown argument. Did you mean 'ndf'?"),
        ("steps.generators.losses.cycle_A.consistency=l3", "unknown consistency_loss 'l3'"),
        ("steps.generators.optimizer.type=adamm", "steps.generators.optimizer: unknown optimizer 'adamm'. Did you mean 'adam'?"),
        ("train.scheduler.type=linearr", "train.scheduler: unknown scheduler 'linearr'"),
        ("data.dataset=fashion", "data.dataset: unknown dataset 'fashion'. Did you mean 'fashion_mnist'?"),
        ("train.precision=fp8", "train.precision: 'fp8' is not one of fp32, bf16, fp16, auto."),
        ("eval.split=val", "eval.split: the split evaluated is train or test, got 'val'."),
        ("name=../escape", "name: a run's default folder is runs/<name>: a plain folder name, got '../escape'; to train elsewhere, give --out (or out_dir)."),
        ("networks.G_AB.init_gain=-1", "networks.G_AB.init_gain: the init's standard deviation (or gain) must be 0 or more, got -1.0."),
        ("steps.discriminators.losses.D_A.real=null", "steps.discriminators.losses.D_A.real: this step trains 'D_A', so the term needs a real image."),
        ("steps.generators.losses.cycle_A.adversarial=lsgan", "set exactly one of 'adversarial' (a GAN loss), 'consistency'"),
        ("samples=[real_A,fake_C]", "samples: image 'fake_C' is not defined."),
        ("inference.AtoB=G_XX", "inference.AtoB: network or image 'G_XX' is not defined."),
        ("plugins=[not_a_module]", "plugins: cannot find plugin module 'not_a_module'"),
        ("images.fake_B.input=rec_A", "images.fake_B: its inputs form a loop (fake_B <- rec_A <- fake_B)"),
    ],
)
def test_bad_recipe_is_reported_with_its_key(override, message):
    problems = validate(load_recipe("cyclegan-fashion", [override]))
    assert any(message in p for p in problems), problems


def test_identity_loss_with_unequal_channels_is_explained():
    # Grey A, RGB B: G_AB maps 1 -> 3 channels, so G_AB(real_B) and |G_AB(b) - b| make no sense.
    r = load_recipe("cyclegan", ["data.args.root=/d", "data.args.channels=[1,3]",
                                 "networks.G_AB.args.in_channels=1", "networks.G_BA.args.out_channels=1",
                                 "networks.D_A.args.in_channels=1"])
    problems = validate(r)
    assert any(p.startswith("images.idt_B: network 'G_AB' takes 1 input channels but 'real_B' has 3") for p in problems)
    # An identity term comparing a 3-channel output with a grey image says so.
    problems = validate(load_recipe("cyclegan-fashion", ["networks.G_BA.args.out_channels=3"]))
    assert any(p.startswith("steps.generators.losses.idt_A: 'idt_A' has 3 channels but 'real_A' has 1; "
                            "a consistency loss (such as the identity loss) needs equal channel counts") for p in problems)
    # Removing the identity terms (and so their images) makes the recipe good.
    r = load_recipe("cyclegan", ["data.args.root=/d", "data.args.channels=[1,3]",
                                 "networks.G_AB.args.in_channels=1", "networks.G_BA.args.out_channels=1",
                                 "networks.D_A.args.in_channels=1", "images.idt_A=null", "images.idt_B=null",
                                 "steps.generators.losses.idt_A=null", "steps.generators.losses.idt_B=null"])
    assert validate(r) == []


def test_missing_required_value():
    problems = validate(load_recipe("cyclegan"))
    assert problems == ["data.args.root: required value is missing (???); set it in the recipe or as data.args.root=VALUE."]


def test_trainer_refuses_a_bad_recipe_before_training(tmp_path):
    r = load_recipe("cyclegan-fashion", ["networks.G_AB.type=nope", "steps.generators.losses.cycle_B.target=x",
                                         f"out_dir={tmp_path / 'run'}"])
    with pytest.raises(RecipeError) as err:
        Trainer(r)
    assert [(p.key, p.code) for p in err.value.problems] == [("networks.G_AB", "unknown-plugin"),
                                                            ("steps.generators.losses.cycle_B", "unknown-image")]
    assert str(err.value).startswith("recipe has 2 problem(s):")
    assert not (tmp_path / "run").exists()


def test_recipe_check_command_reports_every_problem(capsys):
    code = main(["recipe", "check", "cyclegan-fashion", "networks.G_AB.type=resnet_9block", "networks.D_A.args.ndff=3"])
    out = capsys.readouterr().out
    assert code == 1 and "2 problem(s)" in out and "resnet_9block" in out and "ndff" in out
    assert main(["recipe", "check", "cyclegan-fashion"]) == 0


def test_recipe_check_dry_run_finds_size_problems(capsys, image_root):
    code = main(["recipe", "check", "cyclegan", f"data.args.root={image_root}", "data.args.crop_size=100", "networks.G_AB.type=unet_256"])
    out = capsys.readouterr().out
    assert code == 1 and "1 problem(s)" in out
    assert "images.fake_B: G_AB(real_A) fails on (1, 3, 100, 100): unet_256 needs input height and width divisible by 256" in out


def test_recipe_check_opens_the_data(capsys, tmp_path):
    code = main(["recipe", "check", "cyclegan", f"data.args.root={tmp_path / 'nowhere'}"])
    out = capsys.readouterr().out
    assert code == 1 and f"{tmp_path / 'nowhere' / 'trainA'}: folder not found" in out


@pytest.mark.parametrize("override, message", [
    ("train.keep_checkpoints=0", "train.keep_checkpoints: must be at least 1, got 0."),
    ("data.batch_size=-1", "data.batch_size: must be at least 1, got -1."),
    ("train.max_iterations=0", "train.max_iterations: must be at least 1, got 0."),
    ("train.log_every=0", "train.log_every: must be at least 1, got 0."),
    ("steps.discriminators.losses.D_A.pool=-3", "steps.discriminators.losses.D_A.pool: must be 0 (off) or more, got -3."),
    ("device=gpu", "device: 'gpu' is not a device; use auto, cpu, cuda or cuda:N."),
    ("networks.G_AB.args.ngf=abc", "networks.G_AB.args.ngf: expected a number, got 'abc'."),
    ("networks.G_AB.args.ngf=8.5", "networks.G_AB.args.ngf: expected an integer, got 8.5."),
    ("data.args.flip=3", "data.args.flip: expected true or false, got 3."),
])
def test_bad_numbers_are_reported_before_training(override, message):
    assert message in validate(load_recipe("cyclegan-fashion", [override]))


def test_an_empty_recipe_says_what_is_missing(tmp_path):
    (tmp_path / "empty.yaml").write_text("")
    assert validate(load_recipe(tmp_path / "empty.yaml")) == [
        "data.dataset: required value is missing (???); set it in the recipe or as data.dataset=VALUE."]


def test_check_raises_with_all_problems():
    with pytest.raises(RecipeError) as err:
        check(load_recipe("cyclegan-fashion", ["networks.G_AB.type=x", "networks.G_BA.type=y"]))
    assert [p.key for p in err.value.problems] == ["networks.G_AB", "networks.G_BA"]
    assert (err.value.key, err.value.code) == ("networks.G_AB", "unknown-plugin")


@pytest.mark.parametrize("text, key, code, fact", [
    ("data: 5", "data", "bad-shape", "got 5"),
    ("networks: {G_AB: hello}", "networks.G_AB", "bad-shape", "got 'hello'"),
    ("steps: {generators: {losses: {cycle_A: 3}}}", "steps.generators.losses.cycle_A", "bad-shape", "got 3"),
    ("steps: [a, b]", "steps", "bad-shape", "got ['a', 'b']"),
    ("samples: 5", "samples", "bad-shape", "got 5"),
    ("plugins: notalist", "plugins", "bad-shape", "got 'notalist'"),
    ("base: [cyclegan, cut]", "base", "bad-shape", "got ['cyclegan', 'cut']"),
    ("name: ${name}", "name", "schema", "Recursive interpolation"),
    ("data: {args: {source: '${oops}'}}", "data.args.source", "schema", "'oops'"),
])
def test_a_wrong_shape_or_interpolation_names_the_file_and_key(tmp_path, text, key, code, fact):
    f = tmp_path / "r.yaml"
    f.write_text(("" if text.startswith("base") else "base: cyclegan-fashion\n") + text + "\n")
    with raises(RecipeError, code, key=key, says=(str(f.resolve()), fact)):
        load_recipe(f)


def test_overrides_of_the_wrong_shape_or_not_yaml():
    with raises(RecipeError, "bad-shape", key="networks.G_AB", says=("command-line override",)):
        load_recipe("cyclegan-fashion", ["networks.G_AB=hello"])
    with raises(RecipeError, "bad-override", says=("data.batch_size=[1,2",)):
        load_recipe("cyclegan-fashion", ["data.batch_size=[1,2"])
    with raises(RecipeError, "bad-recipe", says=("got None",)):
        load_recipe(None)


def test_a_text_argument_given_a_number_is_named():
    with raises(RecipeError, "wrong-type", key="data.args.root", says=("got 5",)):
        check(load_recipe("cyclegan", ["data.args.root=5"]))


def test_a_learning_rate_of_zero_or_a_negative_weight_is_a_problem():
    problems = validate(load_recipe("cyclegan-fashion", ["steps.generators.optimizer.args.lr=0",
                                                         "steps.discriminators.losses.D_A.weight=-0.5"]))
    assert "steps.generators.optimizer.args.lr: must be above 0, got 0 (a network that should not learn is left " \
           "out of steps.generators.networks)." in problems
    assert any(p.startswith("steps.discriminators.losses.D_A.weight: must be 0 or more") for p in problems)


@pytest.mark.slow
def test_a_schedule_without_a_single_trained_epoch_is_named(capsys):
    assert main(["recipe", "check", "cyclegan-fashion", "train.scheduler.args.n_epochs=-1"]) == 2
    assert "error: train.scheduler: n_epochs and n_epochs_decay are numbers of epochs, 0 or more; got -1 and 8" in \
        capsys.readouterr().err
    assert main(["recipe", "check", "cyclegan-fashion", "train.scheduler.args.n_epochs=0",
                 "train.scheduler.args.n_epochs_decay=0"]) == 0
    assert "warning: the linear schedule (n_epochs=0, n_epochs_decay=0) gives LR 0 from the first epoch" in \
        capsys.readouterr().err


def test_a_missing_base_names_the_recipe_that_refers_to_it_and_keys_need_names(tmp_path):
    f = tmp_path / "mine.yaml"
    f.write_text("base: ablations/gan-alon\n")
    with raises(RecipeError, "no-recipe", key="base", says=(str(f.resolve()), "'ablations/gan-alone'")):
        load_recipe(f)
    with raises(RecipeError, "bad-override", key="=5"):
        load_recipe("cyclegan-fashion", ["=5"])
