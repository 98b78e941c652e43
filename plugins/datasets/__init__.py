"""Datasets: the reference folder layouts (unaligned; pix2pix's aligned pairs, side by side or in
two folders; a single folder for translation),
Fashion-MNIST classes (embedded demo subset or full set), and Fashion-MNIST edges <-> photos."""

from unpaired import Component, hookimpl

from .aligned import AlignedFolder
from .edges import FashionEdges
from .fashion import FashionMNIST
from .folder import SingleFolder, UnalignedFolder


@hookimpl
def unpaired_components():
    return [
        Component("dataset", "unaligned_folder", UnalignedFolder),
        Component("dataset", "fashion_mnist", FashionMNIST),
        Component("dataset", "aligned_folder", AlignedFolder),
        Component("dataset", "fashion_edges", FashionEdges),
        Component("dataset", "single_folder", SingleFolder),
    ]
