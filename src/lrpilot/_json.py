"""Numbers in strict JSON: NaN and infinities are not JSON (strict parsers, JavaScript and
``jq`` refuse them), ``null`` is. Results keep their floats in memory; they meet JSON only
when written (``RunResult.save``, every ``--json``) and read back."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["json_safe", "nan_if_none"]


def json_safe(value: Any) -> Any:
    """``value`` (plain data, nested lists, tuples and dicts) with every non-finite float as
    ``None``; tuples become lists, as JSON writes them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def nan_if_none(value: Any) -> float:
    """A number read back from such data: ``None`` (a NaN written as ``null``) is NaN."""
    return math.nan if value is None else float(value)
