"""Datasets: the reference folder layout, and Fashion-MNIST (embedded demo subset or full set)."""

from unpaired import Component, hookimpl

from .fashion import FashionMNIST
from .folder import UnalignedFolder


@hookimpl
def unpaired_components():
    return [
        Component("dataset", "unaligned_folder", UnalignedFolder),
        Component("dataset", "fashion_mnist", FashionMNIST),
    ]
