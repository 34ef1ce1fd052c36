"""The standard training step's pieces, shared by the range test and the training loop: how
a batch becomes a loss, how batches reach the model's device, how a loader is cycled, how a
loss is checked and how the validation loss is measured."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, DataError, LossError, ModelError

__all__ = [
    "LossStep",
    "default_loss_step",
    "move_to_device",
    "model_device",
    "cycle",
    "evaluate_loss",
    "check_scalar_loss",
    "check_optimizer_holds",
    "own_iterators",
    "needs_closure",
    "set_group_lr",
]

LossStep = Callable[[nn.Module, Any], torch.Tensor]
"""``(model, batch) -> scalar loss``: one batch (already on the model's device) to its loss."""


def default_loss_step(loss_fn: Callable[[Any, Any], torch.Tensor] | None) -> LossStep:
    """The standard step for ``(inputs, targets)`` batches: ``loss_fn(model(inputs), targets)``."""
    if loss_fn is None:
        raise ConfigError("loss_fn is required unless a custom loss_step is given.")

    def step(model: nn.Module, batch: Any) -> torch.Tensor:
        if not isinstance(batch, (tuple, list)) or len(batch) != 2:
            raise DataError(
                f"Expected batches of (inputs, targets), got {type(batch).__name__}"
                + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
                + ". Pass loss_step=(model, batch) -> loss for other batch shapes."
            )
        inputs, targets = batch
        return loss_fn(model(inputs), targets)

    return step


def move_to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor inside (tuples, lists, dicts, nested) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, Mapping):
        moved = {k: move_to_device(v, device) for k, v in batch.items()}
        return type(batch)(moved)  # type: ignore[call-arg]  # dict subclasses take a dict
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):  # namedtuple
        return type(batch)(*(move_to_device(v, device) for v in batch))
    if isinstance(batch, (tuple, list)):
        return type(batch)(move_to_device(v, device) for v in batch)
    return batch


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (CPU for a model without parameters)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def cycle(loader: Iterable[Any]) -> Generator[Any, None, None]:
    """Batches of ``loader`` forever, restarting it when it runs out.

    Raises:
        DataError: the loader yields no batch at all, or is a one-shot iterator (a generator)
            that ran out and cannot be restarted.
    """
    drawn = 0
    while True:
        empty = True
        for batch in loader:
            empty = False
            drawn += 1
            yield batch
        if empty and drawn:
            raise DataError(
                f"The loader is a one-shot iterator: it yielded {drawn} batches, ran out and "
                "cannot be restarted. Pass a re-iterable loader (a list or a DataLoader), or "
                "one with enough batches for the whole sweep (num_steps x accumulation_steps)."
            )
        if empty:
            raise DataError("The loader yielded no batch: check the dataset and batch_size.")


def evaluate_loss(
    model: nn.Module,
    batches: Iterable[Any],
    loss_step: LossStep,
) -> float:
    """Mean loss of ``model`` over ``batches``, in eval mode and without gradients.

    The model's train/eval flags are put back afterwards.
    """
    flags = [m.training for m in model.modules()]
    device = model_device(model)
    total, count = 0.0, 0
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                total += float(loss_step(model, move_to_device(batch, device)))
                count += 1
    finally:
        for module, flag in zip(model.modules(), flags, strict=True):
            module.training = flag
    if count == 0:
        raise DataError("The validation loader yielded no batch.")
    return total / count


def _hint(loss: Any) -> str:
    """What usually makes a loss that is not a tensor, and what to do."""
    if loss is None:
        return (
            ": a Hugging Face model returns loss=None when its batch has no labels (put the "
            "labels in the batch, or give a loss_step that computes the loss)."
        )
    if isinstance(loss, (int, float)):
        return ": return the loss tensor itself, not loss.item() (the gradient flows through it)."
    return "."


def check_scalar_loss(loss: Any) -> torch.Tensor:
    """``loss`` if it is a scalar tensor that carries a gradient, else a clear error."""
    if not isinstance(loss, torch.Tensor):
        raise LossError(f"The loss must be a torch.Tensor, got {type(loss).__name__}{_hint(loss)}")
    if loss.numel() != 1:
        raise LossError(
            f"The loss must be a scalar, got shape {tuple(loss.shape)}: reduce it with "
            "mean() or sum(), or use a loss_fn with reduction='mean'."
        )
    if not (loss.is_floating_point() or loss.is_complex()):
        raise LossError(
            f"The loss must be a floating-point tensor, got dtype {loss.dtype}: compute it from "
            "the model's outputs (an integer tensor has no gradient)."
        )
    if not loss.requires_grad:
        raise LossError("The loss does not require grad: is the model's output detached?")
    return loss if loss.dim() == 0 else loss.reshape(())


def check_optimizer_holds(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Raise unless the model has trainable parameters and the optimizer holds some of them."""
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    if not trainable:
        raise ModelError(
            "The model has no trainable parameters (all have requires_grad=False): "
            "unfreeze some layers before the range test."
        )
    held = {id(p) for group in optimizer.param_groups for p in group["params"]}
    if not trainable & held:
        raise ModelError(
            "The optimizer holds none of the model's trainable parameters: build it with "
            "optimizer = Opt(model.parameters(), ...) for this model instance."
        )


@contextlib.contextmanager
def own_iterators(loaders: list[Any]) -> Iterator[None]:
    """Run through fresh iterators of persistent-worker DataLoaders and give back their
    own afterwards.

    Such a loader keeps one iterator, and its worker processes, for good: workers seeded when
    they start, whose RNGs (augmentation) move on every epoch. Sweeping through the loader's
    own iterator would leave the real run a different data stream, and a second sweep another
    one again. So the sweep starts its own (its workers seeded from the RNGs the snapshot
    restores), shuts it down after, and the loader's ``_iterator`` is put back as it was.
    """
    persistent = [dl for dl in loaders if getattr(dl, "persistent_workers", False)]
    saved = [(dl, dl._iterator) for dl in persistent]
    for dl in persistent:
        dl._iterator = None
    try:
        yield
    finally:
        for dl, own in saved:
            made = dl._iterator
            if made is not None and made is not own:
                shutdown = getattr(made, "_shutdown_workers", None)
                if callable(shutdown):
                    shutdown()
            dl._iterator = own


def needs_closure(optimizer: Any) -> bool:
    """Whether ``optimizer.step`` requires a closure (LBFGS and its kind)."""
    try:
        params = inspect.signature(optimizer.step).parameters
    except (TypeError, ValueError):
        return False
    closure = params.get("closure")
    return closure is not None and closure.default is inspect.Parameter.empty


def set_group_lr(group: dict[str, Any], lr: float) -> None:
    """Set a param group's LR; a tensor LR is filled in place, never replaced."""
    if isinstance(group["lr"], torch.Tensor):
        group["lr"].fill_(lr)  # a tensor LR stays the same object (captured graphs read it)
    else:
        group["lr"] = lr
