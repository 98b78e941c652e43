"""The graph of a recipe's values, in one place: which value is made from which, by what.

A recipe's ``images`` section defines each named value from the data's values (``real_A``,
``real_B``, or what a dataset declares it provides: labels, second samples) and other named values::

    fake_B:  {net: G_AB, input: real_A}              # fake_B = G_AB(real_A)
    pair:    {net: D, input: [real_A, fake_B]}       # a network with several inputs: D(real_A, fake_B)
    fake_AB: {concat: [real_A, fake_B]}              # channel concatenation (pix2pix's conditional D input)
    content: {net: E, input: real_A, output: content}  # one output of a network that returns a dict
    z:       {random: normal, shape: [16]}           # a code (N, 16) ~ N(0, I), N the data's batch size
    y_trg:   {random: integer, high: 10}             # labels (N,) uniform in [0, 10)

Values need not be images: a code (N, D), a label (N,) or a logit map flow through the graph the
same way (``recipe check`` runs the graph on the meta device, so shapes are checked there).
Random values are drawn from the executor's own generator, seeded by the run's seed and the rank,
whose state is in every checkpoint: a resumed run draws what an uninterrupted one would.

The executor (training), the sample grids, the recipe dry run, the step plans and inference all
walk the graph through this class, so they agree on order, inputs and which networks take part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
from torch import Tensor

#: Images the data provides to every iteration (a two-domain dataset's values).
DATA_IMAGES = ("real_A", "real_B")

#: The distributions of a random node.
RANDOM = ("normal", "uniform", "integer")


@dataclass(frozen=True)
class Random:
    """How a random node draws: ``normal`` N(0, I) or ``uniform`` U[low, high) floats of shape
    (N, *shape), or ``integer`` labels (N, *shape) uniform in [low, high)."""

    kind: str
    shape: tuple[int, ...] = ()
    low: float = 0
    high: float = 1

    def draw(self, n: int, generator: torch.Generator, device) -> Tensor:
        """(N, *shape) values drawn on the CPU from ``generator`` (the same on every device), moved to ``device``."""
        size = (n, *self.shape)
        if self.kind == "integer":
            value = torch.randint(int(self.low), int(self.high), size, generator=generator)
        elif self.kind == "uniform":
            value = torch.rand(size, generator=generator) * (self.high - self.low) + self.low
        else:
            value = torch.randn(size, generator=generator)
        return value.to(device)


@dataclass(frozen=True)
class Node:
    """One named value: ``net(*inputs)`` (its ``output`` entry when the network returns a dict),
    the channel concatenation of ``inputs`` (``net`` None), or a ``random`` draw as many as
    ``inputs[0]`` has samples."""

    name: str
    net: str | None
    inputs: tuple[str, ...]
    output: str | None = None
    random: Random | None = None

    def describe(self) -> str:
        args = ", ".join(self.inputs)
        if self.random is not None:
            return f"random {self.random.kind} {list(self.random.shape)} (as many as {args})"
        if self.net:
            return f"{self.net}({args})" + (f"[{self.output!r}]" if self.output else "")
        return f"concat({args})"


def node_from_spec(name: str, spec, data: tuple[str, ...] = DATA_IMAGES) -> Node:
    """A :class:`Node` from a recipe's image entry (``net`` + ``input`` [+ ``output``], ``concat``,
    or ``random`` with ``shape``, ``low``, ``high`` and ``like``, the value whose batch size it takes,
    by default the data's first)."""
    if spec.get("random"):
        rnd = Random(str(spec["random"]), tuple(int(d) for d in spec.get("shape") or ()),
                     spec.get("low") if spec.get("low") is not None else 0,
                     spec.get("high") if spec.get("high") is not None else 1)
        return Node(name, None, (spec.get("like") or data[0],), random=rnd)
    if spec.get("concat"):
        return Node(name, None, tuple(spec["concat"]))
    inputs = spec.get("input")
    inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs or ())
    return Node(name, spec.get("net"), inputs, spec.get("output"))


class ImageGraph:
    """The images of a recipe as a graph.

    Args:
        images: the recipe's ``images`` section (name -> spec), or ready :class:`Node` objects.
        data: the names of the values the data gives each iteration (the dataset's ``provides``).
    """

    def __init__(self, images: Mapping, data: tuple[str, ...] = DATA_IMAGES):
        self.data = tuple(data)
        self.nodes: dict[str, Node] = {
            name: spec if isinstance(spec, Node) else node_from_spec(name, spec, self.data) for name, spec in images.items()
        }

    def __contains__(self, name: str) -> bool:
        return name in self.data or name in self.nodes

    def known(self) -> list[str]:
        return [*self.data, *self.nodes]

    def is_random(self, name: str) -> bool:
        """Whether ``name`` is drawn at random, or made from a random value."""
        return any(self.nodes[n].random is not None for n in self.order([name]))

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

    def order(self, names: Iterable[str], known: Iterable[str] = ()) -> list[str]:
        """``names`` and every image they are made from, inputs before outputs (data images, and
        the ``known`` values and what they are made from, left out)."""
        ordered: list[str] = []
        known = set(known)

        def visit(name: str) -> None:
            if name in ordered or name in self.data or name in known:
                return
            for src in self.nodes[name].inputs:
                visit(src)
            ordered.append(name)

        for n in names:
            visit(n)
        return ordered

    def reads_pixels(self, name: str, source: str) -> bool:
        """Whether ``name`` is computed from the values of ``source`` (a random node takes only its
        batch size from its ``like`` value, not its values)."""
        if name == source:
            return True
        node = self.nodes.get(name)
        return node is not None and node.random is None and any(self.reads_pixels(i, source) for i in node.inputs)

    def networks(self, name: str) -> set[str]:
        """The networks that take part in making ``name`` (empty for data images)."""
        return {self.nodes[n].net for n in self.order([name]) if self.nodes[n].net}

    def sources(self, name: str) -> set[str]:
        """The data values ``name`` is made from (a random node counts its ``like`` value)."""
        if name in self.data:
            return {name}
        return {src for n in self.order([name]) for src in self.nodes[n].inputs if src in self.data}

    def make(self, name: str, nets: Mapping, images: Mapping[str, Tensor],
             generator: torch.Generator | None = None) -> Tensor:
        """Value ``name`` from its inputs, which ``images`` must already hold.

        Shapes: each input (N, C_i, H, W); a concatenation gives (N, sum C_i, H, W); a random node
        (N, *shape) on its ``like`` value's device, drawn from ``generator``.

        Raises:
            ValueError: a random node without a generator; an ``output`` the network does not return.
        """
        node = self.nodes[name]
        args = [images[src] for src in node.inputs]
        if node.random is not None:
            if generator is None:
                raise ValueError(f"images.{name} is random: pass the generator to draw it from")
            return node.random.draw(len(args[0]), generator, args[0].device)
        if not node.net:
            return torch.cat(args, dim=1)
        out = nets[node.net](*args)
        if node.output is None:
            return out
        if not isinstance(out, Mapping) or node.output not in out:
            have = f"the outputs {', '.join(out)}" if isinstance(out, Mapping) else f"a {type(out).__name__}"
            raise ValueError(f"images.{name}.output: network '{node.net}' returns {have}, not '{node.output}'")
        return out[node.output]

    def make_batch(self, names: list[str], nets: Mapping, images: Mapping[str, Tensor],
                   generator: torch.Generator | None = None) -> list[Tensor]:
        """Images ``names``, all of one network, from one call on their inputs concatenated along
        the batch (N) dimension, split back; exact for a network whose samples do not interact
        (no batch statistics, no dropout). Inputs of different shapes or counts get a call each."""
        nodes = [self.nodes[n] for n in names]
        if len(names) == 1 or any(node.output or node.random for node in nodes):
            return [self.make(n, nets, images, generator) for n in names]
        args = [[images[src] for src in node.inputs] for node in nodes]
        if not args[0] or any(len(row) != len(args[0]) or any(a.shape[1:] != b.shape[1:] for a, b in zip(row, args[0]))
                              for row in args[1:]):
            return [self.make(n, nets, images) for n in names]
        out = nets[nodes[0].net](*(torch.cat(column) for column in zip(*args)))
        return list(out.split([row[0].shape[0] for row in args]))

    def compute(self, names: Iterable[str], nets: Mapping, inputs: Mapping[str, Tensor],
                generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """``names`` (and the values they need) from the data values in ``inputs``; returns all of them.
        A value already in ``inputs`` is taken as it is (a style code given at inference).

        Gradients are recorded or not as the caller's context says (e.g. ``torch.no_grad()``).
        """
        images = dict(inputs)
        for name in self.order(names, known=images):
            images[name] = self.make(name, nets, images, generator)
        return images
