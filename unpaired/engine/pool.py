"""Image history pool (Shrivastava et al., CVPR 2017), as used by CycleGAN (Zhu et al., ICCV 2017).

The discriminator sees fakes from the generators' history, not only the latest ones, which
reduces model oscillation (paper section 4).
"""

from __future__ import annotations

import torch
from torch import Tensor


class ImagePool:
    """A buffer of up to ``size`` generated images, each (C, H, W), detached.

    Per image of a batch, exactly as the reference ``ImagePool.query``: while the pool is not full,
    store it and return it; when full, with probability 0.5 return a random stored image and put
    the new one in its place, otherwise return the new image. ``size`` 0 returns the batch as is.

    Draws come from the pool's own generator, so its state (and contents) can be checkpointed.
    """

    def __init__(self, size: int, seed: int = 0):
        self.size = size
        self.images: list[Tensor] = []
        self.generator = torch.Generator().manual_seed(seed)

    def query(self, images: Tensor) -> Tensor:
        """Images (N, C, H, W) to show the discriminator, drawn as above."""
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand((), generator=self.generator) > 0.5:
                j = int(torch.randint(self.size, (), generator=self.generator))
                out.append(self.images[j].clone())
                self.images[j] = image.clone()
            else:
                out.append(image)
        return torch.stack(out)

    def state_dict(self) -> dict:
        return {"images": list(self.images), "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.images = list(state["images"])
        self.generator.set_state(state["generator"])
