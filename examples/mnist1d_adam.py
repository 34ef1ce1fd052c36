"""MNIST-1D with a small Conv1d net and Adam, 1,500 cosine-decayed steps.

lrpilot find examples/mnist1d_adam.py
"""

import lrpilot
from lrpilot.demo import mnist1d_task


def task() -> lrpilot.Task:
    return mnist1d_task(seed=0)
