"""UNSB's Schrödinger-bridge sampling as graph ops (Kim, Kwon, Kim & Ye, "Unpaired Image-to-Image
Translation via Neural Schrödinger Bridge", ICLR 2024; the authors' code: cyclomon/UNSB,
``models/sb_model.py``, ``forward``).

The bridge runs from x_0 (a source image) through T steps. Step s of the generator predicts the
target, x̂_1 = G(x_s, s, z) with a fresh z ~ N(0, I), and the next state interpolates towards it
with Brownian noise of entropy τ:

    x_{s+1} = (1 − a_s) x_s + a_s x̂_1 + sqrt(τ · b_s) ε,   a_s = Δ_s / (t_T − t_s),   b_s = Δ_s (1 − a_s)

on UNSB's time grid ``t`` (:func:`time_grid`), Δ_s = t_{s+1} − t_s.

- ``sb_rollout``: x_t for a time step t (N,) in [0, T): the no-gradient roll-out UNSB makes before
  each training iteration's graded step (t = 0 gives x_0 itself).
- ``sb_sample``: the translation after ``steps`` steps (NFE, 1 to T): x̂_1 of the last step.

The noise comes from the executor's generator (drawn on the CPU): a resumed run draws what an
uninterrupted one would.
"""

from __future__ import annotations

import torch
from torch import Tensor

from unpaired.plugin.hookspecs import hookimpl
from unpaired.plugin.registry import Component

__all__ = ["SBRollout", "SBSample", "time_grid"]


def time_grid(num_timesteps: int) -> Tensor:
    """UNSB's T + 1 times (float64): 0, then the cumulative sums of [0, 1, 1/2, ..., 1/(T−1)],
    normalised to end at 1 and mapped to [0.5, 1] (``times = 0.5·times[-1] + 0.5·times``).

    Raises:
        ValueError: T < 1.
    """
    if num_timesteps < 1:
        raise ValueError(f"num_timesteps must be >= 1, got {num_timesteps}")
    incs = torch.tensor([0.0] + [1.0 / (i + 1) for i in range(num_timesteps - 1)], dtype=torch.float64)
    times = torch.cumsum(incs, 0)
    times = times / times[-1] if num_timesteps > 1 else torch.ones(1, dtype=torch.float64)
    return torch.cat([torch.zeros(1, dtype=torch.float64), 0.5 * times[-1] + 0.5 * times])


class _Bridge:
    """What both ops share: the grid, the entropy, the noise code's width and the networks' name."""

    def __init__(self, num_timesteps: int = 5, tau: float = 0.01, z_dim: int = 256, generator: str = "G"):
        if int(num_timesteps) != num_timesteps or num_timesteps < 1:
            raise ValueError(f"num_timesteps must be an integer >= 1, got {num_timesteps!r}")
        if not float(tau) >= 0 or int(z_dim) < 1:
            raise ValueError(f"tau must be >= 0 and z_dim >= 1, got tau={tau!r}, z_dim={z_dim!r}")
        self.num_timesteps, self.tau, self.z_dim, self.generator = int(num_timesteps), float(tau), int(z_dim), generator
        self.times = time_grid(self.num_timesteps)

    def _net(self, networks: dict):
        if self.generator not in networks:
            raise ValueError(f"the op runs network '{self.generator}'; name it in the image's networks "
                             f"(given: {', '.join(networks) or 'none'}) or set args.generator")
        return networks[self.generator]

    def _noise(self, shape, generator: torch.Generator, like: Tensor) -> Tensor:
        return torch.randn(shape, generator=generator).to(like.device, like.dtype)

    def _step(self, x: Tensor, pred: Tensor, s: int, generator: torch.Generator) -> Tensor:
        """x_{s} from x_{s-1} and the prediction x̂_1 made at step s − 1 (s >= 1)."""
        delta = self.times[s] - self.times[s - 1]
        denom = self.times[-1] - self.times[s - 1]
        inter, scale = float(delta / denom), float(delta * (1 - delta / denom))
        return (1 - inter) * x + inter * pred + (scale * self.tau) ** 0.5 * self._noise(x.shape, generator, x)

    def _predict(self, net, x: Tensor, s: int, generator: torch.Generator) -> Tensor:
        t = torch.full((x.shape[0],), s, dtype=torch.long, device=x.device)
        return net(x, t, self._noise((x.shape[0], self.z_dim), generator, x))


class SBRollout(_Bridge):
    """``sb_rollout``: x_t (N, C, H, W) from x_0 (N, C, H, W) in [-1, 1] and time steps t (N,) in
    [0, T), rolled out without gradients (module docstring). Samples with different t stop at
    their own step. UNSB calls G once more at step t (an x̂_1 it does not use); this does not.

    Args:
        num_timesteps: T (UNSB's ``--num_timesteps`` 5).
        tau: the entropy τ (``--tau`` 0.01).
        z_dim: width of the noise code, 4·ngf of the generator (256).
        generator: which of the image's networks is G.

    Raises:
        ValueError: bad arguments; in a call, a time step outside [0, T) or no network G.
    """

    def __call__(self, x0: Tensor, t: Tensor, networks: dict, generator: torch.Generator) -> Tensor:
        net = self._net(networks)
        t = t.reshape(-1).long()
        if t.is_meta:  # a dry run (recipe check): one step shows every shape
            last = min(1, self.num_timesteps - 1)
        elif len(t) and (int(t.min()) < 0 or int(t.max()) >= self.num_timesteps):
            raise ValueError(f"sb_rollout: time steps must lie in [0, {self.num_timesteps}), got {t.tolist()}")
        else:
            last = int(t.max()) if len(t) else 0
        x = x0
        for s in range(1, last + 1):
            pred = self._predict(net, x, s - 1, generator)
            moved = self._step(x, pred, s, generator)
            x = torch.where((t >= s).reshape(-1, *(1,) * (x.ndim - 1)), moved, x)
        return x


class SBSample(_Bridge):
    """``sb_sample``: the translation (N, C, H, W) in [-1, 1] of x_0 after ``steps`` bridge steps
    (NFE): x̂_1 = G(x_{steps−1}, steps − 1, z), as UNSB's test-time ``fake_<NFE>``.

    Args:
        steps: NFE, 1 to T (UNSB's test writes 1 to 5; ``unpaired translate --steps`` sets it).
        num_timesteps, tau, z_dim, generator: as :class:`SBRollout`.

    Raises:
        ValueError: ``steps`` outside [1, T], or bad arguments.
    """

    def __init__(self, steps: int = 5, **bridge):
        super().__init__(**bridge)
        self.steps = steps

    @property
    def steps(self) -> int:
        return self._steps

    @steps.setter
    def steps(self, value: int) -> None:
        if isinstance(value, bool) or int(value) != value or not 1 <= value <= self.num_timesteps:
            raise ValueError(f"steps (NFE) must be an integer from 1 to num_timesteps={self.num_timesteps}, got {value!r}")
        self._steps = int(value)

    def __call__(self, x0: Tensor, networks: dict, generator: torch.Generator) -> Tensor:
        net, x = self._net(networks), x0
        pred = self._predict(net, x, 0, generator)
        for s in range(1, self.steps):
            x = self._step(x, pred, s, generator)
            pred = self._predict(net, x, s, generator)
        return pred


@hookimpl
def unpaired_components():
    return [Component("graph_op", "sb_rollout", SBRollout), Component("graph_op", "sb_sample", SBSample)]
