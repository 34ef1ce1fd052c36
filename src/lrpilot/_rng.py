"""Seeding and isolating every random number generator a run draws from.

A run or a sweep seeded here draws the same numbers in every process: Python's ``random``,
NumPy's global generator, torch's CPU and CUDA generators, and the private generators that
loaders shuffle with. :func:`isolated_rng` puts all of them back afterwards, so a call leaves
no trace in the caller's random streams.
"""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import torch

from . import _validate as check
from ._state import loader_generators

__all__ = ["seed_everything", "isolated_rng", "generators_of"]


def generators_of(loaders: Iterable[Any]) -> list[torch.Generator]:
    """The private generators of every loader in ``loaders`` (``None`` entries skipped)."""
    found: dict[int, torch.Generator] = {}
    for loader in loaders:
        for generator in loader_generators(loader):
            found[id(generator)] = generator
    return list(found.values())


def seed_everything(seed: int, generators: Iterable[torch.Generator] = ()) -> None:
    """Seed Python, NumPy, torch (CPU and CUDA) and ``generators`` from ``seed``."""
    seed = check.whole("seed", seed, 0)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)  # every CUDA device too
    for generator in generators:
        generator.manual_seed(seed)


@contextlib.contextmanager
def isolated_rng(generators: Iterable[torch.Generator] = ()) -> Iterator[None]:
    """Put the Python, NumPy, torch (CPU and initialised CUDA) and ``generators`` states back
    on exit, also when the body raises."""
    generators = list(generators)
    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    private = [g.get_state() for g in generators]
    try:
        yield
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        for generator, state in zip(generators, private, strict=True):
            generator.set_state(state)
