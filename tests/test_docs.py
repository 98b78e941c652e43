"""Docs that cannot drift: every command and code block of README.md and docs/*.md is run.

- ```python blocks run in order, one namespace per page; a block whose first line is
  ``# name.py`` is written to that file instead (a module later blocks and recipes import).
- ```yaml blocks that are recipes (``base``, ``networks`` or ``steps`` at the top) pass
  ``unpaired recipe check``; ``# name.yaml`` blocks are written to that file first.
- ```bash lines starting with ``unpaired`` run through the command's ``main``: ``unpaired train``
  as ``unpaired recipe check`` with the same recipe and overrides (training is the suite's other
  tests' job), ``unpaired ablate`` and ``unpaired benchmark`` as the check of each variant's or
  recipe's recipe, ``--resume`` for real,
  one iteration more. The few other commands are listed in
  SKIPPED with the reason and where they are tested; a command that is neither fails the test.
- ```console blocks are transcripts (output shown), not run.

Each page runs in a workspace of its own holding what its commands name: a tiny trained run
``runs/mine``, ``photos/``, datasets ``datasets/horse2zebra`` and ``datasets/facades``,
``my-recipe.yaml``, the authors' generator files ``checkpoints/horse2zebra_pretrained/``.
"""

from __future__ import annotations

import re
import shlex
import shutil
import tomllib
from pathlib import Path

import pytest
import torch
import yaml
from torchvision.io import write_png

from unpaired import cli
from unpaired.tools.ablation import PAPER_VARIANTS, variant_recipe
from unpaired.tools.check import check_all
from unpaired.recipe.load import load_recipe
from unpaired.loop.trainer import Trainer

from conftest import TINY, write_images
from test_import_reference import generator as reference_generator

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.S | re.M)

#: Commands not run here: (prefix, why, where they are tested).
SKIPPED = {
    "bash scripts/demo.sh": "the 10-minute demo; CI runs the suite, the demo is timed in the notes",
    "bash scripts/test.sh": "this test suite itself (what CI runs)",
    "source .venv/bin/activate": "shell set-up",
    "torchrun ": "tests/test_distributed.py runs torchrun with two processes",
    "OMP_NUM_THREADS=1 torchrun ": "the same, one thread per process",
    ".venv/bin/python benchmarks/": "benchmarks take minutes; their code paths are the trainer's",
    "unpaired data download ": "needs the authors' server; tests/test_download.py serves archives from 127.0.0.1",
}

#: Pretraining runs whose weights a later documented recipe starts from (``init_from``): their
#: ``unpaired train`` runs for real, one iteration, so that the later recipe's check finds them.
PRETRAINING = ("uvcgan2-pretrain-fashion", "uvcgan2-pretrain-edges")


def blocks(page: Path) -> list[tuple[str, str]]:
    return [(lang, body) for lang, body in FENCE.findall(page.read_text())]


def commands(body: str) -> list[str]:
    joined = re.sub(r"\\\n\s*", " ", body)
    lines = [re.sub(r"\s+#.*$", "", line).strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("docs-workspace")
    Trainer(load_recipe("cyclegan-fashion", [*TINY, "train.max_iterations=2", "train.eval_every=2",  # evaluated, best kept
                                             f"out_dir={root / 'runs/mine'}"])).fit()
    write_images(root / "photos", 2, channels=1, size=28)
    for i, sub in enumerate(("trainA", "trainB", "testA", "testB")):
        write_images(root / "datasets/horse2zebra" / sub, 2, size=16, seed=i)
    for split in ("train", "test"):
        (root / "datasets/facades" / split).mkdir(parents=True)
        write_png(torch.zeros(3, 16, 32, dtype=torch.uint8), str(root / "datasets/facades" / split / "1.png"))
    (root / "my-recipe.yaml").write_text("base: cyclegan-fashion\n")
    pretrained = root / "checkpoints/horse2zebra_pretrained"  # the authors' file layout (docs/training.md)
    pretrained.mkdir(parents=True)
    for name, seed in (("G_A", 1), ("G_B", 2)):
        torch.save(reference_generator(seed=seed).state_dict(), pretrained / f"latest_net_{name}.pth")
    return root


def run_command(cmd: str) -> None:
    if cmd.startswith(tuple(SKIPPED)):
        return
    assert cmd.startswith("unpaired "), f"a documented command this test does not know how to run: {cmd!r}"
    args = shlex.split(cmd)[1:]
    if args[0] == "train" and "--resume" in args:
        args += ["train.max_iterations=3"]  # one iteration more than the workspace's run
    elif args[0] == "train" and args[1] in PRETRAINING:
        args += ["train.max_iterations=1", "train.report=false"]
    elif args[0] == "train":
        if "--out" in args:
            i = args.index("--out")
            del args[i : i + 2]
        args = ["recipe", "check", *args[1:]]
    elif args[0] == "ablate":  # minutes of training per variant: each variant's recipe is checked instead
        parsed = cli.parser().parse_args(args)
        variants = parsed.variants.split(",") if parsed.variants else PAPER_VARIANTS
        for variant in variants:
            assert check_all(variant_recipe(parsed.recipe, variant, parsed.overrides)) == [], (cmd, variant)
        return
    elif args[0] == "benchmark":  # minutes per cell: each recipe is checked with the shared overrides instead
        items = cli.parser().parse_args(args).items
        overrides = [i for i in items if "=" in i]
        for recipe in (i for i in items if "=" not in i):
            assert check_all(load_recipe(recipe, overrides)) == [], (cmd, recipe)
        return
    assert cli.main(args) == 0, cmd


def run_page(page: Path) -> int:
    namespace: dict = {"__name__": f"docs:{page.name}"}
    ran = 0
    for lang, body in blocks(page):
        first = body.splitlines()[0] if body.strip() else ""
        named = re.match(r"#\s*([\w\-]+\.(py|yaml))", first)
        if named:
            Path(named.group(1)).write_text(body)
        if lang == "python" and not (named and named.group(2) == "py"):
            exec(compile(body, f"{page.name}:python-block", "exec"), namespace)
        elif lang == "yaml":
            data = yaml.safe_load(body)
            if isinstance(data, dict) and {"base", "networks", "steps"} & set(data):
                path = Path(named.group(1)) if named else Path(f"block-{ran}.yaml")
                path.write_text(body)
                assert check_all(load_recipe(path.resolve())) == [], (page.name, body)
        elif lang == "toml":
            tomllib.loads(body)
        elif lang == "bash":
            for cmd in commands(body):
                run_command(cmd)
        ran += 1
    return ran


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_page_runs(page, workspace, tmp_path, monkeypatch):
    work = tmp_path / "work"
    shutil.copytree(workspace, work)
    monkeypatch.chdir(work)
    monkeypatch.syspath_prepend(str(work))  # the page's own modules (my_losses.py, ...)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    run_page(page)


def test_every_skip_is_still_needed():
    needed = set()
    for page in PAGES:
        for lang, body in blocks(page):
            if lang == "bash":
                needed |= {p for cmd in commands(body) for p in SKIPPED if cmd.startswith(p)}
    assert needed == set(SKIPPED), set(SKIPPED) - needed


def test_every_page_has_a_checked_block():
    """The pages people copy from hold code this test really runs (a guard against a parser slip)."""
    counts = {page.name: sum(lang in ("python", "yaml", "bash") for lang, _ in blocks(page)) for page in PAGES}
    assert counts["README.md"] >= 3 and counts["python-api.md"] >= 1 and counts["plugins.md"] >= 5, counts
