"""Rebuild the embedded Fashion-MNIST subset from the full set (Debian's dataset-fashion-mnist).

    python scripts/make_fashion_subset.py [/usr/share/datasets/fashion-mnist]

Keeps the first 1,000 train and 200 test images of classes 7 (Sneaker) and 9 (Ankle boot).
"""

import sys

import numpy as np

from unpaired_plugins.datasets.fashion import EMBEDDED, load_split

source = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
arrays = {f"{split}_{label}": load_split(source, split, label)[:n]
          for split, n in (("train", 1000), ("test", 200)) for label in (7, 9)}
np.savez_compressed(EMBEDDED, **arrays)
print(EMBEDDED, {k: v.shape for k, v in arrays.items()})
