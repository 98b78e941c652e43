"""Recipe numbers that follow a schedule: a loss term's ``weight`` is a number or a schedule.

::

    weight: 10                                                        # constant
    weight: {schedule: linear, start: 1, end: 0, length: 100000}      # StarGAN v2's diversity weight
    weight: {schedule: cosine, start: 1, end: 0.1, length: 50, per: epoch}
    weight: {schedule: step, start: 1, gamma: 0.5, length: 10, per: epoch}   # halved every 10 epochs

At ``t`` units done (iterations before this one, or epochs completed, as ``per`` says):

- ``constant``: ``start``;
- ``linear``: ``start + (end - start) * min(t / length, 1)``;
- ``cosine``: ``end + (start - end) * (1 + cos(pi * min(t / length, 1))) / 2``;
- ``step``: ``start * gamma ** (t // length)``.

StarGAN v2 (clovaai/stargan-v2, ``core/solver.py``) lowers ``lambda_ds`` by ``lambda_ds / ds_iter``
after every iteration, i.e. ``linear`` from 1 to 0 over ``ds_iter`` iterations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("constant", "linear", "cosine", "step")
KEYS = ("schedule", "start", "end", "length", "gamma", "per")


@dataclass(frozen=True)
class Scalar:
    """A number of the recipe, constant or scheduled (see the module docstring)."""

    start: float
    schedule: str = "constant"
    end: float = 0.0
    length: int = 1
    gamma: float = 0.1
    per: str = "iteration"

    def at(self, iteration: int, epoch: int = 0) -> float:
        """The value with ``iteration`` iterations and ``epoch`` epochs done."""
        if self.schedule == "constant":
            return self.start
        t = iteration if self.per == "iteration" else epoch
        if self.schedule == "step":
            return self.start * self.gamma ** (t // self.length)
        done = min(t / self.length, 1.0)
        if self.schedule == "linear":
            return self.start + (self.end - self.start) * done
        return self.end + (self.start - self.end) * (1 + math.cos(math.pi * done)) / 2

    @property
    def scheduled(self) -> bool:
        return self.schedule != "constant"

    @property
    def active(self) -> bool:
        """Whether it is ever non-zero (a term of weight 0 is switched off)."""
        return self.start != 0 or (self.schedule in ("linear", "cosine") and self.end != 0)

    @property
    def lowest(self) -> float:
        return min(self.start, self.end) if self.schedule in ("linear", "cosine") else self.start


def scalar_problems(value, where: str) -> list[tuple[str, str, str]]:
    """What is wrong with a recipe scalar: ``(key, code, text)`` triples, empty when it is good."""
    if _number(value):
        return []
    if not hasattr(value, "keys"):
        return [(where, "bad-value", f"a finite number or a schedule such as {{schedule: linear, start: 1, end: 0, "
                                     f"length: 1000}}, got {value!r}.")]
    problems = [(f"{where}.{k}", "unknown-key", f"not a schedule key; the keys are {', '.join(KEYS)}.")
                for k in value.keys() if k not in KEYS]
    kind = value.get("schedule", "constant")
    if kind not in SCHEDULES:
        problems.append((f"{where}.schedule", "bad-value", f"'{kind}' is not one of {', '.join(SCHEDULES)}."))
    if "start" not in value:
        problems.append((f"{where}.start", "missing", "a schedule needs its start value (a number)."))
    elif not _number(value["start"]):
        problems.append((f"{where}.start", "bad-value", f"a finite number, got {value['start']!r}."))
    for key in ("end", "gamma"):
        if key in value and not _number(value[key]):
            problems.append((f"{where}.{key}", "bad-value", f"a finite number, got {value[key]!r}."))
    if _number(value.get("gamma")) and not value["gamma"] > 0:
        problems.append((f"{where}.gamma", "not-positive", f"the factor per step must be above 0 (below 1 decays, above "
                                                           f"1 grows), got {value['gamma']!r}."))
    length = value.get("length", 1)
    if not isinstance(length, int) or isinstance(length, bool) or length < 1:
        problems.append((f"{where}.length", "not-positive", f"a whole number of iterations or epochs, at least 1, "
                                                            f"got {length!r}."))
    if value.get("per", "iteration") not in ("iteration", "epoch"):
        problems.append((f"{where}.per", "bad-value", f"'iteration' or 'epoch', got {value.get('per')!r}."))
    return problems


def parse_scalar(value) -> Scalar:
    """A :class:`Scalar` from a recipe value that :func:`scalar_problems` accepts."""
    if _number(value):
        return Scalar(float(value))
    return Scalar(float(value["start"]), str(value.get("schedule", "constant")), float(value.get("end", 0.0)),
                  int(value.get("length", 1)), float(value.get("gamma", 0.1)), str(value.get("per", "iteration")))


def _number(value) -> bool:
    """A finite int or float (NaN and infinity would silently poison every step they weight)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
