"""Devices and precision: which device a name means on this machine, whether it computes bf16
natively, and where compiled kernels are cached. A leaf module: it imports nothing of the package
but its errors.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from unpaired.errors import RecipeError


def pick_device(name: str = "auto", local_rank: int = 0, where: str = "device") -> torch.device:
    """The device a name means, checked against this machine: the one device check of every
    command (the recipe's ``device`` key, ``--device`` of translate, evaluate and ablate).

    Args:
        name: ``auto`` (this rank's CUDA device when CUDA is present, else the CPU), ``cpu``,
            ``cuda``, ``cuda:N`` or ``mps`` (where PyTorch has it).
        local_rank: the CUDA device ``auto`` means in a ``torchrun`` job.
        where: how the user wrote the setting, for the message: ``device`` (the recipe key,
            suggested as ``device=cpu``) or ``--device`` (suggested as ``--device cpu``).

    Returns:
        The ``torch.device``.

    Raises:
        RecipeError: one line naming the setting and the valid names: not a device name (the
            reference's ``gpu_ids`` idiom ``-1`` or ``0`` included: use ``cpu`` or ``cuda:0``), or a
            device this machine does not have.
    """
    name = str(name)
    if name == "auto":
        return torch.device(f"cuda:{local_rank}") if torch.cuda.is_available() else torch.device("cpu")
    mps = torch.backends.mps.is_available()
    names = ["auto", "cpu", "cuda", "cuda:N", *(["mps"] if mps else [])]
    valid = f"{', '.join(names[:-1])} or {names[-1]}"

    def use(value: str) -> str:
        return f"{where} {value}" if where.startswith("-") else f"{where}={value}"

    if name.lstrip("-").isdigit():  # the reference's --gpu_ids: -1 for the CPU, N for GPU N
        wanted = "cpu" if name.startswith("-") else f"cuda:{name}"
        raise RecipeError(f"{where}: '{name}' is the reference's gpu_ids setting, not a device name; use {use(wanted)} "
                          f"(valid: {valid}).", key=where, code="gpu-ids")
    try:
        device = torch.device(name)
    except RuntimeError:
        device = None
    if device is None or device.type not in ("cpu", "cuda", "mps"):
        raise RecipeError(f"{where}: '{name}' is not a device; use {valid}.", key=where, code="bad-device")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RecipeError(f"{where}: '{name}' asked for, but CUDA is not available here; use {use('cpu')} or auto.",
                          key=where, code="no-cuda")
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise RecipeError(f"{where}: '{name}' asked for, but this machine has {count} CUDA device(s), cuda:0 to "
                          f"cuda:{count - 1}; use one of them, or auto.", key=where, code="no-such-device")
    if device.type == "mps" and not mps:
        raise RecipeError(f"{where}: '{name}' asked for, but MPS is not available here; use {use('cpu')} or auto.",
                          key=where, code="no-mps")
    return device


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 natively: a CUDA GPU that supports it, or a CPU with
    AVX-512 BF16 / AMX (oneDNN's bf16 kernels). Elsewhere bf16 autocast is emulated and several
    times slower than fp32 (7x for the fashion demo on an AVX2-only CPU)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` where the device computes it natively, else ``fp32``; others unchanged."""
    if precision != "auto":
        return precision
    return "bf16" if native_bf16(device) else "fp32"


def compile_cache() -> Path:
    """Where torch.compile keeps its caches (inductor's FX graphs and kernels): ``$TORCHINDUCTOR_CACHE_DIR``
    when set, else ``$XDG_CACHE_HOME/unpaired/inductor`` (``~/.cache/unpaired/inductor``), which
    this sets. A second run of the same networks then loads compiled kernels instead of compiling
    again; inductor's own default (``/tmp/torchinductor_<user>``) is lost at reboot. (Importing
    torch's compiler, which torchvision does, already sets the variable to that default.)"""
    try:  # torch's private helper (torch >= 2.5); older versions leave the variable alone
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir
        torch_default = os.path.abspath(default_cache_dir())
    except ImportError:
        torch_default = None
    if os.environ.get("TORCHINDUCTOR_CACHE_DIR") in (None, torch_default):
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(base / "unpaired" / "inductor")
    return Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
