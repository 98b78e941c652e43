"""Rebuild the embedded Fashion-MNIST subsets from the full set (Debian's dataset-fashion-mnist).

    python scripts/make_fashion_subset.py [/usr/share/datasets/fashion-mnist]

Two files: the first 1,000 train and 200 test images of classes 7 (Sneaker) and 9 (Ankle boot),
the two-domain demo's; and the first 300 train and 100 test images of each of the ten classes,
the multi-domain dataset's (``fashion_classes``).
"""

import sys

import numpy as np

from unpaired_plugins.datasets.fashion import EMBEDDED, load_split
from unpaired_plugins.datasets.fashion_classes import EMBEDDED_CLASSES

source = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
for path, labels, sizes in ((EMBEDDED, (7, 9), (("train", 1000), ("test", 200))),
                            (EMBEDDED_CLASSES, range(10), (("train", 300), ("test", 100)))):
    arrays = {f"{split}_{label}": load_split(source, split, label)[:n] for split, n in sizes for label in labels}
    np.savez_compressed(path, **arrays)
    print(path, {k: v.shape for k, v in arrays.items()})
