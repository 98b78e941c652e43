"""Import the authors' pretrained CycleGAN models as a run of the ``cyclegan`` recipe.

The authors' code (Zhu, Park, Isola & Efros, ICCV 2017; pytorch-CycleGAN-and-pix2pix) saves each
network as a plain state dict ``<epoch>_net_<name>.pth`` (``models/base_model.py``,
``save_networks``; ``latest`` is the newest epoch): ``G_A``, ``G_B`` (``ResnetGenerator``) and
``D_A``, ``D_B`` (``NLayerDiscriminator``) of ``models/networks.py``, and for its one-direction
test models (``models/test_model.py``) a single ``G`` that maps A to B.

Names. Their ``G_A`` maps A to B (the paper's G): our ``G_AB``; ``G_B`` maps B to A (the paper's
F): our ``G_BA``; a single ``G``: our ``G_AB``. Their ``D_A`` judges domain B: it is built on
``output_nc`` channels and ``backward_D_A`` scores real B against the pooled ``fake_B = G_A(A)``
(``models/cycle_gan_model.py``: "D_A (D_Y), D_B (D_X)"). In ``recipes/cyclegan.yaml`` the
discriminator of domain B is ``D_B`` (``gan_AB: {discriminator: D_B, fake: fake_B}``, ``D_B: {real:
real_B, fake: fake_B}``), so their ``D_A`` is our ``D_B`` and their ``D_B`` our ``D_A``.

Architecture. Each file's sizes are read from its keys — ``ngf`` and the input channels from
``model.1.weight`` (the 7x7 convolution after ``ReflectionPad2d(3)``), the residual blocks from the
``model.<i>.conv_block.*`` keys (``model.10`` to ``model.18`` for 9), the output channels from the
last 7x7 convolution ``model.<17 + n_blocks>``, dropout from a ``conv_block.6`` convolution; ``ndf``
and the input channels of a discriminator from ``model.0.weight``, ``n_layers`` from its count of
convolutions (``model.0, 2, 5, 8, 11`` for 3) — then the network of ``plugins/networks/resnet.py``
or ``patchgan.py`` built with those sizes must take every key at its shape, or the file is refused.
Normalisation is ``InstanceNorm2d(affine=False)`` as in the authors' CycleGAN, so every convolution
has a bias. Keys ``running_mean``/``running_var``/``num_batches_tracked`` of InstanceNorm layers,
which checkpoints of PyTorch before 0.4 carry, are dropped as the reference's loader does
(``BaseModel.__patch_instance_norm_state_dict``).

The run. ``RUN/recipe.yaml`` (the ``cyclegan`` recipe with these networks; ``data.args.root`` as
given, else left required) and ``RUN/checkpoints/imported/``: ``weights.safetensors`` with the
imported networks only (the recipe in its metadata) and ``source.json`` (the folder, epoch, each
file with its SHA-256 and reference name, the directions available); no ``state.pt``, as no
training state exists. ``unpaired translate RUN`` works for each imported generator's direction;
training starts a new run from the weights through the recipe's ``init_from``.
"""

from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from unpaired.runs import checkpoint
from unpaired.engine.build import build_network
from unpaired.errors import CheckpointError
from unpaired.recipe.load import apply_overrides, load_recipe, to_yaml
from unpaired.plugin.registry import Registry
from unpaired.recipe.resolved import resolve

#: The authors' network names -> ours (see the module docstring for the discriminators' swap).
OUR_NAME = {"G_A": "G_AB", "G_B": "G_BA", "G": "G_AB", "D_A": "D_B", "D_B": "D_A"}
#: A file the authors' ``save_networks`` writes: ``<epoch>_net_<name>.pth``.
FILE_NAME = re.compile(r"(?P<epoch>.+)_net_(?P<net>G_A|G_B|G|D_A|D_B)\.pth")
CHECKPOINT_NAME = "imported"
_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


@dataclass
class ImportedRun:
    """What :func:`import_reference` made.

    Attributes:
        run: the run directory.
        checkpoint: its checkpoint directory (``run/checkpoints/imported``).
        epoch: the epoch label of the files (``latest``, ``200``...).
        networks: our network name -> ``(their name, file name, recipe type, args)``.
        directions: the translation directions available (``AtoB`` and/or ``BtoA``).
    """

    run: Path
    checkpoint: Path
    epoch: str
    networks: dict[str, tuple[str, str, str, dict]]
    directions: list[str]


def reference_files(folder: Path, epoch: str = "latest") -> tuple[str, dict[str, Path]]:
    """The authors' network files of one epoch in ``folder``.

    Args:
        folder: e.g. ``checkpoints/horse2zebra_pretrained`` of the authors' code.
        epoch: ``latest`` (``latest_net_*.pth``, else the highest numbered epoch) or an epoch label
            such as ``200`` (``200_net_*.pth``).

    Returns:
        The epoch label used and ``{their network name: file}``.

    Raises:
        CheckpointError: not a folder, no such files, no files of ``epoch`` (lists those there),
            no generator, or both a single ``G`` and ``G_A``/``G_B``.
    """
    if not folder.is_dir():
        raise CheckpointError(f"{folder}: not a folder; give the folder of the authors' .pth files "
                              "(e.g. checkpoints/horse2zebra_pretrained).", key=str(folder), code="not-a-folder")
    found: dict[str, dict[str, Path]] = {}
    for file in sorted(folder.iterdir()):
        match = FILE_NAME.fullmatch(file.name)
        if match and file.is_file():
            found.setdefault(match["epoch"], {})[match["net"]] = file
    if not found:
        raise CheckpointError(f"{folder}: no network files of the authors' code (<epoch>_net_G_A.pth, ..._net_D_B.pth, "
                              "or latest_net_G.pth).", key=str(folder), code="no-files")
    if epoch == "latest" and "latest" not in found and any(e.isdigit() for e in found):
        epoch = max((e for e in found if e.isdigit()), key=int)
    if epoch not in found:
        raise CheckpointError(f"{folder}: no files of epoch '{epoch}'; epochs here: {', '.join(sorted(found))}. "
                              "Choose one with --epoch.", key=str(folder), code="no-epoch")
    files = found[epoch]
    if "G" in files and files.keys() & {"G_A", "G_B"}:
        raise CheckpointError(f"{folder}: both {files['G'].name} (a one-direction test model) and G_A/G_B files of "
                              f"epoch '{epoch}'; move one kind elsewhere.", key=str(folder), code="mixed-files")
    if not files.keys() & {"G", "G_A", "G_B"}:
        raise CheckpointError(f"{folder}: epoch '{epoch}' has discriminators only ({', '.join(sorted(files))}); "
                              "translation needs a generator file (G_A, G_B or G).",
                              key=str(folder), code="no-generator")
    return epoch, files


def load_reference_state(path: Path) -> dict[str, Tensor]:
    """A state dict the authors' code saved, loaded with ``weights_only=True`` on the CPU, its
    ``module.`` prefixes (``DataParallel``) removed.

    Raises:
        CheckpointError: not a PyTorch file, a pickled object the safe loader refuses (a whole
            model would run code; it is never executed), or not a state dict of tensors.
        OSError: the file cannot be read.
    """
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except OSError:  # unreadable: the command reports it as it is
        raise
    except Exception as err:  # foreign bytes fail inside torch.load in many ways (EOFError, KeyError, IndexError...)
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(err))
        if isinstance(err, pickle.UnpicklingError) and found:  # the safe loader met an object it would have to run
            raise CheckpointError(f"{path}: holds a pickled {found[1]} object, not a plain state dict; refused without "
                                  "loading it (that could run code). Only state dicts, as the authors' save_networks "
                                  "writes them, are imported.", key=str(path), code="unsafe") from err
        raise CheckpointError(f"{path}: not a readable PyTorch file ({type(err).__name__} in torch.load); is it "
                              "complete, and a state dict saved with torch.save?",
                              key=str(path), code="unreadable") from err
    other = next((k for k, v in state.items() if not isinstance(v, Tensor)), None) if isinstance(state, dict) else None
    if not isinstance(state, dict) or other is not None:
        what = f"a dict whose '{other}' is not a tensor" if isinstance(state, dict) else f"a {type(state).__name__}"
        raise CheckpointError(f"{path}: holds {what}, not a state dict of tensors (the authors' save_networks "
                              "writes net.state_dict()).", key=str(path), code="not-a-state-dict")
    return checkpoint.strip_prefixes(dict(state))


def _conv(state: dict, key: str, kernel: int, file: Path, what: str) -> Tensor:
    """``state[key]``, a convolution weight of ``kernel`` x ``kernel``, or a refusal naming it."""
    weight = state.get(key)
    if weight is None or weight.ndim != 4 or tuple(weight.shape[-2:]) != (kernel, kernel):
        found = "not found" if weight is None else f"has shape {tuple(weight.shape)}"
        raise CheckpointError(f"{file}: key '{key}' ({what}, a {kernel}x{kernel} convolution) {found}; it is not a "
                              "model of the authors' CycleGAN (resnet generator, PatchGAN discriminator).",
                              key=str(file), code="not-cyclegan")
    return weight


def generator_spec(state: dict[str, Tensor], file: Path) -> tuple[str, dict]:
    """The recipe ``type`` and ``args`` of our ResNet generator for one of the authors' generator
    state dicts (``ResnetGenerator`` of ``models/networks.py``): ``resnet_9blocks``,
    ``resnet_6blocks``, or ``resnet`` with ``n_blocks``.

    Raises:
        CheckpointError: the first or the last 7x7 convolution is missing or not 7x7 (names the key).
    """
    first = _conv(state, "model.1.weight", 7, file, "the first convolution of the authors' ResnetGenerator")
    blocks = {int(m[1]) for key in state if (m := re.match(r"model\.(\d+)\.conv_block\.", key))}
    last = _conv(state, f"model.{17 + len(blocks)}.weight", 7, file,
                 f"its last convolution after {len(blocks)} residual blocks")
    args = {"in_channels": first.shape[1], "out_channels": last.shape[0], "ngf": first.shape[0], "norm": "instance"}
    if any(key.endswith(".conv_block.6.weight") for key in state):  # Dropout(0.5) shifts the second convolution
        args["dropout"] = True
    kind = {9: "resnet_9blocks", 6: "resnet_6blocks"}.get(len(blocks))
    return (kind, args) if kind else ("resnet", {**args, "n_blocks": len(blocks)})


def discriminator_spec(state: dict[str, Tensor], file: Path) -> tuple[str, dict]:
    """The recipe ``type`` and ``args`` of our PatchGAN for one of the authors' discriminator state
    dicts (``NLayerDiscriminator`` of ``models/networks.py``): ``basic`` for 3 layers, else
    ``n_layers`` with ``n_layers``.

    Raises:
        CheckpointError: the first 4x4 convolution is missing, or too few convolutions for a PatchGAN.
    """
    first = _conv(state, "model.0.weight", 4, file, "the first convolution of the authors' NLayerDiscriminator")
    n_layers = sum(1 for key, v in state.items() if re.fullmatch(r"model\.\d+\.weight", key) and v.ndim == 4) - 2
    if n_layers < 1:
        raise CheckpointError(f"{file}: {n_layers + 2} convolution(s) under model.*; the authors' NLayerDiscriminator "
                              "has n_layers + 2 (5 for the 70x70 PatchGAN).", key=str(file), code="not-cyclegan")
    args = {"in_channels": first.shape[1], "ndf": first.shape[0], "norm": "instance"}
    return ("basic", args) if n_layers == 3 else ("n_layers", {**args, "n_layers": n_layers})


def drop_instance_norm_stats(state: dict[str, Tensor], net: nn.Module) -> int:
    """Delete the keys the reference's ``BaseModel.__patch_instance_norm_state_dict`` deletes: an
    InstanceNorm layer's ``running_mean``/``running_var`` where ``net``'s layer keeps none, and its
    ``num_batches_tracked``. Returns how many were deleted."""
    dropped = 0
    for key in [k for k in state if k.rpartition(".")[2] in _NORM_STATS]:
        prefix, _, leaf = key.rpartition(".")
        try:
            layer = net.get_submodule(prefix)
        except AttributeError:  # no such layer here: the fit check names the key
            continue
        if type(layer).__name__.startswith("InstanceNorm") and (leaf == "num_batches_tracked" or getattr(layer, leaf) is None):
            del state[key]
            dropped += 1
    return dropped


def check_fit(net: nn.Module, state: dict[str, Tensor], file: Path, described: str) -> None:
    """Refuse a state dict whose keys or shapes differ from ``net``'s.

    Raises:
        CheckpointError: ``"<file>: key '<key>': expected <shape>, found <shape> (<described>)."``, a
            missing or extra key written as ``no such key``, and how many more keys differ.
    """
    mine = {k: tuple(v.shape) for k, v in net.state_dict().items()}
    theirs = {k: tuple(v.shape) for k, v in state.items()}
    bad = [k for k in dict.fromkeys([*mine, *theirs]) if mine.get(k) != theirs.get(k)]
    if bad:
        key, more = bad[0], f"; {len(bad) - 1} more key(s) differ" if len(bad) > 1 else ""
        raise CheckpointError(f"{file}: key '{key}': expected {mine.get(key, 'no such key')}, found "
                              f"{theirs.get(key, 'no such key')} ({described}{more}).",
                              key=str(file), code="does-not-fit")


def _described(kind: str, args: dict) -> str:
    if "ngf" in args:
        blocks = args.get("n_blocks", {"resnet_9blocks": 9, "resnet_6blocks": 6}.get(kind))
        return (f"a resnet generator with ngf={args['ngf']}, {blocks} residual blocks, {args['in_channels']} -> "
                f"{args['out_channels']} channels, as read from its keys")
    return (f"a PatchGAN discriminator with ndf={args['ndf']}, n_layers={args.get('n_layers', 3)}, "
            f"{args['in_channels']} channels, as read from its keys")


def _domain_channels(specs: dict[str, tuple[str, dict]], files: dict[str, Path]) -> tuple[int, int]:
    """(C_A, C_B) from the generators, checked against every imported network.

    Raises:
        CheckpointError: two files disagree on a domain's channel count (names both).
    """
    said: dict[str, list[tuple[int, str]]] = {"A": [], "B": []}
    reads = {"G_AB": (("A", "in_channels"), ("B", "out_channels")), "G_BA": (("B", "in_channels"), ("A", "out_channels")),
             "D_A": (("A", "in_channels"),), "D_B": (("B", "in_channels"),)}
    for name, (_, args) in specs.items():
        for domain, arg in reads[name]:
            said[domain].append((args[arg], files[name].name))
    for domain, claims in said.items():
        if len({c for c, _ in claims}) > 1:
            detail = ", ".join(f"{f}: {c}" for c, f in claims)
            raise CheckpointError(f"{files[next(iter(specs))].parent}: the files disagree on the channels of domain "
                                  f"{domain} ({detail}); they are not one CycleGAN model.",
                                  key=f'domain {domain}', code="channels-disagree")
    return said["A"][0][0], said["B"][0][0]


def _unavailable(files: dict[str, Path], folder: Path, epoch: str) -> dict[str, str]:
    """Direction -> why it cannot be translated, for the directions without a generator file."""
    if "G" in files:
        return {"BtoA": f"it was imported from {files['G'].name}, the authors' one-direction test model (A to B); "
                        "their B-to-A model (e.g. zebra2horse for horse2zebra) is another download: import it as "
                        "another run"}
    return {d: f"{folder} has no {epoch}_net_{g}.pth, the authors' {arrow} generator"
            for d, g, arrow in (("AtoB", "G_A", "A-to-B"), ("BtoA", "G_B", "B-to-A")) if g not in files}


def import_reference(folder: str | Path, out: str | Path, epoch: str = "latest", data_root: str | None = None,
                     registry: Registry | None = None) -> ImportedRun:
    """Convert the authors' CycleGAN ``.pth`` files into a run of the ``cyclegan`` recipe.

    Args:
        folder: the folder of ``<epoch>_net_G_A.pth`` / ``G_B`` (and ``D_A``/``D_B`` if present),
            or of a one-direction test model ``<epoch>_net_G.pth`` (then only ``AtoB`` exists).
        out: the new run directory (must not hold a run yet).
        epoch: ``latest`` or an epoch label (:func:`reference_files`).
        data_root: the recipe's ``data.args.root``; unset, training asks for it.
        registry: component registry (default: the entry-point registry).

    Returns:
        The :class:`ImportedRun`. Networks of the recipe without a file (the other direction of a
        test model, discriminators that were not published) keep the recipe's types with matching
        channels, and get no weights: a run trained from the import (``init_from``) initialises them.

    Raises:
        CheckpointError: no usable files (see :func:`reference_files`), a file that is not a
            plain state dict, one whose keys or shapes do not fit the architecture read from it
            (names the file, the key, expected and found shapes), files that disagree on channel
            counts, or ``out`` already holds a run.
    """
    folder, out = Path(folder), Path(out)
    existing = checkpoint.latest(out, missing_ok=True)
    if existing is not None:
        raise CheckpointError(f"{out} already holds a run (checkpoint {existing}); choose another --out.",
                              key=str(out), code="run-exists")
    epoch, files = reference_files(folder, epoch)
    ours = {OUR_NAME[ref]: file for ref, file in files.items()}
    theirs = {OUR_NAME[ref]: ref for ref in files}
    states = {name: load_reference_state(file) for name, file in ours.items()}
    specs = {name: (generator_spec if name.startswith("G") else discriminator_spec)(state, ours[name])
             for name, state in states.items()}
    c_a, c_b = _domain_channels(specs, ours)

    recipe = load_recipe("cyclegan")
    recipe.name = folder.resolve().name
    if data_root is not None:
        recipe.data.args.root = str(data_root)
    recipe.data.args.channels = c_a if c_a == c_b else [c_a, c_b]
    for name, other in (("G_AB", "G_BA"), ("G_BA", "G_AB")):  # an absent generator mirrors the other one
        if name not in specs:
            kind, args = specs[other]
            specs[name] = (kind, {**args, "in_channels": args["out_channels"], "out_channels": args["in_channels"]})
    for name, (kind, args) in specs.items():
        recipe.networks[name].type, recipe.networks[name].args = kind, args
    for name, channels in (("D_A", c_a), ("D_B", c_b)):
        if name not in specs:  # the recipe's discriminator, on the domain's channels
            recipe.networks[name].args.in_channels = channels
    recipe.inference = {d: g for d, g in (("AtoB", "G_AB"), ("BtoA", "G_BA")) if g in ours}
    if c_a != c_b:  # the identity loss compares images of both domains (the reference asserts equal channels too)
        recipe = apply_overrides(recipe, [f"{k}.{t}=null" for t in ("idt_A", "idt_B")
                                          for k in ("images", "steps.generators.losses")])

    resolved = resolve(recipe, registry, checked=False)
    nets, source = {}, {}
    for name, state in states.items():
        net = build_network(resolved, resolved.networks[name], init=False)
        dropped = drop_instance_norm_stats(state, net)
        check_fit(net, state, ours[name], _described(*specs[name]))
        net.load_state_dict(state)
        nets[name] = net
        source[name] = {"file": ours[name].name, "reference_name": theirs[name],
                        "sha256": checkpoint.file_sha256(ours[name]), "instance_norm_keys_dropped": dropped}
    about = {"imported_from": "the authors' pytorch-CycleGAN-and-pix2pix (Zhu et al., ICCV 2017)",
             "folder": str(folder.resolve()), "epoch": epoch, "networks": source,
             "directions": list(recipe.inference), "unavailable": _unavailable(files, folder, epoch),
             "not_imported": [n for n in recipe.networks if n not in nets]}
    text = to_yaml(recipe)
    out.mkdir(parents=True, exist_ok=True)
    checkpoint.atomic_write_text(out / "recipe.yaml", text)
    ckpt = checkpoint.write(out / "checkpoints", CHECKPOINT_NAME, nets, None, text, keep=1,
                           extra={checkpoint.SOURCE: json.dumps(about, indent=2) + "\n"})
    networks = {n: (theirs[n], ours[n].name, *specs[n]) for n in nets}
    return ImportedRun(out, ckpt, epoch, networks, list(recipe.inference))
