"""Peak memory of a training session: GPU memory PyTorch allocated, or the process's resident set.

On CUDA the peak is ``torch.cuda.max_memory_allocated`` (tensors only, not the caching
allocator's reserve), reset when a session starts. On the CPU it is the process's resident set
high-water mark (``VmHWM`` in ``/proc/self/status``), which Linux lets a process reset (writing 5
to ``/proc/self/clear_refs``, Linux 4.0+): the benchmark trains cell after cell in one process,
and each cell's peak must be its own. Where the reset is refused (another OS, a locked-down
``/proc``), the peak counts from the process's start, and :func:`reset_peak` says so.
"""

from __future__ import annotations

import re
import resource
import sys

import torch

__all__ = ["peak_mib", "reset_peak"]


def reset_peak(device: torch.device) -> bool:
    """Start counting the peak afresh; False where only the peak since the process started is known."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return True
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_mib(device: torch.device) -> float:
    """The peak since :func:`reset_peak` in MiB: CUDA tensors on a GPU, the resident set on the CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    try:
        with open("/proc/self/status") as f:
            found = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.MULTILINE)
        if found:
            return int(found.group(1)) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024
