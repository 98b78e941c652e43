"""Where a training run's wall time goes: the loop's own costs beside the training step, itemised.

The trainer charges every part of its loop to a named section of a :class:`LoopTimer`: the step
(:meth:`unpaired.engine.executor.Executor.run_iteration`), waiting for the next batch, writing checkpoints,
and each event handler by name (logging, sample grids, evaluation, a plugin's). ``unpaired train``
prints the table at the end and ``run.json`` keeps it; ``benchmarks/train_loop.py`` runs a recipe
for a few epochs to show it.
"""

from __future__ import annotations

import time
from collections import defaultdict
from contextlib import contextmanager
from functools import wraps
from typing import Callable, Iterable, Iterator

#: The section of :meth:`unpaired.engine.executor.Executor.run_iteration` and of waiting for the loader.
STEP, DATA = "training step", "data (next batch)"


class LoopTimer:
    """Exclusive wall time per named section: a section run inside another (a checkpoint written by
    an after-step handler) is charged to itself only, so the sections and ``other`` add up to the
    wall time between :meth:`start` and :meth:`stop`.

    On a GPU the step's kernels run asynchronously; its time is complete when something waits for
    them in the step (the NaN guard's check, on by default), else it shows up where the losses are
    read (the loss log).
    """

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self._inner: list[float] = []  # per open section: time spent in sections inside it
        self._start: float | None = None
        self._wall = 0.0

    def start(self) -> None:
        self._start = time.perf_counter()

    def stop(self) -> None:
        self._wall, self._start = self.wall, None

    @property
    def wall(self) -> float:
        """Seconds timed: between :meth:`start` and :meth:`stop`, or until now while running."""
        return self._wall + (time.perf_counter() - self._start if self._start is not None else 0.0)

    @contextmanager
    def section(self, name: str):
        start = time.perf_counter()
        self._inner.append(0.0)
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[name] += elapsed - self._inner.pop()
            self.calls[name] += 1
            if self._inner:
                self._inner[-1] += elapsed

    def iterate(self, items: Iterable, name: str = DATA) -> Iterator:
        """``items``, with the time each ``next`` takes charged to ``name``."""
        it = iter(items)
        while True:
            with self.section(name):
                try:
                    item = next(it)
                except StopIteration:
                    return
            yield item

    def wrap(self, fn: Callable, name: str) -> Callable:
        """``fn``, with each call's time charged to ``name``."""
        @wraps(fn)
        def timed(*args, **kwargs):
            with self.section(name):
                return fn(*args, **kwargs)
        return timed

    def summary(self) -> dict[str, float]:
        """Seconds per section, largest first, with ``other`` (the loop itself) the wall time no
        section took, and ``wall``."""
        wall, parts = self.wall, dict(sorted(self.seconds.items(), key=lambda kv: -kv[1]))
        return {**{k: round(v, 3) for k, v in parts.items()},
                "other": round(max(0.0, wall - sum(parts.values())), 3), "wall": round(wall, 3)}

    def table(self, iterations: int, pairs: int, smallest: float = 0.001) -> str:
        """The summary as text: seconds, milliseconds per iteration and share of the wall time of
        each section, headed by the wall time and the training pairs per second. Sections under
        ``smallest`` of the wall time are summed in one line (``run.json`` keeps them all)."""
        summary = self.summary()
        wall = summary.pop("wall")
        other = summary.pop("other")
        small = {k: v for k, v in summary.items() if v < smallest * wall}
        rows = {k: v for k, v in summary.items() if k not in small}
        if small:
            rows[f"{len(small)} smaller part{'s' * (len(small) > 1)}"] = sum(small.values())
        rows["other (the loop itself)"] = other
        lines = [f"where the time went: {wall:.1f} s for {iterations} iterations"
                 f" ({pairs / wall if wall else 0:.1f} training pairs/s)"]
        width = max(map(len, rows))
        for name, sec in rows.items():
            per_it = 1000 * sec / max(1, iterations)
            lines.append(f"  {name:<{width}} {sec:9.2f} s {per_it:9.2f} ms/it {100 * sec / wall if wall else 0:6.1f} %")
        return "\n".join(lines)
