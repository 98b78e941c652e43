"""Which recipe changes a resumed run can take."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf


def _changed(a, b, prefix: str = "") -> list[str]:
    """Dotted keys whose values differ between two plain containers (a key on one side only too)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [k for key in dict.fromkeys([*a, *b]) for k in _changed(a.get(key), b.get(key), f"{prefix}{key}.")]
    return [prefix[:-1]] if a != b else []


def _fixed(key: str) -> bool:
    """Whether a restored run cannot take a change of ``key``: what its weights, optimizer states
    and schedule position were made for."""
    p = key.split(".")
    if p[0] == "networks":
        return len(p) == 2 or p[2] in ("type", "role", "args")
    if p[0] == "steps":
        return len(p) == 2 or p[2] == "networks" or p[2:4] == ["optimizer", "type"]
    return p[0] in ("images", "init_from") or key == "train.scheduler.interval"


def fixed_changes(saved: DictConfig, recipe: DictConfig) -> list[str]:
    """The keys ``recipe`` changes from a run's ``saved`` recipe that a resumed run cannot take:
    a network's ``type``, ``role`` or ``args`` (or a network added or removed), ``images``, a step
    added or removed or its ``networks`` or ``optimizer.type``, ``train.scheduler.interval`` and
    ``init_from``. Everything else (optimizer args, the schedule, epochs, data, loss weights, ...)
    applies on resume."""
    plain = [OmegaConf.to_container(r, resolve=True) for r in (saved, recipe)]
    return [k for k in _changed(*plain) if _fixed(k)]
