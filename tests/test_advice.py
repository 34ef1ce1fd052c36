"""``lrpilot.advice``: the optimizer family and the prior LR, wrappers looked through."""

from __future__ import annotations

import torch

from lrpilot.advice import optimizer_family, prior_lr_for


class _Wrapper:
    """What Accelerate and Lightning hand out: the real optimizer under ``.optimizer``."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer


def test_family_and_prior_of_plain_and_wrapped_optimizers():
    params = [torch.zeros(1, requires_grad=True)]
    adamw, sgd = torch.optim.AdamW(params), torch.optim.SGD(params, lr=0.1)
    assert optimizer_family(adamw) == "adam" and prior_lr_for(adamw) == 1e-3
    assert optimizer_family(sgd) == "sgd" and prior_lr_for(sgd) == 1e-2
    assert optimizer_family(_Wrapper(_Wrapper(adamw))) == "adam"
    assert prior_lr_for(_Wrapper(adamw)) == 1e-3 and prior_lr_for(_Wrapper(sgd)) == 1e-2
