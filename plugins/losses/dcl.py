"""DCLGAN's dual PatchNCE loss and SimDCL's similarity loss (kind ``consistency_loss``, name
``dual_patchnce``): Han, Shechtman & Fu, "Dual Contrastive Learning for Unpaired Image-to-Image
Translation", CVPR Workshops 2021; the authors' code, JunlinHan/DCLGAN, ``models/dcl_model.py``
(``calculate_NCE_loss1``/``2``), ``models/simdcl_model.py`` (``calculate_Sim_loss_all``) and
``models/networks.py`` (``PatchSampleF``, ``MappingF``).

CUT's PatchNCE reads one generator's encoder for both images. DCLGAN has two generators, G_A: A -> B
and G_B: B -> A, and two MLP heads F1 and F2, and crosses them: a patch of fake_B = G_A(real_A),
embedded by G_B's encoder and F2, must match the patch of real_A at the same place, embedded by G_A's
encoder and F1, rather than real_A's other patches; and the same the other way round::

    NCE1 = PatchNCE(q = F2(enc_B(fake_B)), k = F1(enc_A(real_A)))
    NCE2 = PatchNCE(q = F1(enc_A(fake_A)), k = F2(enc_B(real_B)))
    loss = (NCE1 + NCE2) / 2 + similarity · Sim

with CUT's per-patch InfoNCE (:func:`~unpaired_plugins.losses.patchnce.patch_nce`, keys detached)
at each layer, averaged over layers. The recipe term's weight is DCLGAN's ``lambda_NCE`` (2).

SimDCL adds a similarity loss against mode collapse: four small networks F3..F6 (``MappingF``: a
3x3 stride-2 convolution over the (layers, patches, features) stack of an image's sampled
embeddings, ReLU, global average, Linear-ReLU-Linear, L2 normalisation) map real_A's and fake_A's
embeddings by G_A (F3, F6), and fake_B's and real_B's by G_B (F4, F5) to 64-d codes, which must be
equal::

    Sim = L1(F3(real_A), F6(fake_A)) + L1(F4(fake_B), F5(real_B))      L1: mean absolute difference

The real images' embeddings are the NCE keys, and here they keep their gradients (the authors'
code), so the similarity loss trains the encoders through both images; the fake images'
embeddings are sampled at fresh random positions. SimDCL's ``lambda_SIM`` (10) enters as
``similarity = lambda_SIM / lambda_NCE`` (5 with the term's weight 2): the authors add
``lambda_SIM · Sim`` to ``lambda_NCE · (NCE1 + NCE2) / 2``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from unpaired import Component, hookimpl
from unpaired.plugin.diagnostics import report
from unpaired.plugin.features import extract_features, feature_channels, resolve_layers
from unpaired.plugin.losses import check_same_shape
from unpaired_plugins.losses.patchnce import INITS, _no_autocast, l2_normalize, patch_nce, sample_patches

__all__ = ["DualPatchNCELoss", "MappingF"]


def _heads(network: nn.Module, layers: Sequence, dim: int) -> nn.ModuleList:
    """One ``Linear(C_l, dim), ReLU, Linear(dim, dim)`` per layer (DCLGAN's ``PatchSampleF`` MLPs)."""
    device = next(network.parameters()).device
    return nn.ModuleList(nn.Sequential(nn.Linear(c, dim, device=device), nn.ReLU(), nn.Linear(dim, dim, device=device))
                         for c in feature_channels(network, layers))


class MappingF(nn.Module):
    """SimDCL's mapping network (DCLGAN's ``networks.MappingF``): an image's sampled patch
    embeddings (N, L, P, D) (L layers, P patches, D features) to a unit code (N, dim).

    ``Conv2d(L, dim, 3, stride 2)`` over the (P, D) plane, ReLU, global average pooling,
    ``Linear(dim, dim)``, ReLU, ``Linear(dim, dim)``, then L2 normalisation. 10,688 parameters at
    L = 4, dim = 64, as the authors'. Their code views the whole batch as one image (it runs at
    batch size 1 only); this maps each image of the batch on its own (the same at batch size 1).
    """

    def __init__(self, layers: int, dim: int = 64):
        super().__init__()
        self.model = nn.Sequential(nn.Conv2d(layers, dim, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                                   nn.Flatten(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim))

    def forward(self, x: Tensor) -> Tensor:
        return l2_normalize(self.model(x))


class DualPatchNCELoss(nn.Module):
    """DCLGAN's dual PatchNCE loss, with SimDCL's similarity loss when ``similarity > 0``.

    ``forward(input, target, networks, images)``: ``input`` fake_B = G_A(real_A) and ``target``
    real_A (N, C, H, W) in [-1, 1]; the reverse pair fake_A = G_B(real_B) and real_B is read from
    the step's images under the names ``reverse_input`` and ``reverse_target``; ``networks`` the
    term's two generators, G_A (A -> B) first. Returns the scalar ``(NCE1 + NCE2) / 2 + similarity
    · Sim`` (module docstring) and reports ``nce1``, ``nce2`` (and ``sim``). Sampling, heads and
    logits run in float32 under autocast, as :class:`~unpaired_plugins.losses.patchnce.PatchNCELoss`.

    Args:
        networks: the term's ``networks``, G_A then G_B (given by the trainer); used to size the
            heads and check ``layers``, not kept.
        reverse_input, reverse_target: names of fake_A and real_B among the step's images.
        layers: encoder layers (DCLGAN's ``--nce_layers`` default 4, 8, 12, 16).
        num_patches, nce_T, mlp_dim: as CUT's (256, 0.07, 256).
        init, init_gain: the heads' initialisation (DCLGAN's default xavier, 0.02).
        similarity: SimDCL's ``lambda_SIM / lambda_NCE`` (0: DCLGAN, no mapping networks).
        sim_dim: the mapping networks' width (the authors' hard-coded 64); they are initialised
            N(0, 0.02) with zero biases (``MappingF``'s own ``init_type='normal'``).

    Raises:
        ValueError: not exactly two networks, bad ``layers`` or sizes, reverse image names that
            are not strings; in ``forward``, reverse images missing from the step, shapes that
            differ, or (with ``similarity``) layers with fewer positions than ``num_patches``.
    """

    #: arguments that name values of the step the loss reads (made for it, like input and target)
    image_args = ("reverse_input", "reverse_target")

    def __init__(self, networks: Mapping[str, nn.Module], reverse_input: str = "fake_A", reverse_target: str = "real_B",
                 layers: Sequence[int | str] = (4, 8, 12, 16), num_patches: int = 256, nce_T: float = 0.07,
                 mlp_dim: int = 256, init: str = "xavier", init_gain: float = 0.02, similarity: float = 0.0,
                 sim_dim: int = 64):
        super().__init__()
        if len(networks) != 2:
            raise ValueError(f"dual_patchnce: name the two generators in the term's networks, G_A (A -> B) first; got "
                             f"{list(networks) or 'none'}.")
        if not (isinstance(reverse_input, str) and isinstance(reverse_target, str)):
            raise ValueError("dual_patchnce: reverse_input and reverse_target name images of the step (fake_A, real_B).")
        layers = list(layers) if isinstance(layers, Sequence) and not isinstance(layers, str) else []
        if not layers:
            raise ValueError("dual_patchnce: layers must be a non-empty list of encoder layers, e.g. [4, 8, 12, 16].")
        if int(num_patches) != num_patches or num_patches < 1 or not float(nce_T) > 0 or int(mlp_dim) < 1:
            raise ValueError(f"dual_patchnce: num_patches and mlp_dim must be integers >= 1 and nce_T > 0; got "
                             f"{num_patches!r}, {mlp_dim!r}, {nce_T!r}.")
        if init not in INITS:
            raise ValueError(f"dual_patchnce: unknown init '{init}'; known: {', '.join(INITS)}.")
        if not float(similarity) >= 0:
            raise ValueError(f"dual_patchnce: similarity must be >= 0, got {similarity!r}.")
        g_a, g_b = networks.values()
        for net in (g_a, g_b):
            resolve_layers(net, layers)
        self.names = tuple(networks)
        self.reverse_input, self.reverse_target = reverse_input, reverse_target
        self.layers, self.num_patches, self.nce_T = tuple(layers), int(num_patches), float(nce_T)
        self.similarity = float(similarity)
        # F1 embeds G_A's features, F2 G_B's (DCLGAN builds each from the first features it sees:
        # F1 from G_A's keys of NCE1, F2 from G_B's queries of NCE1)
        self.f1, self.f2 = _heads(g_a, layers, int(mlp_dim)), _heads(g_b, layers, int(mlp_dim))
        INITS[init](self.f1, float(init_gain))
        INITS[init](self.f2, float(init_gain))
        if self.similarity:
            # F3 real_A, F4 fake_B, F5 real_B, F6 fake_A (simdcl_model.py)
            self.mapping = nn.ModuleList(MappingF(len(layers), int(sim_dim)) for _ in range(4))
            INITS["normal"](self.mapping, 0.02)

    def _embed(self, feats: list[Tensor], heads: nn.ModuleList, ids: list[Tensor] | None) -> tuple[list, list]:
        """Each layer's samples (N·P, D) at positions ``ids`` (drawn when None), through its head, unit length."""
        out, used = [], []
        for i, f in enumerate(feats):
            x, pid = sample_patches(f.float(), None if ids is None else ids[i], self.num_patches)
            out.append(l2_normalize(heads[i](x)))
            used.append(pid)
        return out, used

    def _nce(self, query: list[Tensor], key: list[Tensor], n: int) -> Tensor:
        return sum(patch_nce(q, k, self.nce_T, n).mean() for q, k in zip(query, key)) / len(query)

    def _code(self, samples: list[Tensor], n: int, mapping: nn.Module) -> Tensor:
        """An image's (layers, patches, features) stack (N, L, P, D) through a mapping network."""
        if len({s.shape[0] for s in samples}) != 1:
            raise ValueError(f"dual_patchnce: the similarity loss stacks the layers' samples, so every layer needs at "
                             f"least num_patches={self.num_patches} positions; choose deeper layers or fewer patches.")
        return mapping(torch.stack([s.view(n, -1, s.shape[-1]) for s in samples], 1))

    def forward(self, input: Tensor, target: Tensor, networks: Mapping[str, nn.Module], images: Mapping[str, Tensor]
                ) -> Tensor:
        missing = [k for k in (self.reverse_input, self.reverse_target) if k not in images]
        if missing:
            raise ValueError(f"dual_patchnce: {', '.join(missing)} (reverse_input / reverse_target) are not images of "
                             f"this step; define them in the recipe's images (fake_A = G_B(real_B)).")
        fake_a, real_b = images[self.reverse_input], images[self.reverse_target]
        check_same_shape(input, target, "dual_patchnce loss")
        check_same_shape(fake_a, real_b, "dual_patchnce loss (reverse pair)")
        g_a, g_b = (networks[n] for n in self.names)
        n = input.shape[0]
        sim = self.similarity > 0
        keys_grad = sim and torch.is_grad_enabled()  # the keys carry gradients only to Sim
        with torch.set_grad_enabled(keys_grad):  # the encoders under the step's autocast, as PatchNCE's
            real_a_feats = extract_features(g_a, target, self.layers)
            real_b_feats = extract_features(g_b, real_b, self.layers)
        fake_b_feats = extract_features(g_b, input, self.layers)
        fake_a_feats = extract_features(g_a, fake_a, self.layers)
        with _no_autocast(input.device.type):  # sampling, heads and logits in float32 (see _embed)
            with torch.set_grad_enabled(keys_grad):
                k1, ids1 = self._embed(real_a_feats, self.f1, None)
                k2, ids2 = self._embed(real_b_feats, self.f2, None)
            q1, _ = self._embed(fake_b_feats, self.f2, ids1)
            q2, _ = self._embed(fake_a_feats, self.f1, ids2)
            nce1, nce2 = self._nce(q1, k1, n), self._nce(q2, k2, n)
            report("nce1", nce1)
            report("nce2", nce2)
            total = (nce1 + nce2) / 2
            if sim:
                fake_b_free, _ = self._embed(fake_b_feats, self.f2, None)
                fake_a_free, _ = self._embed(fake_a_feats, self.f1, None)
                f3, f4, f5, f6 = self.mapping
                value = (F.l1_loss(self._code(k1, n, f3), self._code(fake_a_free, n, f6))
                         + F.l1_loss(self._code(fake_b_free, n, f4), self._code(k2, n, f5)))
                report("sim", value)
                total = total + self.similarity * value
        return total

    def extra_repr(self) -> str:
        return (f"networks={list(self.names)}, reverse=({self.reverse_input}, {self.reverse_target}), "
                f"layers={list(self.layers)}, num_patches={self.num_patches}, nce_T={self.nce_T}, "
                f"similarity={self.similarity}")


@hookimpl
def unpaired_components():
    return [Component("consistency_loss", "dual_patchnce", DualPatchNCELoss)]
