"""Datasets: the reference folder layouts (unaligned; pix2pix's aligned pairs, side by side or in
two folders; a single folder for translation),
Fashion-MNIST classes (two as domains A and B, or N as domains: embedded subsets or the full set), and Fashion-MNIST edges <-> photos."""

from unpaired import Component, hookimpl

from .aligned import AlignedFolder
from .edges import FashionEdges
from .fashion import FashionMNIST
from .fashion_classes import FashionClasses
from .folder import DomainFolders, SingleFolder, UnalignedFolder


@hookimpl
def unpaired_components():
    return [
        Component("dataset", "unaligned_folder", UnalignedFolder),
        Component("dataset", "fashion_mnist", FashionMNIST),
        Component("dataset", "fashion_classes", FashionClasses),
        Component("dataset", "domain_folders", DomainFolders),
        Component("dataset", "aligned_folder", AlignedFolder),
        Component("dataset", "fashion_edges", FashionEdges),
        Component("dataset", "single_folder", SingleFolder),
    ]
