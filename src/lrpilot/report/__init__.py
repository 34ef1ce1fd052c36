"""Every plot lrpilot draws, from result *data* (``to_dict()`` output or the result itself),
never from a live model: a report built from the history draws the same picture."""

from __future__ import annotations

from ._range_test import plot_range_test
from ._schedule import plot_schedule

__all__ = ["plot_range_test", "plot_schedule"]
