"""The ``unpaired`` command: train, translate, export, evaluate, ablate, report, data check/download,
import-reference, benchmark, plugins, recipe check/show."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import traceback
from pathlib import Path

from unpaired.errors import RecipeError, UnpairedError


def _train(args) -> int:
    from unpaired.runtime import distributed
    from unpaired.recipe.schema import InitFromSpec
    from unpaired.recipe.load import load_recipe
    from unpaired.loop.trainer import Trainer

    if args.resume:
        if args.init_from:
            raise UnpairedError("--init-from starts a new run from weights; a resumed run continues its own. "
                                "Drop --init-from, or give a recipe instead of --resume.",
                                key="--init-from", code="bad-arguments")
        if args.recipe and "=" not in args.recipe:
            raise UnpairedError(f"--resume continues {args.resume} with its own recipe; give only key=value "
                                f"overrides, not a recipe ('{args.recipe}'). To train that recipe instead, drop --resume.",
                                key="--resume", code="bad-arguments")
        overrides = ([args.recipe] if args.recipe else []) + args.overrides
        trainer = Trainer.resume(args.resume, overrides, out_dir=args.out)
        fork = Path(trainer.out_dir).resolve() != Path(args.resume).resolve()
        print(f"resuming {args.resume}{f' as a fork in {trainer.out_dir}' if fork else ''} at epoch "
              f"{trainer.epoch + 1}, iteration {trainer.iteration}")
    else:
        if not args.recipe:
            raise UnpairedError("give a recipe (e.g. 'unpaired train cyclegan-fashion') or --resume RUN_DIR.",
                                key="recipe", code="bad-arguments")
        recipe = load_recipe(args.recipe, args.overrides)
        if args.init_from:  # RUN[:NET,NET]; a path that exists as given keeps its colons
            path, sep, names = args.init_from.rpartition(":")
            if not sep or Path(args.init_from).exists():
                path, names = args.init_from, ""
            recipe.init_from = InitFromSpec(path=path, networks=[n for n in names.split(",") if n])
        trainer = Trainer(recipe, out_dir=args.out)
    print(f"training '{trainer.recipe.name}' on {trainer.device} in {trainer.executor.precision}; "
          f"run directory: {trainer.out_dir}")
    try:
        result = trainer.fit()
    except BaseException:
        distributed.teardown(synchronize=False)  # another rank may never reach a barrier
        raise
    distributed.teardown(synchronize=True)
    if trainer.is_main:
        print(trainer.timing_table())
    print(f"run directory: {trainer.out_dir}  (checkpoints/, samples/, tb/, log.jsonl)")
    if result.interrupted:
        name = signal.Signals(result.interrupted).name
        print(f"stopped by {name} at iteration {result.iteration}; continue with: unpaired train --resume {trainer.out_dir}")
        return 128 + result.interrupted
    return 0


def _device(name: str) -> str:
    """A ``--device`` value, checked before any work (ablate evaluates only after training).

    Raises:
        RecipeError: not a device, or one this machine lacks (:func:`unpaired.build.pick_device`).
    """
    from unpaired.runtime.device import pick_device

    pick_device(name, where="--device")
    return name


def _translate(args) -> int:
    from unpaired.inference.translator import Translator
    from unpaired.inference.batch import translate_folder, translate_split

    if args.styles < 1:
        raise UnpairedError(f"--styles: 1 or more outputs per input, got {args.styles}.", key="--styles",
                            code="bad-arguments")
    translator = Translator(args.run, args.direction, _device(args.device), precision=args.precision,
                            tile=args.tile, overlap=args.overlap, weights=args.weights, scale=args.scale,
                            to=args.to, seed=args.seed, reference=args.style_from)
    if args.steps is not None:
        translator.set_steps(args.steps)
    if args.styles > 1 and not translator.draws:
        raise UnpairedError(f"--styles: direction '{args.direction}' translates the same for every seed (it draws no "
                            "style code or noise): one output per input; drop --styles.", key="--styles",
                            code="bad-arguments")
    to = f"_{args.to}".replace("/", "-").replace(" ", "-") if args.to else ""  # T-shirt/top: one folder name
    out = Path(args.out or Path(args.run) / f"translated_{args.direction}{to}")
    options = dict(batch_size=args.batch_size, workers=args.workers)
    failed = False
    for k in range(args.styles):  # several styles: one folder each, seeds seed, seed + 1, ...
        translator.condition(args.to, args.seed + k, args.style_from)
        dst = out / f"style{k}" if args.styles > 1 else out
        if args.input:
            summary = translate_folder(translator, Path(args.input), dst, flatten=args.flatten, **options)
        else:
            summary = translate_split(translator, args.split, dst, **options)
        style = f" (seed {args.seed + k})" if translator.domain_values and not translator.reference_value else ""
        print(f"{args.direction} with {translator.net_name}{style}: " + summary.text(), end="")
        failed = failed or bool(summary.failed)
    return 1 if failed else 0


def _export(args) -> int:
    from unpaired.inference.export import export

    print(export(args.run, args.direction, args.format, args.out, args.tolerance, weights=args.weights, to=args.to,
                 seed=args.seed, reference=args.style_from).text(), end="")
    return 0


def _evaluate(args) -> int:
    from unpaired.evaluation.entry import evaluate_folders, evaluate_run

    _device(args.device)
    if args.run and "=" in args.run and not Path(args.run).exists():  # an override, not a run
        args.overrides.insert(0, args.run)
        args.run = None
    if args.fake or args.real:
        if not (args.fake and args.real and args.recipe):
            raise UnpairedError("folder evaluation needs --fake DIR --real DIR --recipe RECIPE (the recipe's eval "
                                "section names the metrics, feature extractor and classifier).",
                                key="--fake", code="bad-arguments")
        if args.run:
            raise UnpairedError(f"give a run directory or --fake/--real folders, not both ('{args.run}').",
                                key="--fake", code="bad-arguments")
        from unpaired.recipe.load import load_recipe

        recipe = load_recipe(args.recipe, args.overrides)
        result, path = evaluate_folders(args.fake, args.real, recipe, args.direction or "AtoB", args.paired,
                                        args.out, device=args.device)
    else:
        if not args.run:
            raise UnpairedError("give a run directory (e.g. 'unpaired evaluate runs/cyclegan-fashion'), or --fake and --real "
                                "folders.", key="run", code="bad-arguments")
        if args.recipe or args.paired or args.direction:
            raise UnpairedError("--recipe, --paired and --direction are for folder evaluation (--fake/--real); "
                                "a run's recipe says its directions (override eval.directions=[AtoB] to choose).",
                                key="--recipe", code="bad-arguments")
        result, path = evaluate_run(args.run, args.overrides, args.device, args.out, weights=args.weights)
    print(result.markdown(), end="")
    print(f"\nwritten: {path} and {path.with_suffix('.md')}")
    return 0


def _ablate(args) -> int:
    from unpaired.tools.ablation import PAPER_VARIANTS, run_ablation

    _device(args.device)
    variants = args.variants.split(",") if args.variants else list(PAPER_VARIANTS)
    out = args.out or f"runs/ablation-{Path(args.recipe).stem}"
    result = run_ablation(args.recipe, variants, out, args.overrides,
                          args.metrics.split(",") if args.metrics else None, args.images, device=args.device,
                          seeds=_seeds(args.seeds) if args.seeds else None)
    print(result.table.read_text(), end="")
    print(f"\ntable: {result.table} (and .json)" + (f"   figure: {result.figure}" if result.figure else ""))
    return 128 + result.interrupted if result.interrupted else 0


def _seeds(text: str) -> list[int]:
    """``--seeds 0,1,2`` as a list.

    Raises:
        RecipeError: not comma-separated integers."""
    try:
        return [int(s) for s in text.split(",")]
    except ValueError:
        raise RecipeError(f"--seeds: comma-separated integers, e.g. 0,1,2; got {text!r}.", key="--seeds",
                          code="bad-value") from None


def _benchmark(args) -> int:
    from unpaired.tools.benchmark import run_benchmark

    _device(args.device)
    recipes = [r for r in args.items if "=" not in r]
    overrides = [r for r in args.items if "=" in r]
    result = run_benchmark(recipes, _seeds(args.seeds), args.out, overrides, args.metrics.split(",") if args.metrics else None,
                           device=args.device, jobs=args.jobs)
    print(result.table.read_text(), end="")
    print(f"\ntable: {result.table} (and .json)")
    if result.interrupted:
        return 128 + result.interrupted
    return 1 if result.failed else 0  # the table holds the other cells; a script still sees the failure


def _report(args) -> int:
    from unpaired.tools.report import write_report

    print(f"report: {write_report(args.run, args.out)}")
    return 0


def _import_reference(args) -> int:
    from unpaired.runs.import_reference import import_reference

    out = Path(args.out or f"runs/{Path(args.folder).resolve().name}")
    done = import_reference(args.folder, out, args.epoch, args.data)
    print(f"imported {args.folder} (epoch {done.epoch}) into {done.checkpoint}:")
    for ours, (theirs, file, kind, net_args) in done.networks.items():
        sizes = ", ".join(f"{k}={v}" for k, v in net_args.items() if k != "norm")
        print(f"  {theirs:<4} -> {ours:<5} {file}  ({kind}: {sizes})")
    for direction in done.directions:
        print(f"translate: unpaired translate {out} --direction {direction} --input IMAGES --out OUT")
    missing = [n for n in ("G_AB", "G_BA", "D_A", "D_B") if n not in done.networks]
    chosen = f" 'init_from.networks=[{','.join(done.networks)}]'" if missing else ""
    extra = " inference.BtoA=G_BA" if "BtoA" not in done.directions else ""
    print(f"train from it: unpaired train {out / 'recipe.yaml'} init_from.path={out}{chosen}{extra} "
          f"{'' if args.data else 'data.args.root=DATA '}--out NEW_RUN")
    if missing:
        print(f"not in {args.folder}: {', '.join(missing)} (a run trained from it initialises them)")
    return 0


def _data(args) -> int:
    if args.action == "download":
        from unpaired.data.download import download

        print(f"dataset ready: {download(args.target, args.root, url=args.url)}")
        return 0
    from unpaired.data.check import check_data

    report = check_data(args.target, args.overrides)
    print(report.text(), end="")
    return 0 if report.ok else 1


def _plugins(args) -> int:
    from unpaired.plugin.registry import closest, default_registry

    registry = default_registry()
    if args.recipe:  # with the recipe's own plugin modules
        from unpaired.recipe.load import load_recipe

        registry = registry.for_recipe(load_recipe(args.recipe))
    kinds = list(registry.kinds)  # the built-in kinds and those plugins add
    if args.kind and args.kind not in kinds:
        raise UnpairedError(f"unknown kind '{args.kind}'.{closest(args.kind, kinds)} Kinds: {', '.join(kinds)}.",
                            key="--kind", code="unknown-kind")
    comps = [c for c in registry.components() if not args.kind or c.kind == args.kind]
    kind = None
    for c in comps:
        if c.kind != kind:
            if kind is not None:
                print()
            kind = c.kind
            print(f"{kind}:")
        print(f"  {c.name:<18} {c.provider:<36} {c.summary}")
    return 0


def _recipe(args) -> int:
    from omegaconf import OmegaConf

    from unpaired.recipe.load import load_recipe, set_keys, to_yaml
    from unpaired.tools.check import check_all

    recipe = load_recipe(args.recipe, args.overrides)
    if args.action == "show":
        print(OmegaConf.to_yaml(set_keys(recipe)) if args.changed else to_yaml(recipe), end="")
        return 0
    problems = check_all(recipe)
    for p in problems:
        print(f"  - {p}")
    print(f"{args.recipe}: " + (f"{len(problems)} problem(s)" if problems else "OK"))
    return 1 if problems else 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="unpaired", description="Unpaired image-to-image translation.")
    p.add_argument("--traceback", action="store_true",
                   help="print the full traceback of errors too (also $UNPAIRED_TRACEBACK=1); a plugin's own bug "
                        "always shows its traceback")
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a recipe, or resume a run")
    t.add_argument("recipe", nargs="?", help="recipe file or built-in name (cyclegan, cyclegan-fashion, pix2pix, cut, ablations/gan-alone...: see recipes/)")
    t.add_argument("overrides", nargs="*", help="key=value recipe overrides, e.g. train.epochs=5")
    t.add_argument("--out", help="run directory (default: recipe out_dir or runs/<name>); with --resume, a new "
                   "directory forks the run there (RUN_DIR is only read)")
    t.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its latest checkpoint")
    t.add_argument("--init-from", metavar="RUN[:NETS]", help="start the new run's networks from the weights of a run "
                   "or checkpoint, all or the comma-separated NETS (e.g. runs/old:G_AB,G_BA); sets init_from")
    t.set_defaults(func=_train)

    tr = sub.add_parser("translate", help="translate images with a trained run")
    tr.add_argument("run", help="run directory or checkpoint directory")
    tr.add_argument("--direction", default="AtoB", help="a key of the recipe's inference section (AtoB, BtoA)")
    src = tr.add_mutually_exclusive_group()
    src.add_argument("--input", help="an image file or a folder of images")
    src.add_argument("--split", default="test", choices=("train", "test"),
                     help="translate this split of the run's own dataset (default: test)")
    tr.add_argument("--out", help="output folder (default RUN/translated_<direction>)")
    tr.add_argument("--device", default="auto")
    tr.add_argument("--batch-size", type=int, default=4, help="images of equal size translated together (default 4)")
    tr.add_argument("--workers", type=int, default=2, help="processes reading images (default 2; 0: none)")
    tr.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "auto"],
                    help="autocast precision (default fp32; auto: bf16 where the device computes it natively)")
    tr.add_argument("--tile", type=int, help="translate in tiles of this many pixels (default: tiles of 1024 above "
                    "2048x2048 pixels; 0: never)")
    tr.add_argument("--overlap", type=int, default=64, help="pixels shared by neighbouring tiles (default 64)")
    tr.add_argument("--scale", default="train", choices=["train", "native"],
                    help="train (default): resize each image as training resized its images, translate, and resize "
                    "the translation back to the image's size; native: translate at the image's own size")
    tr.add_argument("--weights", help="a weight set of the checkpoint to translate with, e.g. ema (the average a "
                    "recipe's ema handler keeps); default: the trained weights")
    tr.add_argument("--to", help="the target domain of a multi-domain run (its name or label)")
    tr.add_argument("--seed", type=int, default=0, help="the seed of a multimodal run's random style codes (default 0)")
    tr.add_argument("--steps", type=int, help="steps of a multi-step sampler (UNSB's NFE, 1 to its T; default: the "
                    "recipe's)")
    tr.add_argument("--styles", type=int, default=1, help="outputs per input, each with its own style (seeds "
                    "SEED, SEED+1, ...; written to OUT/style0, OUT/style1, ...)")
    tr.add_argument("--style-from", help="a reference image whose style a reference-guided entry takes")
    tr.add_argument("--flatten", action="store_true", help="write every output into --out itself (subfolder names "
                    "joined with _), not under the input's relative paths")
    tr.set_defaults(func=_translate)

    ex = sub.add_parser("export", help="export a direction's translation to ONNX or TorchScript, checked against PyTorch")
    ex.add_argument("run", help="run directory or checkpoint directory")
    ex.add_argument("--direction", default="AtoB", help="a key of the recipe's inference section (AtoB, BtoA)")
    ex.add_argument("--format", default="onnx", help="onnx (default; needs onnx, onnxscript, onnxruntime) or torchscript")
    ex.add_argument("--out", help="the file (default RUN/export/<direction>.onnx or .pt)")
    ex.add_argument("--weights", help="a weight set of the checkpoint to export, e.g. ema; default: the trained weights")
    ex.add_argument("--to", help="a multi-domain run's target domain (name or label), fixed in the file")
    ex.add_argument("--seed", type=int, default=0, help="the style seed of a latent-guided entry, fixed in the file")
    ex.add_argument("--style-from", help="the reference image of a reference-guided entry; its style is fixed in the file")
    ex.add_argument("--tolerance", type=float, default=1e-4, help="largest absolute difference to PyTorch accepted "
                    "when the file is checked (default 1e-4)")
    ex.set_defaults(func=_export)

    ev = sub.add_parser("evaluate", help="score a run (or a folder of translations) with the recipe's eval metrics")
    ev.add_argument("run", nargs="?", help="run or checkpoint directory (e.g. RUN/checkpoints/best)")
    ev.add_argument("overrides", nargs="*", help="key=value recipe overrides, e.g. eval.num_images=100")
    ev.add_argument("--out", help="folder for metrics.json and metrics.md (default RUN/eval/<checkpoint>)")
    ev.add_argument("--device", default="auto")
    ev.add_argument("--fake", help="folder of translated images (instead of a run)")
    ev.add_argument("--real", help="folder of real target-domain images (with --fake)")
    ev.add_argument("--recipe", help="recipe whose eval section to use (with --fake)")
    ev.add_argument("--direction", help="AtoB or BtoA: which domain --real is (with --fake; default AtoB)")
    ev.add_argument("--weights", help="a weight set of the checkpoint to evaluate, e.g. ema; default: the trained weights")
    ev.add_argument("--paired", action="store_true", help="--real holds the true image of each translation, same names")
    ev.set_defaults(func=_evaluate)

    ab = sub.add_parser("ablate", help="train and evaluate variants of a recipe (the paper's loss ablation): table + figure")
    ab.add_argument("recipe", help="the task's recipe, with an eval section (e.g. cyclegan-fashion)")
    ab.add_argument("overrides", nargs="*", help="key=value for every variant: the shared budget, e.g. train.epochs=4")
    ab.add_argument("--variants", help="comma-separated: full, the paper's variants (cycle-alone, gan-alone, "
                    "gan-forward-cycle, gan-backward-cycle) and/or recipe files applied to the base (default: full "
                    "and the paper's four)")
    ab.add_argument("--out", help="the ablation's folder (default runs/ablation-<recipe>); the same command resumes it")
    ab.add_argument("--metrics", help="comma-separated output keys for the table (default: every rankable key)")
    ab.add_argument("--images", type=int, default=6, help="test inputs per direction in the figure")
    ab.add_argument("--seeds", help="comma-separated seeds: each variant trained once per seed, the table's scores "
                    "mean ± std over them (default: the recipe's seed, once)")
    ab.add_argument("--device", default="auto", help="for evaluation and the figure (training: the recipe's "
                    "device, e.g. the override device=cpu)")
    ab.set_defaults(func=_ablate)

    bm = sub.add_parser("benchmark", help="train and score several recipes on one budget, over seeds: best and last "
                        "side by side")
    bm.add_argument("items", nargs="+", metavar="recipe|key=value",
                    help="recipes to compare (each with an eval section), and key=value overrides for every one: "
                    "the shared budget, e.g. train.epochs=8")
    bm.add_argument("--seeds", default="0", help="comma-separated seeds, each recipe trained once per seed (default 0)")
    bm.add_argument("--out", default="runs/benchmark", help="the benchmark's folder; the same command resumes it")
    bm.add_argument("--metrics", help="comma-separated output keys for the table (default: each metric's headline)")
    bm.add_argument("--device", default="auto", help="for evaluation (training: the recipes' device)")
    bm.add_argument("--jobs", type=int, default=1, help="cells trained at once, each in a process of its own with "
                    "its share of the CPU cores (default 1: one after another)")
    bm.set_defaults(func=_benchmark)

    rp = sub.add_parser("report", help="write RUN/report.html: loss curves, sample grids, metrics, recipe")
    rp.add_argument("run", help="run directory")
    rp.add_argument("--out", help="HTML file (default RUN/report.html)")
    rp.set_defaults(func=_report)

    ir = sub.add_parser("import-reference", help="make a run of the authors' pretrained CycleGAN .pth files "
                        "(latest_net_G_A.pth ...), for translate and for training from them")
    ir.add_argument("folder", help="folder of <epoch>_net_G_A.pth, _G_B, _D_A, _D_B (or a test model's _net_G.pth)")
    ir.add_argument("--out", help="the new run directory (default runs/<folder name>)")
    ir.add_argument("--epoch", default="latest", help="which files: latest (default; else the highest epoch) or "
                    "an epoch number")
    ir.add_argument("--data", help="the dataset folder (data.args.root) for training from the run; unset, "
                    "training asks for it")
    ir.set_defaults(func=_import_reference)

    d = sub.add_parser("data", help="check a dataset's images, or download a standard dataset")
    d.add_argument("action", choices=["check", "download"])
    d.add_argument("target", help="check: a dataset folder or a recipe; download: a dataset name (e.g. horse2zebra)")
    d.add_argument("overrides", nargs="*", help="check with a recipe: key=value recipe overrides")
    d.add_argument("--root", default="datasets", help="download: the folder that receives the dataset (default datasets/)")
    d.add_argument("--url", help="download: a mirror's base URL instead of the authors' server "
                   "(also $UNPAIRED_DATASETS_URL)")
    d.set_defaults(func=_data)

    pl = sub.add_parser("plugins", help="list every registered component, by kind, with its provider")
    pl.add_argument("--kind", help="only this kind (generator, discriminator, ...)")
    pl.add_argument("--recipe", help="also the plugin modules this recipe names in 'plugins:'")
    pl.set_defaults(func=_plugins)

    r = sub.add_parser("recipe", help="check or show a recipe")
    r.add_argument("action", choices=["check", "show"])
    r.add_argument("recipe")
    r.add_argument("overrides", nargs="*")
    r.add_argument("--changed", action="store_true",
                   help="show: only the keys that differ from the schema's defaults (what the recipe sets)")
    r.set_defaults(func=_recipe)
    return p


def main(argv=None) -> int:
    p = parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    flags = [a.split("=", 1)[0] for a in argv if a.startswith("--") and a != "--"]
    twice = next((f for f in flags if flags.count(f) > 1), None)
    if twice:  # argparse would keep the last one without a word (demo.sh --out X ran in X, went on in its own)
        print(f"error: {twice} is given twice; give it once.", file=sys.stderr)
        return 2
    args, extra = p.parse_known_args(argv)
    # key=value overrides may also come after options such as --out
    listed = "overrides" if hasattr(args, "overrides") else "items" if hasattr(args, "items") else None
    if extra and listed and all("=" in e and not e.startswith("-") for e in extra):
        setattr(args, listed, getattr(args, listed) + extra)
    elif extra:
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    try:
        return args.func(args)
    except (UnpairedError, OSError) as err:  # user mistakes and file-system trouble: one line
        if args.traceback or os.environ.get("UNPAIRED_TRACEBACK", "0") not in ("", "0"):
            traceback.print_exc()
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before training installs its own handler (which checkpoints), or outside training
        print("interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
