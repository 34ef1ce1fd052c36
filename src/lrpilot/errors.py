"""lrpilot's exception types: every error says what went wrong and what to do about it."""

from __future__ import annotations

__all__ = [
    "LRPilotError",
    "ConfigError",
    "DataError",
    "LossError",
    "MissingDependencyError",
    "ModelError",
    "SpecError",
]


class LRPilotError(Exception):
    """Base class of every error lrpilot raises on purpose."""


class ConfigError(LRPilotError, ValueError):
    """An argument is out of range or inconsistent with another (``start_lr >= end_lr``)."""


class DataError(LRPilotError, ValueError):
    """A loader yields nothing, or a batch lrpilot cannot unpack."""


class LossError(LRPilotError, ValueError):
    """The loss is not a finite scalar tensor where one is needed."""


class ModelError(LRPilotError, ValueError):
    """The model or optimizer cannot be swept: no trainable parameters, or parameters the
    optimizer does not hold."""


class SpecError(LRPilotError, ValueError):
    """A schedule text spec is malformed; the message points at the offending token."""


class MissingDependencyError(LRPilotError, ImportError):
    """An optional package a feature needs is not installed; the message names the extra."""
