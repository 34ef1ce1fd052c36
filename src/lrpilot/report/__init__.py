"""Every plot lrpilot draws, from result *data* (``to_dict()`` output or the result itself),
never from a live model: a report built from the history draws the same picture.

Figures are built with matplotlib's object API, never ``pyplot``: plotting leaves a notebook's
backend alone, and every path is checked (format, folder) before anything is drawn.
"""

from __future__ import annotations

from ._range_test import RangeTestData, plot_range_test, plot_range_tests, range_test_data
from ._save import check_plot_path, check_report_path, supported_formats
from ._schedule import plot_schedule

__all__ = [
    "RangeTestData",
    "check_plot_path",
    "check_report_path",
    "plot_range_test",
    "plot_range_tests",
    "plot_schedule",
    "range_test_data",
    "supported_formats",
]
