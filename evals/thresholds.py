"""CI gate: minimum/maximum metric values (``evals/thresholds.toml``) and the check against a run."""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from assistant.errors import InputError
from evals.scores import METRICS

DEFAULT = Path(__file__).with_name("thresholds.toml")
SECTIONS = ("min", "max")


def load_thresholds(path: Path | str = DEFAULT) -> dict[str, dict[str, float]]:
    """``{"min": {metric: floor}, "max": {metric: ceiling}}``; unknown sections or metrics are errors."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: thresholds file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise InputError(f"{path}: malformed TOML ({err})") from None
    out: dict[str, dict[str, float]] = {s: {} for s in SECTIONS}
    for section, values in data.items():
        if section not in SECTIONS or not isinstance(values, dict):
            raise InputError(f"{path}: unknown section [{section}] (expected [min] and [max])")
        for metric, value in values.items():
            if metric not in METRICS:
                raise InputError(f"{path}: [{section}] {metric}: unknown metric (one of {', '.join(METRICS)})")
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InputError(f"{path}: [{section}] {metric}: expected a number, got {value!r}")
            out[section][metric] = float(value)
    return out


def missed(metrics: Mapping[str, Any], thresholds: Mapping[str, Mapping[str, float]]) -> list[str]:
    """One line per threshold the run misses (a metric that is n/a misses its threshold)."""
    out = []
    for metric, floor in thresholds.get("min", {}).items():
        value = metrics.get(metric)
        if value is None or value < floor:
            out.append(f"{metric} = {_show(value)} is below the minimum {floor:g}")
    for metric, ceiling in thresholds.get("max", {}).items():
        value = metrics.get(metric)
        if value is None or value > ceiling:
            out.append(f"{metric} = {_show(value)} is above the maximum {ceiling:g}")
    return out


def _show(value: Any) -> str:
    return "n/a" if value is None else (f"{value:.3f}" if isinstance(value, float) else str(value))
