"""Classifiers: frozen judges of translations and feature extractors for metrics (FID/KID,
diversity). ``fashion_mnist``: a small CNN trained on the full Fashion-MNIST training set;
``torchscript``: any classifier saved with ``torch.jit.save``."""

from unpaired import Component, hookimpl

from .fashion import FashionClassifier, FashionFeatures
from .torchscript import TorchScriptClassifier, TorchScriptFeatures


@hookimpl
def unpaired_components():
    return [
        Component("classifier", "fashion_mnist", FashionClassifier),
        Component("feature_extractor", "fashion_mnist", FashionFeatures),
        Component("classifier", "torchscript", TorchScriptClassifier),
        Component("feature_extractor", "torchscript", TorchScriptFeatures),
    ]
