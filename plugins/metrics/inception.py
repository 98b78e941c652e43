"""``inception`` feature extractor: the standard FID Inception-v3 (pool3, 2048-d), from a local file.

The network and weights are the ones every published FID uses (TensorFlow's 2015-12-05 Inception,
Heusel et al., "GANs Trained by a Two Time-Scale Update Rule Converge to a Local Nash
Equilibrium", NeurIPS 2017), as torch-fidelity ports them bit-exactly (``inception-v3-compat``).
No machine here can download them, so the weights file must be on disk; when it is not, the
error names the file and where to get it.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor, nn

from unpaired.runs.checkpoint import file_sha256
from unpaired.data.io import to_uint8

FILE = "weights-inception-2015-12-05-6726825d.pth"
URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{FILE}"
SHA256_PREFIX = "6726825d"  # torch.hub's convention: the file name carries its hash's first digits


def default_path() -> Path:
    """``$UNPAIRED_INCEPTION_WEIGHTS``, else where torch.hub caches the file (``$TORCH_HOME/hub/checkpoints``)."""
    env = os.environ.get("UNPAIRED_INCEPTION_WEIGHTS")
    return Path(env) if env else Path(torch.hub.get_dir()) / "checkpoints" / FILE


class InceptionFeatures(nn.Module):
    """FID Inception-v3 pool3 features (N, 2048) of images (N, C, H, W) in [-1, 1], C = 1 or 3.

    Images are quantised to uint8 as a saved PNG would be (grey repeated to RGB) and resized to
    299x299 inside the network (TensorFlow-1 bilinear), so scores are comparable with other FIDs
    computed on image files.

    Args:
        weights: path of ``weights-inception-2015-12-05-6726825d.pth``; default
            :func:`default_path`.

    Raises:
        ValueError: the file is missing (names the path and the URL to fetch it from), or is not
            that file (its SHA-256 does not start with 6726825d; it is then not loaded: the file is
            a pickle, and only the known one is trusted).
    """

    preprocess = "uint8 RGB (grey repeated), resized to 299x299 (TF1 bilinear) inside the network"

    def __init__(self, weights: str | None = None):
        super().__init__()
        path = Path(weights).expanduser() if weights else default_path()
        if not path.is_file():
            raise ValueError(
                f"the FID Inception weights are not at {path}. On a machine with internet: curl -L -o {FILE} {URL} ; "
                f"then copy it to {path} (or set eval.features.args.weights, or $UNPAIRED_INCEPTION_WEIGHTS)."
            )
        digest = file_sha256(path)
        if not digest.startswith(SHA256_PREFIX):
            raise ValueError(f"{path} is not {FILE} (SHA-256 {digest[:16]}..., expected {SHA256_PREFIX}...); "
                             f"download it again from {URL}.")
        from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

        self.net = FeatureExtractorInceptionV3("inception-v3-compat", ["2048"], feature_extractor_weights_path=str(path))
        self.weights_path = str(path)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"inception features take images (N, 1 or 3, H, W) in [-1, 1], got {tuple(x.shape)}")
        return self.net(to_uint8(x).expand(-1, 3, -1, -1))[0]
