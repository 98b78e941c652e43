"""The run's record (``run.json``: when, on what hardware, how it ended) and its HTML report."""

from __future__ import annotations

import json
import os
import platform
import time
from datetime import datetime, timezone

import torch

from unpaired.runs.checkpoint import atomic_write_text
from unpaired.errors import UnpairedError, warn
from unpaired.plugin.hookspecs import hookimpl
from unpaired.runtime import memory


def hardware(device: torch.device, precision: str) -> dict:
    """CPU model and cores, GPU name, torch version, the run's device and precision."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {"cpu": cpu, "cores": os.cpu_count(), "gpu": gpu, "torch": torch.__version__, "device": str(device),
            "precision": precision}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunInfo:
    """Writes ``<run>/run.json``: ``started``, ``finished``, ``wall_s`` (seconds of training, over
    all resumed sessions), ``hardware``, ``status`` (running, completed, interrupted, failed) and
    ``timings`` (this session's seconds per part of the loop, :class:`unpaired.timing.LoopTimer`,
    up to the end of training: the report, written after, is in the table ``unpaired train`` prints)
    and ``peak_memory`` (``mib``, the largest of any session, and ``of``: what was measured,
    :mod:`unpaired.runtime.memory`)."""

    def __init__(self):
        self.info: dict = {}
        self.start = 0.0
        self.memory_of = ""

    @hookimpl
    def unpaired_train_start(self, trainer):
        if not trainer.is_main:
            return
        path = trainer.run.info
        try:
            before = json.loads(path.read_text()) if path.is_file() else {}
        except ValueError:
            before = {}
        self.start = time.perf_counter()
        fresh = memory.reset_peak(trainer.device)
        self.memory_of = ("CUDA tensors" if trainer.device.type == "cuda" else
                          "resident set" if fresh else "resident set, since the process started")
        self.info = {"started": before.get("started", _now()), "finished": None, "wall_s": before.get("wall_s", 0.0),
                     "sessions": before.get("sessions", 0) + 1, "peak_memory": before.get("peak_memory"),
                     "hardware": hardware(trainer.device, trainer.executor.precision), "status": "running"}
        atomic_write_text(path, json.dumps(self.info, indent=2) + "\n")

    @hookimpl
    def unpaired_train_end(self, trainer, result):
        if not trainer.is_main or not self.info:
            return
        status = "failed" if result.error else "interrupted" if result.interrupted else "completed"
        earlier = (self.info.get("peak_memory") or {}).get("mib", 0.0)
        peak = {"mib": round(max(earlier, memory.peak_mib(trainer.device)), 1), "of": self.memory_of}
        self.info.update(finished=_now(), wall_s=round(self.info["wall_s"] + time.perf_counter() - self.start, 1),
                         status=status, iteration=result.iteration, epoch=result.epoch,
                         timings=trainer.timer.summary(), peak_memory=peak)
        atomic_write_text(trainer.run.info, json.dumps(self.info, indent=2) + "\n")


class Report:
    """Writes ``<run>/report.html`` at the end of training (after every other handler)."""

    @hookimpl(trylast=True)
    def unpaired_train_end(self, trainer):
        if not trainer.is_main:
            return
        from unpaired.tools.report import write_report

        try:
            write_report(trainer.out_dir)
        except (UnpairedError, OSError, ValueError) as err:  # a report is never worth losing a run over
            warn(f"the run report could not be written ({err}); try 'unpaired report {trainer.out_dir}'.")
