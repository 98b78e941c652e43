"""Classifiers: frozen judges of translations and feature extractors for metrics (FID/KID,
diversity). ``fashion_mnist``: a small CNN trained on the full Fashion-MNIST training set."""

from unpaired import Component, hookimpl

from .fashion import FashionClassifier


@hookimpl
def unpaired_components():
    return [Component("classifier", "fashion_mnist", FashionClassifier)]
