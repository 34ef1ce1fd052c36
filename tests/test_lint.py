"""Lint before training: deliberately bad recipes are caught, good ones pass in silence, and
looking changes nothing (loaders, RNG)."""

from __future__ import annotations

import warnings

import pytest
import torch
from sklearn.datasets import load_digits
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrpilot
from lrpilot import lint as L
from lrpilot import schedules as S


def _digits(scale: float = 16.0, n: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's digits; pixels 0..16 divided by ``scale`` (16: the usual [0, 1])."""
    digits = load_digits()
    x = torch.tensor(digits.data[:n], dtype=torch.float32) / scale
    return x, torch.tensor(digits.target[:n])


def _standardized() -> tuple[torch.Tensor, torch.Tensor]:
    x, y = _digits()
    return (x - x.mean(0)) / (x.std(0) + 1e-3), y


class _GRUNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(16, 8)
        self.rnn = nn.GRU(8, 8, batch_first=True)
        self.out = nn.Linear(8, 16)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(self.embed(x))[0][:, -1])


def _task(x, y, *, model_fn=None, val=True, batch_size=32, **options) -> lrpilot.Task:
    loader = DataLoader(
        TensorDataset(x, y),
        batch_size=batch_size,
        shuffle=True,
        generator=torch.Generator().manual_seed(1),
    )
    return lrpilot.Task(
        model_fn=model_fn
        or (lambda: nn.Sequential(nn.Linear(x.shape[1], 16), nn.ReLU(), nn.Linear(16, 10))),
        optimizer_fn=lambda p, lr: torch.optim.Adam(p, lr=lr),
        train_loader=loader,
        val_loader=DataLoader(TensorDataset(x, y), batch_size=64) if val else None,
        loss_fn=nn.functional.cross_entropy,
        **options,
    )


def _codes(findings: list[L.Finding]) -> set[str]:
    return {f.code for f in findings}


def test_a_good_recipe_is_silent():
    x, y = _standardized()
    task = _task(x, y, steps=200, schedule="warmup(0.05)+cosine")
    assert L.lint(task) == []


def test_images_in_zero_one_count_as_normalized():
    assert L.check_inputs(_task(*_digits(), steps=100).train_loader) == []


def test_raw_pixels_are_caught_with_the_measured_statistics():
    x, y = _digits(scale=1 / 16)  # 0..256: raw 8-bit pixels
    findings = L.lint(_task(x, y, steps=100))
    (finding,) = [f for f in findings if f.code == "inputs-not-normalized"]
    assert finding.severity == "warning"
    first = [b[0].reshape(-1) for b in _task(x, y).train_loader][:3]
    expected = torch.cat(first)
    assert finding.measured["mean"] == pytest.approx(float(expected.double().mean()), rel=0.2)
    assert finding.measured["std"] > 30
    assert "Normalize" in finding.advice


def test_a_mild_offset_is_only_info():
    x, y = _standardized()
    finding = L.check_inputs(_task(x + 3.0, y).train_loader)
    assert [f.severity for f in finding] == ["info"]


def test_columns_on_different_scales_are_caught():
    x, y = _standardized()
    x = x.clone()
    x[:, 1] *= 1000.0  # one column in different units (a price next to a carat)
    codes = _codes(L.check_inputs(_task(x, y).train_loader))
    assert "features-on-different-scales" in codes


def test_reading_the_loader_leaves_data_order_and_rng_alone():
    x, y = _digits(scale=1 / 16)
    looked, untouched = _task(x, y, steps=100), _task(x, y, steps=100)
    torch.manual_seed(5)
    expected_next = torch.rand(1)
    torch.manual_seed(5)
    assert L.lint(looked)  # it did read batches: the raw pixels were seen
    assert torch.rand(1) == expected_next
    for _ in range(2):  # the same data order, epoch after epoch
        seen = [b[1].tolist() for b in looked.train_loader]
        assert seen == [b[1].tolist() for b in untouched.train_loader]


def test_a_one_shot_iterator_is_not_consumed():
    x, y = _digits(scale=1 / 16)
    batches = iter([(x[:32], y[:32]), (x[32:64], y[32:64])])
    assert L.check_inputs(batches) == []
    assert len(list(batches)) == 2


def test_no_validation_data_is_info():
    x, y = _standardized()
    findings = L.lint(_task(x, y, val=False, steps=100))
    assert [(f.code, f.severity) for f in findings] == [("no-validation-data", "info")]


def _tokens() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 16, (64, 6), generator=g)
    return x, x[:, 0]


def test_a_gru_without_clipping_is_caught_and_with_clipping_is_not():
    x, y = _tokens()
    unclipped = L.lint(_task(x, y, model_fn=_GRUNet, steps=100))
    (finding,) = [f for f in unclipped if f.code == "rnn-without-clipping"]
    assert finding.severity == "warning" and finding.measured["layers"] == ["GRU"]
    clipped = L.lint(_task(x, y, model_fn=_GRUNet, steps=100, grad_clip=1.0))
    assert "rnn-without-clipping" not in _codes(clipped)
    assert "inputs-not-normalized" not in _codes(clipped)  # token ids are not float inputs


@pytest.mark.parametrize(
    ("make", "lr", "severity"),
    [
        (torch.optim.Adam, 1e-3, None),
        (torch.optim.Adam, 3e-2, "info"),
        (torch.optim.Adam, 1.0, "warning"),
        (torch.optim.SGD, 0.05, None),
        (torch.optim.SGD, 1e-5, "warning"),
        (torch.optim.RMSprop, 1e-2, None),
        (torch.optim.RMSprop, 0.2, "info"),
    ],
)
def test_lr_against_the_family_range(make, lr, severity):
    model = nn.Linear(4, 2)
    optimizer = make(model.parameters(), lr=lr)
    found = [f for f in L.lint(model=model, optimizer=optimizer) if f.code.startswith("lr-")]
    assert [f.severity for f in found] == ([] if severity is None else [severity])


def test_fine_tuning_may_run_lower():
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-5)
    assert L.lint(model=model, optimizer=optimizer) == []


def test_a_large_batch_without_warmup_is_caught():
    x, y = _standardized()
    x, y = x.repeat(8, 1), y.repeat(8)
    bare = L.lint(_task(x, y, batch_size=1024, steps=200, schedule="cosine"))
    assert "large-batch-without-warmup" in _codes(bare)
    warm = L.lint(_task(x, y, batch_size=1024, steps=200, schedule="warmup(0.05)+cosine"))
    assert "large-batch-without-warmup" not in _codes(warm)
    # 4 devices of 256 make the same effective batch
    small = _task(x, y, batch_size=256, steps=200, schedule="cosine")
    assert "large-batch-without-warmup" not in _codes(L.lint(small))
    assert "large-batch-without-warmup" in _codes(L.lint(small, devices=4))


def test_a_long_constant_run_is_told_to_decay():
    x, y = _standardized()
    long_constant = L.lint(_task(x, y, steps=5000))
    (finding,) = [f for f in long_constant if f.code == "schedule-never-decays"]
    assert finding.severity == "info" and finding.measured["tail_fraction"] == 1.0
    assert _codes(L.lint(_task(x, y, steps=5000, schedule="cosine"))) == set()
    assert _codes(L.lint(_task(x, y, steps=500))) == set()  # short: no finding


def test_findings_are_plain_data_and_most_serious_first():
    x, y = _tokens()
    findings = L.lint(
        _task(x.float() * 100, y, model_fn=lambda: nn.Linear(6, 16), val=False, steps=5000)
    )
    assert [f.severity for f in findings] == sorted(
        (f.severity for f in findings), key=lambda s: -L.SEVERITIES.index(s)
    )
    for f in findings:
        assert set(f.to_dict()) == {"code", "severity", "message", "advice", "measured"}


def test_warn_serious_raises_lint_warnings_for_warnings_only():
    x, y = _digits(scale=1 / 16)
    findings = L.lint(_task(x, y, val=False, steps=100))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        serious = L.warn_serious(findings)
    assert [f.code for f in serious] == ["inputs-not-normalized"]
    assert len(caught) == 1 and issubclass(caught[0].category, L.LintWarning)
    assert caught[0].filename == __file__  # points at the caller


def test_a_live_torch_scheduler_is_read_and_left_as_it_was():
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    constant = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0)
    found = L.lint(model=model, optimizer=optimizer, schedule=constant, steps=3000)
    assert "schedule-never-decays" in _codes(found)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=3000)
    state = cosine.state_dict()
    assert "schedule-never-decays" not in _codes(
        L.lint(model=model, optimizer=optimizer, schedule=cosine, steps=3000)
    )
    assert cosine.state_dict() == state and optimizer.param_groups[0]["lr"] == 0.05
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)
    assert L.lint(model=model, optimizer=optimizer, schedule=plateau, steps=3000) == []


def test_a_float_attention_mask_is_not_an_input_to_normalize():
    g = torch.Generator().manual_seed(0)
    batches = [
        {
            "inputs_embeds": torch.randn(4, 6, 8, generator=g),
            "attention_mask": torch.ones(4, 6),  # float 0/1: mean 1, std 0
            "labels": torch.randint(0, 2, (4,), generator=g),
        }
        for _ in range(3)
    ]
    assert L.check_inputs(batches) == []
    scaled = [{**b, "inputs_embeds": 50 * b["inputs_embeds"] + 20} for b in batches]
    assert [f.code for f in L.check_inputs(scaled)] == ["inputs-not-normalized"]


@pytest.mark.parametrize(
    "bad", [{"batch_size": 0}, {"steps": -1}, {"devices": 0}, {"accumulation_steps": 0}]
)
def test_counts_out_of_range_are_refused(bad):
    with pytest.raises(lrpilot.ConfigError, match=next(iter(bad))):
        L.lint(model=nn.Linear(2, 2), optimizer="adam", **bad)


@pytest.mark.parametrize(
    ("schedule", "found"),
    [
        (S.cosine(steps=10), True),  # "cosine over 10 epochs" in a 100-step run: 90 % at LR 0
        (S.warmup(S.linear(steps=40, end=0.0), steps=10), True),
        ("warmup(0.05)+cosine", False),  # a spec is laid over the run
        (S.cosine(steps=100), False),  # reaches zero at the very end: as meant
        (S.multi_step(milestones=[50, 75]), False),  # a step decay to 1 % of the peak: not 0
        (None, False),
    ],
)
def test_a_schedule_that_ends_before_the_run_is_a_warning(schedule, found):
    x, y = _standardized()
    findings = L.lint(_task(x, y), steps=100, schedule=schedule)
    early = [f for f in findings if f.code == "schedule-ends-early"]
    assert bool(early) is found
    if found:
        assert early[0].severity == "warning" and "train at an LR of 0" in early[0].message
