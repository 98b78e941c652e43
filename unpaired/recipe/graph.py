"""The graph of a recipe's values, in one place: which value is made from which, by what.

A recipe's ``images`` section defines each named value from the data's values (``real_A``,
``real_B``, or what a dataset declares it provides: labels, second samples) and other named values::

    fake_B:  {net: G_AB, input: real_A}              # fake_B = G_AB(real_A)
    pair:    {net: D, input: [real_A, fake_B]}       # a network with several inputs: D(real_A, fake_B)
    fake_AB: {concat: [real_A, fake_B]}              # channel concatenation (pix2pix's conditional D input)
    flip:    {random: integer, high: 2}              # a coin per sample (N,) in {0, 1}
    a_flip:  {hflip: real_A, where: flip}            # real_A mirrored left-right where the coin is 1 (FastCUT)
    x_t:     {op: sb_rollout, input: [real_A, t], networks: [G], args: {num_timesteps: 5}}  # a plugin's op
    content: {net: E, input: real_A, output: content}  # one output of a network that returns a dict
    z:       {random: normal, shape: [16]}           # a code (N, 16) ~ N(0, I), N the data's batch size
    y_trg:   {random: integer, high: 10}             # labels (N,) uniform in [0, 10)

Values need not be images: a code (N, D), a label (N,) or a logit map flow through the graph the
same way (``recipe check`` runs the graph on the meta device, so shapes are checked there).
Random values are drawn from the executor's own generator, seeded by the run's seed and the rank,
whose state is in every checkpoint: a resumed run draws what an uninterrupted one would.

An ``op`` node is a plugin's function (kind ``graph_op``) of its inputs and of networks it names,
run without gradients and with that generator: a value made by running networks in a loop, such
as UNSB's roll-out of the generator to a random time step. Its networks do not count as makers of
the value (it carries no gradient), so it is made once per iteration and never anew.

The executor (training), the sample grids, the recipe dry run, the step plans and inference all
walk the graph through this class, so they agree on order, inputs and which networks take part.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
from torch import Tensor

from unpaired.domains import DATA_IMAGES  # the values a two-domain dataset gives every iteration

#: The distributions of a random node.
RANDOM = ("normal", "uniform", "integer")


@dataclass(frozen=True)
class Random:
    """How a random node draws: ``normal`` N(0, I) or ``uniform`` U[low, high) floats of shape
    (N, *shape), or ``integer`` labels (N, *shape) uniform in [low, high); ``shared``: one value for
    the whole batch."""

    kind: str
    shape: tuple[int, ...] = ()
    low: float = 0
    high: float = 1
    shared: bool = False

    def draw(self, n: int, generator: torch.Generator, device) -> Tensor:
        """(N, *shape) values drawn on the CPU from ``generator`` (the same on every device), moved to
        ``device``; ``shared``: one draw repeated for the whole batch (UNSB's time step)."""
        if self.shared and n > 1:
            one = self.draw(1, generator, device)
            return one.expand(n, *one.shape[1:]).clone()
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
    the channel concatenation of ``inputs`` (``net`` None), a ``random`` draw as many as
    ``inputs[0]`` has samples, or (``hflip``) ``inputs[0]`` mirrored left-right in the samples
    where ``inputs[1]`` (a 0/1 value (N,), if given) is 1."""

    name: str
    net: str | None
    inputs: tuple[str, ...]
    output: str | None = None
    random: Random | None = None
    hflip: bool = False
    op: str | None = None
    networks: tuple[str, ...] = ()

    def describe(self) -> str:
        args = ", ".join(self.inputs)
        if self.hflip:
            return f"hflip({self.inputs[0]})" + (f" where {self.inputs[1]}" if len(self.inputs) > 1 else "")
        if self.op:
            return f"{self.op}({args}; networks {', '.join(self.networks) or 'none'})"
        if self.random is not None:
            return f"random {self.random.kind} {list(self.random.shape)} (as many as {args})"
        if self.net:
            return f"{self.net}({args})" + (f"[{self.output!r}]" if self.output else "")
        return f"concat({args})"


def node_from_spec(name: str, spec, data: tuple[str, ...] = DATA_IMAGES) -> Node:
    """A :class:`Node` from a recipe's image entry (``net`` + ``input`` [+ ``output``], ``concat``,
    ``random`` with ``shape``, ``low``, ``high`` and ``like``, the value whose batch size it takes,
    by default the data's first, ``hflip`` with an optional ``where``, or ``op`` with ``input`` and
    ``networks``)."""
    if spec.get("hflip"):
        return Node(name, None, (spec["hflip"],) + ((spec["where"],) if spec.get("where") else ()), hflip=True)
    if spec.get("op"):
        inputs = spec.get("input")
        inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs or ())
        return Node(name, None, inputs, op=str(spec["op"]), networks=tuple(spec.get("networks") or ()))
    if spec.get("random"):
        rnd = Random(str(spec["random"]), tuple(int(d) for d in spec.get("shape") or ()),
                     spec.get("low") if spec.get("low") is not None else 0,
                     spec.get("high") if spec.get("high") is not None else 1, bool(spec.get("shared")))
        return Node(name, None, (spec.get("like") or data[0],), random=rnd)
    if spec.get("concat"):
        return Node(name, None, tuple(spec["concat"]))
    inputs = spec.get("input")
    inputs = (inputs,) if isinstance(inputs, str) else tuple(inputs or ())
    return Node(name, spec.get("net"), inputs, spec.get("output"))


def hflip_where(x: Tensor, where: Tensor | None = None) -> Tensor:
    """``x`` (N, C, H, W) mirrored left-right (CUT's ``torch.flip(x, [3])``) in the samples where
    ``where`` (N,) is non-zero; all of them when ``where`` is None."""
    if where is None:
        return x.flip(3)
    return torch.where(where.reshape(-1, *(1,) * (x.ndim - 1)).bool(), x.flip(3), x)


class ImageGraph:
    """The images of a recipe as a graph.

    Args:
        images: the recipe's ``images`` section (name -> spec), or ready :class:`Node` objects.
        data: the names of the values the data gives each iteration (the dataset's ``provides``).
        ops: the built function of each ``op`` node, by node name (a graph only planned need not
            have them).
    """

    def __init__(self, images: Mapping, data: tuple[str, ...] = DATA_IMAGES, ops: Mapping | None = None):
        self.data = tuple(data)
        self.ops = dict(ops or {})
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

    def networks(self, name: str, ops: bool = False) -> set[str]:
        """The networks that take part in making ``name`` with gradients (empty for data images);
        with ``ops``, also those ``op`` nodes run (what inference must load)."""
        nodes = [self.nodes[n] for n in self.order([name])]
        return {node.net for node in nodes if node.net} | {n for node in nodes if ops for n in node.networks}

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
        if node.hflip:
            return hflip_where(*args)
        if node.op:
            if name not in self.ops or generator is None:
                raise ValueError(f"images.{name}: op '{node.op}' needs its built function and the generator "
                                 "(a resolved recipe's graph has them)")
            with torch.no_grad():
                return self.ops[name](*args, networks={n: nets[n] for n in node.networks}, generator=generator)
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
        if len(names) == 1 or any(node.output or node.random or node.hflip or node.op for node in nodes):
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
