"""Datasets: image files (:mod:`~unpaired.data.io`), pairing and sampling
(:mod:`~unpaired.data.pairs`), preprocessing, a recipe's dataset (:mod:`~unpaired.data.build`),
``unpaired data check`` (:mod:`~unpaired.data.check`) and ``unpaired data download``."""
