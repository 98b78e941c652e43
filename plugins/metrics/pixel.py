"""Pixel-wise similarity of image pairs: reconstructions (``cycle``), identity mappings
(``identity``) and, on aligned test sets, translations against their true targets (``paired``).

Each reports three numbers on images (N, C, H, W) in [-1, 1]:

- ``*_l1``: mean absolute difference in [-1, 1] units (0 = identical, 2 = black vs white);
- ``*_psnr``: peak signal-to-noise ratio in dB of the images mapped to [0, 1] (max value 1),
  ``10 log10(1 / MSE)`` per image pair, averaged over pairs; identical pairs give inf;
- ``*_ssim``: structural similarity (Wang et al. 2004, kornia's, 11x11 Gaussian window) of the
  images mapped to [0, 1], averaged over pixels, channels and pairs (1 = identical).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from unpaired.data.io import to_uint8
from unpaired.evaluation.metrics import TranslationSet


def similarity(a: Tensor, b: Tensor, prefix: str) -> dict[str, float]:
    """``{prefix_l1, prefix_psnr, prefix_ssim}`` of image pairs a, b (N, C, H, W) in [-1, 1].

    Raises:
        ValueError: the two tensors differ in shape or are not (N, C, H, W) with N >= 1.
    """
    import kornia

    if a.shape != b.shape or a.ndim != 4 or len(a) == 0:
        raise ValueError(f"{prefix}: expected two image sets of the same shape (N, C, H, W), "
                         f"got {tuple(a.shape)} and {tuple(b.shape)}")
    a01, b01 = (a.float() + 1) / 2, (b.float() + 1) / 2
    psnr = torch.stack([kornia.metrics.psnr(x, y, 1.0) for x, y in zip(a01, b01)])
    return {
        f"{prefix}_l1": (a.float() - b.float()).abs().mean().item(),
        f"{prefix}_psnr": psnr.mean().item(),
        f"{prefix}_ssim": kornia.metrics.ssim(a01, b01, 11, max_val=1.0).mean().item(),
    }


def _better(prefix: str) -> dict[str, str]:
    return {f"{prefix}_l1": "min", f"{prefix}_psnr": "max", f"{prefix}_ssim": "max"}


class CycleConsistency:
    """How well a round trip restores its input: ``ts.source`` against ``ts.reconstructed``.

    Outputs ``cycle_l1`` (lower is better), ``cycle_psnr`` (dB) and ``cycle_ssim`` (higher is
    better); see the module's docstring for units. Needs the reverse direction in the recipe.
    """

    needs = ("reconstructed",)
    better = _better("cycle")

    def __call__(self, ts: TranslationSet) -> dict[str, float]:
        return similarity(ts.source, ts.reconstructed, "cycle")


class IdentityPreservation:
    """Identity mapping: how little a translation changes real target-domain images.

    Compares ``ts.target`` with ``ts.identity`` (the target images translated). Outputs
    ``identity_l1`` (lower is better), ``identity_psnr`` (dB) and ``identity_ssim`` (higher is
    better). Needs source and target domains with the same channel count.
    """

    needs = ("identity",)
    better = _better("identity")

    def __call__(self, ts: TranslationSet) -> dict[str, float]:
        return similarity(ts.target, ts.identity, "identity")


def lpips_weight_files() -> dict[Path, str]:
    """The files torch-fidelity's VGG16 LPIPS loads through torch.hub, ``{path: URL}``: the LPIPS
    linear layers and torchvision's ImageNet VGG16 (both under ``torch.hub.get_dir()/checkpoints``,
    i.e. ``$TORCH_HOME/hub/checkpoints``)."""
    import torchvision
    from torch_fidelity.sample_similarity_lpips import URL_VGG16_LPIPS

    folder = Path(torch.hub.get_dir()) / "checkpoints"
    urls = (URL_VGG16_LPIPS, torchvision.models.VGG16_Weights.IMAGENET1K_V1.url)
    return {folder / url.rsplit("/", 1)[-1]: url for url in urls}


def _check_lpips_weights() -> None:
    missing = {path: url for path, url in lpips_weight_files().items() if not path.is_file()}
    if missing:
        files = "; ".join(f"{path} (download {url})" for path, url in missing.items())
        raise ValueError(f"paired: lpips=true needs weights that are not on this machine: {files}. "
                         "Download them on a machine with internet and copy them there (or set TORCH_HOME).")


class PairedSimilarity:
    """Translations against their true targets on an aligned test set (L1, PSNR, SSIM, LPIPS).

    Compares ``ts.fake`` with ``ts.paired``. Outputs ``paired_l1`` (lower is better),
    ``paired_psnr`` (dB) and ``paired_ssim`` (higher is better), and with ``lpips=True`` also
    ``paired_lpips`` (lower is better): the learned perceptual distance of Zhang et al., CVPR 2018
    (VGG16 variant, torch-fidelity's implementation) averaged over pairs, at the images' own size,
    on the images quantised to uint8 RGB (grey images repeated over 3 channels).

    Args:
        lpips: also compute LPIPS. Its weights are never downloaded: they must already be in
            torch.hub's cache (:func:`lpips_weight_files` lists the paths and URLs).
        batch_size: image pairs per LPIPS forward pass (run on the judge's device).

    Raises:
        ValueError: ``lpips=True`` and a weights file is missing (the message names each path and
            its URL); images of different shapes, or with neither 1 nor 3 channels for LPIPS.
    """

    needs = ("paired",)

    def __init__(self, lpips: bool = False, batch_size: int = 50):
        self.lpips, self.batch_size = bool(lpips), int(batch_size)
        self.better = {**_better("paired"), **({"paired_lpips": "min"} if self.lpips else {})}
        self._net = None
        if self.lpips:
            _check_lpips_weights()  # fail when the recipe is checked, not after training

    def __call__(self, ts: TranslationSet) -> dict[str, float]:
        out = similarity(ts.fake, ts.paired, "paired")
        if self.lpips:
            out["paired_lpips"] = self._lpips(ts.fake, ts.paired, ts.judge.device)
        return out

    @torch.no_grad()
    def _lpips(self, a: Tensor, b: Tensor, device: torch.device) -> float:
        if a.shape[1] not in (1, 3):
            raise ValueError(f"paired: LPIPS takes grey or RGB images, got {a.shape[1]} channels")
        if self._net is None:
            from torch_fidelity.sample_similarity_lpips import SampleSimilarityLPIPS

            _check_lpips_weights()
            self._net = SampleSimilarityLPIPS("lpips-vgg16")
        net = self._net.to(device)
        distances = []
        for i in range(0, len(a), self.batch_size):
            x, y = (_uint8_rgb(t[i:i + self.batch_size]).to(device) for t in (a, b))
            distances.append(net(x, y).float().cpu())
        return torch.cat(distances).mean().item()


def _uint8_rgb(images: Tensor) -> Tensor:
    """(N, C, H, W) in [-1, 1] -> (N, 3, H, W) uint8, what torch-fidelity's LPIPS expects."""
    images = to_uint8(images)
    return images.expand(-1, 3, -1, -1) if images.shape[1] == 1 else images
