"""The rules of thumb against their closed forms, and their descriptions as data."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import lrpilot
from lrpilot import rules


def _params() -> list[nn.Parameter]:
    return list(nn.Linear(2, 2).parameters())


@pytest.mark.parametrize(
    ("lr", "old", "new", "optimizer", "expected"),
    [
        (0.1, 256, 1024, "sgd", 0.4),  # the DESIGN contract: linear, 4x
        (1e-3, 256, 1024, "adam", 2e-3),  # square root, 2x
        (0.1, 256, 8192, "sgd", 3.2),  # Goyal et al.'s 8k: 0.1 * 8192 / 256
        (0.1, 1024, 256, "sgd", 0.025),  # scaling down too
        (1e-3, 64, 256, "rmsprop", 2e-3),
        (3e-4, 100, 900, "AdamW", 9e-4),
        (0.1, 256, 1024, torch.optim.SGD, 0.4),  # a class
        (1e-3, 256, 1024, torch.optim.NAdam, 2e-3),
    ],
)
def test_scale_lr_closed_form(lr, old, new, optimizer, expected):
    assert rules.scale_lr(lr, old, new, optimizer) == pytest.approx(expected, rel=1e-12)


def test_scale_lr_contract_is_exact_and_public():
    assert lrpilot.scale_lr(0.1, 256, 1024, "sgd") == 0.4


@pytest.mark.parametrize(
    ("make", "rule"),
    [
        (lambda: torch.optim.SGD(_params(), lr=0.1, momentum=0.9), "linear"),
        (lambda: torch.optim.AdamW(_params()), "sqrt"),
        (lambda: torch.optim.RMSprop(_params()), "sqrt"),
        (lambda: torch.optim.Adagrad(_params()), "sqrt"),
    ],
)
def test_optimizer_instances_pick_their_rule(make, rule):
    assert rules.scaling_rule(make()) == rule


class _Wrapped:
    """What Accelerate and Lightning hand out: the real optimizer under ``.optimizer``."""

    def __init__(self, optimizer: torch.optim.Optimizer) -> None:
        self.optimizer = optimizer


def test_a_wrapped_optimizer_is_looked_through():
    assert rules.family_of(_Wrapped(torch.optim.Adam(_params()))) == "adam"


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0.1, 256, 1024, "lbfgs"), "family name"),
        ((0.1, 256, 1024, torch.optim.LBFGS), "No batch-size scaling rule"),
        ((0.1, 256, 1024, int), "Optimizer class"),
        ((0.1, 256, 1024, 3), "family name"),
        ((-0.1, 256, 1024, "sgd"), "lr must be"),
        ((0.1, 0, 1024, "sgd"), "old_batch must be"),
        ((0.1, 256, 10.5, "sgd"), "new_batch must be"),
        ((float("nan"), 256, 1024, "adam"), "lr must be"),
    ],
)
def test_scale_lr_refuses_bad_input_with_a_config_error(args, match):
    with pytest.raises(lrpilot.ConfigError, match=match):
        rules.scale_lr(*args)


@pytest.mark.parametrize(
    ("beta2", "total", "expected"),
    [
        (0.999, None, 2000),  # Ma & Yarats: 2 / (1 - beta2)
        (0.99, None, 200),
        (0.95, None, 40),
        (0.98, None, 100),
        (0.999, 5000, 500),  # capped at 10 % of the run
        (0.999, 30, 3),
        (0.95, 100_000, 40),  # the cap does not bind
    ],
)
def test_adam_warmup_closed_form(beta2, total, expected):
    assert rules.adam_warmup_steps(beta2, total) == expected


def test_adam_warmup_refuses_beta2_of_one():
    with pytest.raises(lrpilot.ConfigError):
        rules.adam_warmup_steps(1.0)


@pytest.mark.parametrize(
    ("per_epoch", "total", "epochs", "expected"),
    [(100, None, 5.0, 500), (100, 1000, 5.0, 100), (7, 10_000, 5.0, 35), (10, None, 0.5, 5)],
)
def test_sgd_warmup_closed_form(per_epoch, total, epochs, expected):
    assert rules.sgd_warmup_steps(per_epoch, total, epochs) == expected


@pytest.mark.parametrize(
    ("per_device", "devices", "accumulation", "expected"),
    [(32, 1, 1, 32), (32, 8, 1, 256), (16, 4, 4, 256), (64, 2, 8, 1024)],
)
def test_effective_batch_is_the_product(per_device, devices, accumulation, expected):
    assert rules.effective_batch(per_device, devices, accumulation) == expected


def test_more_devices_rescale_like_a_bigger_batch():
    """Going from 1 to 4 devices (or 4 accumulation steps) at batch 64: the same LR change as
    going from batch 64 to 256, and a quarter of the steps per epoch."""
    one = rules.effective_batch(64)
    four = rules.effective_batch(64, devices=4)
    assert four == rules.effective_batch(64, accumulation_steps=4) == 256
    assert rules.scale_lr(0.05, one, four, "sgd") == pytest.approx(0.2)
    assert rules.scale_lr(1e-3, one, four, "adam") == pytest.approx(2e-3)
    assert rules.steps_per_epoch(50_000, one) == 782
    assert rules.steps_per_epoch(50_000, four) == 196


@pytest.mark.parametrize(
    ("recipe", "decay"),
    [
        ("ulmfit", 1 / 2.6),
        ("electra-base", 0.8),
        ("electra-large", 0.9),
        ("beit-base", 0.65),
        ("beit-large", 0.75),
        ("mae-base", 0.65),
        ("mae-large", 0.75),
    ],
)
def test_layer_decays_of_the_published_recipes(recipe, decay):
    assert rules.layer_decay(recipe) == pytest.approx(decay)


@pytest.mark.parametrize(("depth", "decay"), [(1, 0.8), (4, 0.8), (12, 0.65), (3, 1 / 2.6)])
def test_layerwise_lrs_closed_form(depth, decay):
    lrs = rules.layerwise_lrs(1e-4, depth, decay)
    assert lrs == pytest.approx([1e-4 * decay ** (depth - 1 - i) for i in range(depth)])
    assert lrs[-1] == 1e-4
    if depth > 1:  # ULMFiT: each layer's LR is the one above it divided by 1/decay
        assert lrs[-2] / lrs[-1] == pytest.approx(decay)


@pytest.mark.parametrize(
    ("full", "steps", "expected"), [(1e-5, None, 1e-4), (1e-5, 1000, 1e-4), (1e-5, 50, 1.5e-4)]
)
def test_lora_lr(full, steps, expected):
    assert rules.lora_lr(full, steps) == pytest.approx(expected)


def test_loraplus_ratio_is_16():
    assert rules.loraplus_lrs(2e-4) == pytest.approx((2e-4, 3.2e-3))


def test_every_rule_names_formula_source_and_range():
    assert len(rules.RULES) >= 12
    for name, info in rules.RULES.items():
        assert info.name == name
        assert info.formula and info.source and info.holds
        assert set(info.to_dict()) == {"name", "formula", "source", "holds"}
    assert "Goyal" in rules.RULES["scale_lr_linear"].source
    assert "Malladi" in rules.RULES["scale_lr_sqrt"].source
    assert "Ma & Yarats" in rules.RULES["adam_warmup"].source
    assert "(recalled)" in rules.RULES["lora_lr"].source


def test_reason_cites_its_rule():
    got = rules.reason("scale_lr_linear", "0.1 -> 0.4")
    assert got.to_dict() == {
        "text": "0.1 -> 0.4",
        "source": rules.RULES["scale_lr_linear"].source,
        "rule": "scale_lr_linear",
    }
    assert math.isclose(rules.FAMILY_RANGES["adam"][0], 1e-4)
