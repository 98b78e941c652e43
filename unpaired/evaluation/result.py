"""The result of one evaluation: scores per direction, what was skipped, and the protocol."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from unpaired.evaluation.metrics import ARROWS
from unpaired.runs.checkpoint import atomic_write_text


@dataclass
class EvalResult:
    """Scores of one evaluation.

    Attributes:
        metrics: direction -> output key -> value, e.g. ``{"AtoB": {"fid": 3.1, ...}}``.
        skipped: direction -> metric entry -> why it did not run.
        better: output key -> ``"min"`` or ``"max"`` (how it improves), for the keys that say.
        protocol: how the numbers were made (see the module docstring).
    """

    metrics: dict[str, dict[str, float]]
    skipped: dict[str, dict[str, str]] = field(default_factory=dict)
    better: dict[str, str] = field(default_factory=dict)
    protocol: dict = field(default_factory=dict)

    def flat(self) -> dict[str, float]:
        """``{"<direction>/<key>": value}``, as logged during training (under ``eval/``)."""
        return {f"{d}/{k}": v for d, values in self.metrics.items() for k, v in values.items()}

    def value(self, name: str) -> float:
        """One number: ``<direction>/<key>``, or ``<key>`` averaged over the directions that have it.

        Raises:
            KeyError: no direction has that key.
        """
        if "/" in name:
            direction, key = name.split("/", 1)
            return self.metrics[direction][key]
        values = [m[name] for m in self.metrics.values() if name in m]
        if not values:
            raise KeyError(name)
        return sum(values) / len(values)

    def to_json(self) -> dict:
        return {"metrics": self.metrics, "skipped": self.skipped, "better": self.better, "protocol": self.protocol}

    @classmethod
    def read(cls, path: Path) -> "EvalResult":
        """The evaluation :meth:`write` wrote to ``path`` (a metrics.json).

        Raises:
            OSError, ValueError: the file is missing or not such JSON.
        """
        saved = json.loads(Path(path).read_text())
        return cls(saved["metrics"], saved["skipped"], saved["better"], saved["protocol"])

    def markdown(self) -> str:
        """A table (rows: output keys, columns: directions) and the protocol as a list."""
        directions = list(self.metrics)
        keys = list(dict.fromkeys(k for m in self.metrics.values() for k in m))
        lines = ["| metric | " + " | ".join(directions) + " |", "|---|" + "---:|" * len(directions)]
        for key in keys:
            cells = [f"{self.metrics[d][key]:.4g}" if key in self.metrics[d] else "—" for d in directions]
            arrow = f" {ARROWS[self.better[key]]}" if key in self.better else ""
            lines.append(f"| {key}{arrow} | " + " | ".join(cells) + " |")
        for d, reasons in self.skipped.items():
            for name, why in reasons.items():
                lines.append(f"\nSkipped {name} ({d}): {why}")
        lines.append("\nProtocol:\n")
        lines += [f"- {k}: {json.dumps(v) if isinstance(v, (dict, list)) else v}" for k, v in self.protocol.items()]
        return "\n".join(lines) + "\n"

    def write(self, folder: Path) -> Path:
        """Write ``metrics.json`` and ``metrics.md`` into ``folder`` (atomically); returns the JSON path."""
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(folder / "metrics.md", self.markdown())
        atomic_write_text(folder / "metrics.json", json.dumps(self.to_json(), indent=2) + "\n")
        return folder / "metrics.json"


def mean_std(values: list[float]) -> str:
    """``mean ± std`` (the sample standard deviation) of the seeds' values, as a table cell; one
    value: itself; none (or only missing and non-finite ones): a dash."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return "—"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.4g}"
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    return f"{mean:.4g} ± {std:.2g}"
