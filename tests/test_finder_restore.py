"""find_lr is a transaction: model, optimizer, gradients, train/eval flags and RNG states are
bitwise what they were before the call, whether it returns, raises or is interrupted."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torch import nn

import lrpilot
from conftest import batches_of, make_classification, mlp

NUM_STEPS = 20


# ----------------------------------------------------------------------------- models


class BatchNormDropoutNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.3), nn.Linear(16, 3)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class RecurrentNet(nn.Module):
    """Embedding -> GRU or LSTM (two layers, dropout between them) -> linear head."""

    def __init__(self, cell: str) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 6)
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(6, 8, num_layers=2, dropout=0.2, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.embed(tokens))
        return self.head(out[:, -1])


class CachingNet(nn.Module):
    """Buffers outside ``state_dict``: a forward counter and a cache that the forward pass
    reassigns with a new shape, plus extra state that is not a tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(8, 3)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long), persistent=False)
        self.register_buffer("cache", torch.zeros(1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.cache = torch.arange(float(self.calls))
        return self.linear(x)

    def get_extra_state(self) -> dict:
        return {"version": 1}

    def set_extra_state(self, state: dict) -> None:
        pass


def _dense_data(seed: int = 0) -> list:
    return batches_of(*make_classification(n=48, seed=seed), size=12)


def _token_data(seed: int = 0) -> list:
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(0, 10, (48, 5), generator=g)
    return batches_of(tokens, tokens[:, 0] % 3, size=12)


MODELS = {
    "batchnorm_dropout": (BatchNormDropoutNet, _dense_data),
    "embedding_gru": (lambda: RecurrentNet("gru"), _token_data),
    "embedding_lstm": (lambda: RecurrentNet("lstm"), _token_data),
    "caching": (CachingNet, _dense_data),
}


def _sgd_with_momentum(model: nn.Module, batches: list) -> torch.optim.Optimizer:
    """SGD that has already taken three steps, so it holds momentum buffers."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, nesterov=True)
    for x, y in batches[:3]:
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    assert all("momentum_buffer" in s for s in opt.state.values()) and opt.state
    return opt


def _adam(model: nn.Module, batches: list) -> torch.optim.Optimizer:
    return torch.optim.Adam(model.parameters(), lr=1e-3)


def _adamw_two_groups(model: nn.Module, batches: list) -> torch.optim.Optimizer:
    """AdamW with two param groups at different LRs and weight decays, after one step."""
    params = list(model.parameters())
    opt = torch.optim.AdamW(
        [
            {"params": params[:-2], "lr": 3e-4, "weight_decay": 0.1},
            {"params": params[-2:], "lr": 3e-3, "weight_decay": 0.0},
        ]
    )
    x, y = batches[0]
    nn.functional.cross_entropy(model(x), y).backward()
    opt.step()
    return opt


OPTIMIZERS = {"sgd_momentum": _sgd_with_momentum, "adam": _adam, "adamw_groups": _adamw_two_groups}


def _setup(model_name: str, opt_name: str, seed: int = 0):
    build, make_data = MODELS[model_name]
    torch.manual_seed(seed)
    model = build()
    batches = make_data(seed)
    optimizer = OPTIMIZERS[opt_name](model, batches)
    # leave gradients behind: some parameters hold one, the last holds none
    optimizer.zero_grad(set_to_none=True)
    x, y = batches[-1]
    nn.functional.cross_entropy(model(x), y).backward()
    list(model.parameters())[-1].grad = None
    return model, optimizer, batches


def _rng_states() -> tuple:
    return random.getstate(), np.random.get_state(), torch.get_rng_state()


def _draws() -> tuple:
    return random.random(), float(np.random.rand()), float(torch.rand(()))


def _assert_rng_as(states: tuple) -> None:
    """The next draws equal the draws right after ``states``."""
    after_call = _draws()
    random.setstate(states[0])
    np.random.set_state(states[1])
    torch.set_rng_state(states[2])
    assert _draws() == after_call


def _mutated(record) -> bool:
    """Whether the model differs from the record right now (proves there was work to undo)."""
    live = dict(record.model.named_parameters())
    live.update(record.model.named_buffers())
    return any(
        v.shape != record.tensors[k].shape or not torch.equal(v, record.tensors[k])
        for k, v in live.items()
    )


# ----------------------------------------------------------------------------- tests


@pytest.mark.parametrize("opt_name", OPTIMIZERS)
@pytest.mark.parametrize("model_name", MODELS)
def test_bitwise_restore_after_find_lr(model_name, opt_name, state_of):
    model, optimizer, batches = _setup(model_name, opt_name)
    record = state_of(model, optimizer)
    rng = _rng_states()

    res = lrpilot.find_lr(
        model,
        optimizer,
        batches,
        nn.functional.cross_entropy,
        num_steps=NUM_STEPS,
        end_lr=1.0,
        progress=False,
    )

    assert res.num_steps_run >= 8
    record.assert_unchanged()
    _assert_rng_as(rng)


@pytest.mark.parametrize("mode", ["eval", "mixed"])
def test_train_eval_flags_restored(mode, state_of):
    model, optimizer, batches = _setup("batchnorm_dropout", "sgd_momentum")
    model.eval()
    if mode == "mixed":
        model.net[3].train()  # dropout on, batch norm frozen
    seen_training = []

    def loss_fn(out, y):
        seen_training.append(model.net[1].training)
        return nn.functional.cross_entropy(out, y)

    record = state_of(model, optimizer)
    lrpilot.find_lr(model, optimizer, batches, loss_fn, num_steps=NUM_STEPS, progress=False)

    assert all(seen_training), "the sweep trains in train mode"
    record.assert_unchanged()
    assert not model.net[1].training and model.net[3].training == (mode == "mixed")


def test_rng_consumed_in_the_sweep_is_given_back(state_of):
    """The loss draws from all three generators and the loader shuffles; none of it shows."""
    model, optimizer, _ = _setup("batchnorm_dropout", "adam")
    x, y = make_classification(n=48)
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=12, shuffle=True
    )

    def loss_fn(out, target):
        noise = random.random() + np.random.rand() + torch.rand(()).item()
        return nn.functional.cross_entropy(out, target) + 0.0 * noise

    record = state_of(model, optimizer)
    rng = _rng_states()
    first = lrpilot.find_lr(model, optimizer, loader, loss_fn, num_steps=NUM_STEPS, progress=False)
    _assert_rng_as(rng)
    record.assert_unchanged()

    random.setstate(rng[0]), np.random.set_state(rng[1]), torch.set_rng_state(rng[2])
    second = lrpilot.find_lr(
        model, optimizer, loader, loss_fn, num_steps=NUM_STEPS, progress=False
    )
    assert second.losses == first.losses and second.lrs == first.lrs  # same shuffle, same dropout


@pytest.mark.parametrize("error", [RuntimeError("boom"), KeyboardInterrupt()])
@pytest.mark.parametrize(
    "model_name,opt_name",
    [
        ("batchnorm_dropout", "sgd_momentum"),
        ("embedding_lstm", "adamw_groups"),
    ],
)
def test_restored_when_the_sweep_raises(model_name, opt_name, error, state_of):
    model, optimizer, batches = _setup(model_name, opt_name)
    record = state_of(model, optimizer)
    rng = _rng_states()
    calls, mutated = [], []

    def loss_fn(out, y):
        calls.append(1)
        if len(calls) == 5:
            mutated.append(_mutated(record))
            raise error
        return nn.functional.cross_entropy(out, y)

    with pytest.raises(type(error)):
        lrpilot.find_lr(model, optimizer, batches, loss_fn, num_steps=NUM_STEPS, progress=False)

    assert mutated == [True], "four steps ran before the error, so there was state to restore"
    record.assert_unchanged()
    _assert_rng_as(rng)


def test_snapshot_on_cpu(state_of):
    model, optimizer, batches = _setup("embedding_gru", "adamw_groups")
    record = state_of(model, optimizer)
    kwargs = dict(num_steps=NUM_STEPS, end_lr=1.0, progress=False)

    on_cpu = lrpilot.find_lr(
        model, optimizer, batches, nn.functional.cross_entropy, snapshot_device="cpu", **kwargs
    )
    record.assert_unchanged()
    in_place = lrpilot.find_lr(model, optimizer, batches, nn.functional.cross_entropy, **kwargs)
    record.assert_unchanged()
    assert on_cpu.losses == in_place.losses and on_cpu.lr == in_place.lr


def test_restore_keeps_optimizer_usable():
    """After the call, training continues exactly as it would have without it."""

    def train(model, optimizer, batches):
        for x, y in batches:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
        return [p.detach().clone() for p in model.parameters()]

    model_a, opt_a, batches = _setup("batchnorm_dropout", "adamw_groups")
    model_b, opt_b, _ = _setup("batchnorm_dropout", "adamw_groups")
    lrpilot.find_lr(
        model_a, opt_a, batches, nn.functional.cross_entropy, num_steps=NUM_STEPS, progress=False
    )
    torch.manual_seed(1)
    after_a = train(model_a, opt_a, batches)
    torch.manual_seed(1)
    after_b = train(model_b, opt_b, batches)
    assert all(torch.equal(a, b) for a, b in zip(after_a, after_b, strict=True))


def test_loader_private_generator_is_given_back(data):
    """A DataLoader shuffling with its own generator yields the same order after find_lr."""
    x, y = data
    g = torch.Generator().manual_seed(123)
    dl = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=True, generator=g
    )
    before = g.get_state()
    model = mlp()
    lrpilot.find_lr(
        model,
        torch.optim.SGD(model.parameters(), 0.1),
        dl,
        nn.functional.cross_entropy,
        num_steps=20,
        progress=False,
    )
    assert torch.equal(g.get_state(), before)


def test_numpy_integers_are_accepted_as_step_counts(loader):
    model = mlp()
    res = lrpilot.find_lr(
        model,
        torch.optim.SGD(model.parameters(), 0.1),
        loader,
        nn.functional.cross_entropy,
        num_steps=np.int64(20),
        steps=np.int32(500),
        progress=False,
    )
    assert res.num_steps_run <= 20 and res.steps == 500
