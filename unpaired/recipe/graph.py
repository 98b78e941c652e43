"""The image graph of a recipe, in one place: which image is made from which, by what.

A recipe's ``images`` section defines each named image from data images (``real_A``, ``real_B``)
and other named images::

    fake_B:  {net: G_AB, input: real_A}              # fake_B = G_AB(real_A)
    pair:    {net: D, input: [real_A, fake_B]}       # a network with several inputs: D(real_A, fake_B)
    fake_AB: {concat: [real_A, fake_B]}              # channel concatenation (pix2pix's conditional D input)

The executor (training), the sample grids, the recipe dry run, the step plans and inference all
walk the graph through this class, so they agree on order, inputs and which networks take part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
from torch import Tensor

#: Images the data provides to every iteration.
DATA_IMAGES = ("real_A", "real_B")


@dataclass(frozen=True)
class Node:
    """One named image: ``net(*inputs)``, or the channel concatenation of ``inputs`` (``net`` None)."""

    name: str
    net: str | None
    inputs: tuple[str, ...]

    def describe(self) -> str:
        args = ", ".join(self.inputs)
        return f"{self.net}({args})" if self.net else f"concat({args})"


def node_from_spec(name: str, spec) -> Node:
    """A :class:`Node` from a recipe's image entry (``net`` + ``input``, or ``concat``)."""
    if spec.get("concat"):
        return Node(name, None, tuple(spec["concat"]))
    inputs = spec.get("input")
    inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs or ())
    return Node(name, spec.get("net"), inputs)


class ImageGraph:
    """The images of a recipe as a graph.

    Args:
        images: the recipe's ``images`` section (name -> spec), or ready :class:`Node` objects.
    """

    def __init__(self, images: Mapping):
        self.nodes: dict[str, Node] = {
            name: spec if isinstance(spec, Node) else node_from_spec(name, spec) for name, spec in images.items()
        }

    def __contains__(self, name: str) -> bool:
        return name in DATA_IMAGES or name in self.nodes

    def known(self) -> list[str]:
        return [*DATA_IMAGES, *self.nodes]

    def loops(self) -> list[str]:
        """A message for the first image found whose inputs lead back to itself (empty when none)."""
        done: set[str] = set()

        def loop_from(name: str, path: list[str]) -> list[str] | None:
            if name in path:
                return path + [name]
            if name in done or name not in self.nodes:
                return None
            for src in self.nodes[name].inputs:
                found = loop_from(src, path + [name])
                if found:
                    return found
            done.add(name)
            return None

        for start in self.nodes:
            found = loop_from(start, [])
            if found:
                return [f"images.{found[0]}: its inputs form a loop ({' <- '.join(found)})."]
        return []

    def order(self, names: Iterable[str]) -> list[str]:
        """``names`` and every image they are made from, inputs before outputs (data images left out)."""
        ordered: list[str] = []

        def visit(name: str) -> None:
            if name in ordered or name in DATA_IMAGES:
                return
            for src in self.nodes[name].inputs:
                visit(src)
            ordered.append(name)

        for n in names:
            visit(n)
        return ordered

    def networks(self, name: str) -> set[str]:
        """The networks that take part in making ``name`` (empty for data images)."""
        return {self.nodes[n].net for n in self.order([name]) if self.nodes[n].net}

    def sources(self, name: str) -> set[str]:
        """The data images ``name`` is made from."""
        if name in DATA_IMAGES:
            return {name}
        return {src for n in self.order([name]) for src in self.nodes[n].inputs if src in DATA_IMAGES}

    def make(self, name: str, nets: Mapping, images: Mapping[str, Tensor]) -> Tensor:
        """Image ``name`` from its inputs, which ``images`` must already hold.

        Shapes: each input (N, C_i, H, W); a concatenation gives (N, sum C_i, H, W).
        """
        node = self.nodes[name]
        args = [images[src] for src in node.inputs]
        return nets[node.net](*args) if node.net else torch.cat(args, dim=1)

    def make_batch(self, names: list[str], nets: Mapping, images: Mapping[str, Tensor]) -> list[Tensor]:
        """Images ``names``, all of one network, from one call on their inputs concatenated along
        the batch (N) dimension, split back; exact for a network whose samples do not interact
        (no batch statistics, no dropout). Inputs of different shapes or counts get a call each."""
        if len(names) == 1:
            return [self.make(names[0], nets, images)]
        nodes = [self.nodes[n] for n in names]
        args = [[images[src] for src in node.inputs] for node in nodes]
        if not args[0] or any(len(row) != len(args[0]) or any(a.shape[1:] != b.shape[1:] for a, b in zip(row, args[0]))
                              for row in args[1:]):
            return [self.make(n, nets, images) for n in names]
        out = nets[nodes[0].net](*(torch.cat(column) for column in zip(*args)))
        return list(out.split([row[0].shape[0] for row in args]))

    def compute(self, names: Iterable[str], nets: Mapping, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``names`` (and the images they need) from the data images in ``inputs``; returns all of them.

        Gradients are recorded or not as the caller's context says (e.g. ``torch.no_grad()``).
        """
        images = dict(inputs)
        for name in self.order(names):
            if name not in images:
                images[name] = self.make(name, nets, images)
        return images
