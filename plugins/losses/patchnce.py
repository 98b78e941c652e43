"""PatchNCE loss (kind ``consistency_loss``, name ``patchnce``) of CUT: Park, Efros, Zhang & Zhu,
"Contrastive Learning for Unpaired Image-to-Image Translation", ECCV 2020.

A generated image must keep the content of the image it was made from, patch by patch: the
generator's own encoder embeds both images; at each chosen encoder layer a set of random spatial
positions is sampled (the same positions in both images), each feature goes through a small
per-layer MLP and is L2-normalised, and an InfoNCE loss asks each patch of the generated image
(the query) to be closer to the source patch at the same position (the positive) than to the
source patches at the other sampled positions of the same image (the negatives). Follows the
authors' code, taesungp/contrastive-unpaired-translation: ``models/patchnce.py``
(``PatchNCELoss``), ``models/networks.py`` (``PatchSampleF``, ``Normalize``) and
``models/cut_model.py`` (``calculate_NCE_loss``), with its defaults (layers 0,4,8,12,16,
256 patches, nce_T 0.07, MLP width 256, negatives only from the same image).

A recipe term names the generator whose encoder is used; the trainer gives it to the
constructor (to build the MLP heads) and to ``forward``::

    nce_A: {consistency: patchnce, input: fake_B, target: real_A, network: G_AB, weight: 1.0,
            args: {layers: [0, 4, 8, 12, 16], num_patches: 256}}
    nce_B: {consistency: patchnce, input: idt_B, target: real_B, network: G_AB, weight: 1.0}

``input`` is the generated image (CUT's ``tgt``: fake_B = G(real_A), or idt_B = G(real_B) for
the identity term) and ``target`` the image it must correspond to (CUT's ``src``). CUT's
``lambda_NCE`` is the term's weight: CUT mode uses lambda_NCE = 1 with the NCE identity term and
averages the two terms (so weight 0.5 each); FastCUT uses lambda_NCE = 10 without the identity
term. The MLP heads are this loss's parameters, trained with the generator (CUT trains them by
their own Adam with the generator's lr and betas, stepped in the generator step).
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unpaired import Component, hookimpl
from unpaired.plugin.features import feature_channels, extract_features, resolve_layers
from unpaired.plugin.losses import check_same_shape
from unpaired.plugin.registry import closest
from unpaired.recipe.graph import hflip_where
from unpaired_plugins.networks import init as inits

__all__ = ["PatchNCELoss", "l2_normalize", "patch_nce", "sample_patches"]

#: Weight initialisations a head can use (those of :mod:`unpaired_plugins.networks.init`;
#: ``none`` keeps PyTorch's default ``nn.Linear`` initialisation, where that module has it).
INITS = {name: getattr(inits, name)
         for name in ("normal", "xavier", "kaiming", "orthogonal", "none") if hasattr(inits, name)}


def l2_normalize(x: Tensor) -> Tensor:
    """Rows of ``x`` (M, D) scaled to unit L2 norm, as CUT's ``Normalize(2)``:
    ``x / (‖x‖₂ + 1e-7)`` (a zero row stays zero, with a zero gradient: CUT's ``pow(0.5)`` of a
    zero sum has an infinite one, which made small generators' steps non-finite)."""
    return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + 1e-7)


def sample_patches(feat: Tensor, patch_id: Tensor | None, num_patches: int) -> tuple[Tensor, Tensor]:
    """Features at random spatial positions, as CUT's ``PatchSampleF`` (before its MLP).

    Args:
        feat: a feature map (N, C, H, W).
        patch_id: flat positions in [0, H·W) to take; ``None`` draws
            ``randperm(H·W)[:min(num_patches, H·W)]`` on ``feat``'s device.
        num_patches: how many positions to draw when ``patch_id`` is ``None``.

    Returns:
        ``(samples, patch_id)``: samples (N·P, C), image-major (rows n·P … n·P + P − 1 belong to
        image n), and the positions (P,) used — the same for every image of the batch.
    """
    flat = feat.permute(0, 2, 3, 1).flatten(1, 2)  # (N, H*W, C)
    if patch_id is None:
        patch_id = torch.randperm(flat.shape[1], device=feat.device)
        patch_id = patch_id[: min(num_patches, flat.shape[1])]
    return flat[:, patch_id, :].flatten(0, 1), patch_id


def patch_nce(feat_q: Tensor, feat_k: Tensor, nce_T: float = 0.07, batch_size: int = 1) -> Tensor:
    """Per-patch InfoNCE loss of CUT's ``PatchNCELoss`` (Park et al., ECCV 2020, eq. 2).

    For patch i of image n: logits ``[q_i·k_i, q_i·k_j (j ≠ i)] / nce_T`` over the P patches of the
    same image, the diagonal (j = i) among the negatives filled with −10 before the division (so
    ``exp(−10/nce_T)`` is about 0), and the loss is the cross-entropy with class 0, i.e.
    ``−log softmax(logits)[0]``. ``feat_k`` is detached: the key side gets no gradient.

    Args:
        feat_q: queries (N·P, D), image-major, usually L2-normalised (dot products in [-1, 1]).
        feat_k: keys (N·P, D), same layout; row r is the positive of query row r.
        nce_T: temperature (CUT: 0.07).
        batch_size: N, the number of images. Negatives come from the same image only (CUT's
            default ``nce_includes_all_negatives_from_minibatch=False``); ``batch_size=1`` with
            several images' rows takes negatives from the whole minibatch (CUT's single-image
            setting).

    Returns:
        Per-patch losses (N·P,), each ≥ 0; with unit vectors at most about
        ``2/nce_T + log P``.

    Raises:
        ValueError: ``feat_q`` and ``feat_k`` differ in shape or are not 2-D, or N·P is not a
            multiple of ``batch_size``.
    """
    if feat_q.shape != feat_k.shape or feat_q.ndim != 2:
        raise ValueError(
            f"patch_nce: queries {tuple(feat_q.shape)} and keys {tuple(feat_k.shape)} must both "
            "be (N*P, D)."
        )
    rows, dim = feat_q.shape
    if batch_size < 1 or rows % batch_size:
        raise ValueError(f"patch_nce: {rows} rows do not split into batch_size={batch_size} images.")
    feat_k = feat_k.detach()
    l_pos = (feat_q * feat_k).sum(1, keepdim=True)  # (N*P, 1)
    q = feat_q.view(batch_size, -1, dim)
    k = feat_k.view(batch_size, -1, dim)
    npatches = q.shape[1]
    l_neg = torch.bmm(q, k.transpose(2, 1))  # (N, P, P)
    diagonal = torch.eye(npatches, device=feat_q.device, dtype=torch.bool)[None]
    l_neg = l_neg.masked_fill(diagonal, -10.0).view(-1, npatches)
    logits = torch.cat((l_pos, l_neg), dim=1) / nce_T
    target = torch.zeros(rows, dtype=torch.long, device=feat_q.device)
    return F.cross_entropy(logits, target, reduction="none")


def _no_autocast(device_type: str):
    if torch.amp.is_autocast_available(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()  # e.g. the meta device, where autocast does not exist


class PatchNCELoss(nn.Module):
    """PatchNCE loss of CUT (Park et al., ECCV 2020) on the encoder features of ``network``.

    ``forward(input, target, network)``: ``input`` the generated images (N, C, H, W) in [-1, 1]
    (the queries, CUT's ``tgt``), ``target`` the images they were made from, same shape (the
    keys, CUT's ``src``), ``network`` the generator → scalar, the mean over ``layers`` of the mean
    per-patch :func:`patch_nce` loss. Both images go through ``network``'s layers up to the last
    of ``layers`` (:func:`unpaired.features.extract_features`); at each layer
    ``min(num_patches, H_l·W_l)`` positions are drawn from the key map and used for both maps,
    each sample goes through that layer's head and :func:`l2_normalize`. Gradients reach the
    heads and ``network`` through the query side only, as in CUT (the key is detached; its
    branch runs without autograd, which gives the same gradients with less memory).

    The value is in [0, ~2/nce_T + log P]: about log P (5.5 for 256 patches) for unrelated
    features, near 0 when every query matches its own key far better than the others.

    Args:
        network: the generator whose encoder is read (given by the trainer: the recipe term's
            ``network``); used here only to size the heads and check ``layers``, and not kept.
        layers: layers of ``network`` (ints into its ``model`` sequence, CUT's numbering, or
            submodule paths); CUT's default ``(0, 4, 8, 12, 16)``.
        num_patches: positions sampled per layer (CUT: 256).
        nce_T: temperature (CUT: 0.07).
        mlp_dim: width of the heads' hidden and output layers (CUT's ``netF_nc``: 256).
        use_mlp: one head ``Linear(C_l, mlp_dim), ReLU, Linear(mlp_dim, mlp_dim)`` per layer
            (CUT's ``netF mlp_sample``); False samples the raw features (``netF sample``), and
            the loss has no parameters.
        init, init_gain: the heads' initialisation, a name of
            :mod:`unpaired_plugins.networks.init`, and its gain (CUT: xavier, 0.02).
        flipped: the name of a recipe value (N,) in {0, 1} that says which samples of ``input``
            were made from a left-right mirrored source (FastCUT's flip-equivariance,
            ``--flip_equivariance``: fake_B = G(flip(real_A)) while the keys come from the
            unmirrored real_A); their query feature maps are mirrored back before sampling
            (CUT's ``calculate_NCE_loss``), so G must commute with mirroring. None: no mirroring.
        network_inputs: names of recipe values passed to the network after the image, the same
            for both images: UNSB's ``netG(x, time_idx * 0, z, nce_layers, encode_only=True)``
            reads its encoder at time 0 with one noise code for query and key.

    Raises:
        ValueError: empty or bad ``layers`` (the message names the layer and the valid range or
            names), ``num_patches < 1``, ``nce_T <= 0``, ``mlp_dim < 1``, unknown ``init``; in
            ``forward``, ``input`` and ``target`` of different shapes.
    """

    #: arguments that name values of the step the loss reads (made for it: :func:`declared_images`)
    image_args = ("flipped", "network_inputs")

    def __init__(
        self,
        network: nn.Module,
        layers: Sequence[int | str] = (0, 4, 8, 12, 16),
        num_patches: int = 256,
        nce_T: float = 0.07,
        mlp_dim: int = 256,
        use_mlp: bool = True,
        init: str = "xavier",
        init_gain: float = 0.02,
        flipped: str | None = None,
        network_inputs: Sequence[str] = (),
    ):
        super().__init__()
        if not isinstance(network, nn.Module):
            raise ValueError(f"patchnce: network must be an nn.Module, got {type(network).__name__}.")
        layers = list(layers) if isinstance(layers, Sequence) and not isinstance(layers, str) else layers
        if not layers or isinstance(layers, (str, int)):
            raise ValueError(f"patchnce: layers must be a non-empty list, got {layers!r}.")
        if isinstance(num_patches, bool) or int(num_patches) != num_patches or num_patches < 1:
            raise ValueError(f"patchnce: num_patches must be an integer >= 1, got {num_patches!r}.")
        if not float(nce_T) > 0:
            raise ValueError(f"patchnce: nce_T (temperature) must be > 0, got {nce_T!r}.")
        if int(mlp_dim) != mlp_dim or mlp_dim < 1:
            raise ValueError(f"patchnce: mlp_dim must be an integer >= 1, got {mlp_dim!r}.")
        if init not in INITS:
            raise ValueError(
                f"patchnce: unknown init '{init}'; known: {', '.join(INITS)}.{closest(init, INITS)}"
            )
        self.layers = tuple(layers)
        self.num_patches, self.nce_T = int(num_patches), float(nce_T)
        self.mlp_dim, self.use_mlp = int(mlp_dim), bool(use_mlp)
        self.init, self.init_gain = init, float(init_gain)
        if flipped is not None and not (isinstance(flipped, str) and flipped):
            raise ValueError(f"patchnce: flipped must name a recipe value (a 0/1 coin per sample), got {flipped!r}.")
        self.flipped = flipped
        if isinstance(network_inputs, str) or not all(isinstance(n, str) for n in network_inputs):
            raise ValueError(f"patchnce: network_inputs must be a list of recipe value names, got {network_inputs!r}.")
        self.network_inputs = tuple(network_inputs)
        self.network_name = type(network).__name__  # a name only: keeping the module would make
        # the generator's weights parameters of this loss.
        resolve_layers(network, self.layers)  # a bad layer fails here, naming it
        self.heads = nn.ModuleList()
        if self.use_mlp:
            # Built eagerly (CUT builds them lazily at the first batch) from the channel counts
            # of a meta-device copy of the network, on the network's device.
            device = next(itertools.chain(network.parameters(), network.buffers()),
                          torch.empty(0)).device
            for c in feature_channels(network, self.layers):
                self.heads.append(nn.Sequential(
                    nn.Linear(c, self.mlp_dim, device=device), nn.ReLU(),
                    nn.Linear(self.mlp_dim, self.mlp_dim, device=device)))
            # CUT's options/base_options.py: --init_type default 'xavier', --init_gain 0.02, used
            # for netF too: create_mlp calls init_net(self, init_type, init_gain), i.e.
            # xavier_normal_(gain=0.02) on the Linear weights and zero biases.
            INITS[self.init](self.heads, self.init_gain)

    def forward(self, input: Tensor, target: Tensor, network: nn.Module, images: dict | None = None) -> Tensor:
        check_same_shape(input, target, "patchnce loss")
        missing = [n for n in (*self.network_inputs, *([self.flipped] if self.flipped else [])) if n not in (images or {})]
        if missing:
            raise ValueError(f"patchnce: {', '.join(missing)} (flipped / network_inputs) are not values of this step; "
                             "define them in the recipe's images (e.g. {random: integer, high: 2}).")
        extra = [images[n] for n in self.network_inputs]
        feat_q = extract_features(network, input, self.layers, *extra)
        if self.flipped is not None:
            feat_q = [hflip_where(f, images[self.flipped]) for f in feat_q]
        with torch.no_grad():  # the key is detached in patch_nce anyway (CUT); no graph needed
            feat_k = extract_features(network, target, self.layers, *extra)
        # Sampling, heads and logits in float32 even under bf16/fp16 autocast: the logits are
        # dot products divided by nce_T = 0.07, and bf16's 8-bit mantissa would lose the small
        # differences between positive and negatives that the cross-entropy depends on.
        total = input.new_zeros((), dtype=torch.float32)
        with _no_autocast(input.device.type):
            for i, (fq, fk) in enumerate(zip(feat_q, feat_k)):
                n = fk.shape[0]
                with torch.no_grad():
                    k, patch_id = sample_patches(fk.float(), None, self.num_patches)
                    if self.use_mlp:
                        k = self.heads[i](k)
                    k = l2_normalize(k)
                q, _ = sample_patches(fq.float(), patch_id, self.num_patches)
                if self.use_mlp:
                    q = self.heads[i](q)
                q = l2_normalize(q)
                total = total + patch_nce(q, k, self.nce_T, n).mean()
        return total / len(feat_q)

    def extra_repr(self) -> str:
        return (f"network={self.network_name}, layers={list(self.layers)}, "
                f"num_patches={self.num_patches}, nce_T={self.nce_T}, mlp_dim={self.mlp_dim}, "
                f"use_mlp={self.use_mlp}, init={self.init!r}, init_gain={self.init_gain}"
                + (f", flipped={self.flipped!r}" if self.flipped else ""))


@hookimpl
def unpaired_components():
    return [Component("consistency_loss", "patchnce", PatchNCELoss)]
