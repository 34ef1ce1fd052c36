"""lrpilot inside other tools: PyTorch Lightning, Hugging Face ``transformers``, TensorBoard.

Each lives in its own module and is imported only when asked for, so ``import lrpilot`` never
loads a framework; a missing one raises :class:`~lrpilot.MissingDependencyError` naming the
extra to install:

* :mod:`lrpilot.integrations.lightning`: ``LRPilotCallback``, the range test before fit and
  the monitor during it (extra ``[lightning]``);
* :mod:`lrpilot.integrations.transformers`: ``MonitorCallback`` for the ``Trainer`` and
  ``find_lr_for_trainer`` (extra ``[transformers]``);
* :mod:`lrpilot.integrations.tensorboard`: ``TensorBoardCallback`` and ``write_range_test``
  (extra ``[tensorboard]``).
"""

from __future__ import annotations

__all__: list[str] = []
