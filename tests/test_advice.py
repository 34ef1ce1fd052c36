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


def test_a_tasks_family_is_its_recipes_optimizers():
    import lrpilot
    from lrpilot.advice import task_family

    def task(optimizer_fn):
        batches = [(torch.randn(4, 3), torch.randn(4, 1))]
        return lrpilot.Task(
            model_fn=lambda: torch.nn.Linear(3, 1),
            optimizer_fn=optimizer_fn,
            train_loader=batches,
            loss_fn=torch.nn.functional.mse_loss,
        )

    assert task_family(task(lambda p, lr: torch.optim.AdamW(p, lr=lr))) == "adam"
    assert task_family(task(lambda p, lr: torch.optim.SGD(p, lr=lr, momentum=0.9))) == "sgd"
    assert task_family(task(lambda p, lr: torch.optim.RMSprop(p, lr=lr))) == "rmsprop"


class _LoggingAdamW(torch.optim.AdamW):
    """A user's subclass that adds logging: the same maths, another class name."""


class _MySGD(torch.optim.SGD):
    pass


class _Homemade(torch.optim.Optimizer):
    def __init__(self, params):  # type: ignore[no-untyped-def]
        super().__init__(params, {"lr": 0.1})


def test_a_subclass_keeps_its_bases_family_and_prior():
    import lrpilot
    from lrpilot.advice import task_family

    params = [torch.zeros(1, requires_grad=True)]
    assert optimizer_family(_LoggingAdamW(params)) == "adam"
    assert prior_lr_for(_LoggingAdamW(params)) == 1e-3
    assert optimizer_family(_MySGD(params, lr=0.1)) == "sgd"
    assert prior_lr_for(_MySGD(params, lr=0.1)) == 1e-2
    assert optimizer_family(_Homemade(params)) == "_homemade"  # its own family, no prior
    assert prior_lr_for(_Homemade(params)) is None
    # the rules take the class too, and a task reads its family off its fingerprint
    assert lrpilot.scale_lr(1e-3, 256, 1024, _LoggingAdamW) == 2e-3
    assert lrpilot.scale_lr(0.1, 256, 1024, _MySGD) == 0.4
    task = lrpilot.Task(
        model_fn=lambda: torch.nn.Linear(3, 1),
        optimizer_fn=lambda p, lr: _LoggingAdamW(p, lr=lr),
        train_loader=[(torch.randn(4, 3), torch.randn(4, 1))],
        loss_fn=torch.nn.functional.mse_loss,
    )
    assert task_family(task) == "adam"
    assert task.fingerprint()["optimizer"] == "_LoggingAdamW"  # the id's input is unchanged
