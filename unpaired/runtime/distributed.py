"""Data-parallel training under ``torchrun`` (one process per GPU, or per CPU slot with gloo).

GAN steps use several optimizers, each over some of the networks, with the others frozen; wrapping
every network in ``DistributedDataParallel`` then trips its unused-parameter and
reduction-order checks. Instead, after each step's backward pass the step's gradients are averaged
across ranks in one flattened all-reduce: the same update DDP makes, with no wrapper to confuse.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup() -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (else a single process).

    Backend: NCCL when CUDA is available, else gloo (CPU).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def teardown(*, synchronize: bool) -> None:
    """Leave the process group (nothing without one).

    With ``synchronize``, wait at a barrier first so that no rank exits while another still
    talks to it. Leaving explicitly matters: a process that exits with gloo's threads still
    running aborts ("terminate called without an active exception") instead of returning 0.
    """
    if not dist.is_initialized():
        return
    if synchronize:
        dist.barrier()
    dist.destroy_process_group()


def broadcast_networks(networks: dict[str, nn.Module]) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    for net in networks.values():
        for t in net.state_dict().values():
            dist.broadcast(t, 0)


def average_gradients(params: list[torch.Tensor]) -> None:
    """Replace each gradient with its mean over ranks (missing gradients count as zeros)."""
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p, g in zip(params, grads):
        p.grad = flat[offset : offset + g.numel()].view_as(g)
        offset += g.numel()


def gather_objects(obj) -> list:
    """``obj`` (picklable, CPU tensors) of every rank, in rank order, on every rank."""
    out = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj):
    """Rank 0's ``obj`` (picklable) on every rank."""
    out = [obj]
    dist.broadcast_object_list(out, src=0)
    return out[0]


def mean_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """Element-wise mean of a tensor over ranks (a copy; the input is unchanged)."""
    out = values.clone()
    dist.all_reduce(out)
    return out / dist.get_world_size()
