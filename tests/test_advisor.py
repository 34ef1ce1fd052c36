"""``lrpilot.advise``: the rules applied to what is known, fine-tuning param groups, and the
history's recommendation when one exists."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import lrpilot
from lrpilot import history, rules
from lrpilot.advisor import finetune_groups


@pytest.fixture(autouse=True)
def _own_home(tmp_path, monkeypatch):
    """Every test reads and writes a history of its own, never the user's."""
    monkeypatch.setenv("LRPILOT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LRPILOT_HISTORY_URL", raising=False)
    monkeypatch.delenv("LRPILOT_HISTORY", raising=False)


def _data(n: int = 96) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 8, generator=g)
    return x, (x @ torch.randn(8, 3, generator=g)).argmax(1)


def _task(optimizer=torch.optim.SGD, batch_size=16, steps=60, **options) -> lrpilot.Task:
    x, y = _data()
    return lrpilot.Task(
        model_fn=lambda: nn.Sequential(nn.Linear(8, 16), nn.Tanh(), nn.Linear(16, 3)),
        optimizer_fn=lambda p, lr: optimizer(p, lr=lr),
        train_loader=DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True),
        val_loader=DataLoader(TensorDataset(x, y), batch_size=48),
        loss_fn=nn.functional.cross_entropy,
        steps=steps,
        **options,
    )


def _check_schedule(advice: lrpilot.Advice) -> None:
    sched = lrpilot.parse_schedule(advice.schedule, total_steps=advice.steps or 1000)
    if advice.warmup_steps:
        assert sched(0) == 0.0 and sched(advice.warmup_steps) == pytest.approx(1.0)


def test_a_tiny_sgd_task_gets_the_family_default_and_a_decaying_schedule():
    advice = lrpilot.advise(_task())
    assert advice.lr == 0.01 and advice.family == "sgd"
    assert advice.range == pytest.approx((1e-3, 0.1))
    assert advice.schedule == "cosine" and advice.warmup_steps == 0
    assert advice.clip is False and advice.param_groups == [] and advice.findings == []
    assert advice.effective_batch == 16 and advice.steps == 60
    _check_schedule(advice)
    data = json.loads(json.dumps(advice.to_dict()))
    assert {"lr", "range", "schedule", "reasons", "findings", "warmup_steps", "clip"} <= set(data)
    assert all(r["source"] for r in data["reasons"])


def test_adam_at_a_large_batch_scales_by_square_root_and_warms_up():
    x, y = _data(2048)
    task = lrpilot.Task(
        model_fn=lambda: nn.Linear(8, 3),
        optimizer_fn=lambda p, lr: torch.optim.AdamW(p, lr=lr, betas=(0.9, 0.99)),
        train_loader=DataLoader(TensorDataset(x, y), batch_size=1024),
        loss_fn=nn.functional.cross_entropy,
        steps=5000,
    )
    advice = lrpilot.advise(task)
    assert advice.lr == pytest.approx(1e-3 * math.sqrt(1024 / 256))
    assert advice.warmup_steps == 200  # 2 / (1 - 0.99), under 10 % of 5000
    assert advice.schedule == "warmup(200)+cosine"
    _check_schedule(advice)
    assert {r.rule for r in advice.reasons} >= {"prior_lr", "scale_lr_sqrt", "adam_warmup"}
    assert "no-validation-data" in {f.code for f in advice.findings}


def test_more_devices_and_accumulation_change_the_effective_batch():
    advice = lrpilot.advise(
        optimizer="sgd",
        batch_size=128,
        devices=4,
        accumulation_steps=2,
        dataset_size=50_000,
        steps=20_000,
    )
    assert advice.effective_batch == 1024
    assert advice.lr == pytest.approx(rules.scale_lr(0.01, 256, 1024, "sgd"))
    per_epoch = math.ceil(50_000 / 1024)
    assert advice.warmup_steps == min(5 * per_epoch, 2000)  # Goyal's 5 epochs, <= 10 %
    _check_schedule(advice)


def test_a_known_lr_at_another_batch_is_rescaled():
    advice = lrpilot.advise(optimizer="sgd", base_lr=0.1, base_batch=256, batch_size=1024)
    assert advice.lr == 0.4
    adam = lrpilot.advise(
        optimizer=torch.optim.Adam, base_lr=1e-3, base_batch=256, batch_size=1024
    )
    assert adam.lr == pytest.approx(2e-3)
    assert adam.schedule == "warmup(2000)+constant"  # no steps: no decay, uncapped warmup
    assert "steps" in adam.assumed and "uncapped" in adam.assumed["warmup"]


def test_a_large_batch_of_a_run_of_unknown_length_warms_up_a_share_of_it():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    advice = lrpilot.advise(model, optimizer="sgd", batch_size=1024)
    assert advice.schedule == "warmup(0.05)+constant" and advice.warmup_steps is None
    assert advice.to_dict()["warmup_steps"] is None
    assert not [f for f in advice.findings if f.code == "large-batch-without-warmup"]
    optimizer = torch.optim.SGD(model.parameters(), lr=advice.lr)
    scheduler = lrpilot.attach(optimizer, advice.schedule, total_steps=400)
    lrs = []
    for _ in range(30):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] < 0.2 * advice.lr and lrs[20] == pytest.approx(advice.lr)  # 20 steps: 5 %


def test_a_gru_is_clipped_and_the_recipes_clip_is_kept():
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.rnn = nn.GRU(4, 4)

        def forward(self, x):
            return self.rnn(x)[0]

    assert lrpilot.advise(Net(), optimizer="adam").clip == rules.RNN_CLIP
    assert lrpilot.advise(_task(grad_clip=0.25)).clip == 0.25


def test_lora_takes_ten_times_the_fine_tuning_lr():
    base = lrpilot.advise(optimizer="adam", finetune=True, steps=1000)
    lora = lrpilot.advise(optimizer="adam", finetune=True, steps=1000, lora=True)
    assert lora.lr == pytest.approx(10 * base.lr) and base.lr == 1e-4
    assert any(r.rule == "lora_lr" for r in lora.reasons)


def test_unknown_facts_and_bad_values_are_config_errors():
    with pytest.raises(lrpilot.ConfigError, match="unknown fact"):
        lrpilot.advise(batchsize=32)
    with pytest.raises(lrpilot.ConfigError, match="batch_size"):
        lrpilot.advise(batch_size=0)
    with pytest.raises(lrpilot.ConfigError, match="optimizer"):
        lrpilot.advise(optimizer="adamm")
    with pytest.raises(lrpilot.ConfigError):
        lrpilot.advise("model.pt")


def test_an_lr_given_is_linted():
    model = nn.Linear(4, 2)
    advice = lrpilot.advise((model, torch.optim.Adam(model.parameters(), lr=0.5)))
    assert "lr-outside-family-range" in {f.code for f in advice.findings}


# --------------------------------------------------------------------------------------------
# Fine-tuning
# --------------------------------------------------------------------------------------------


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attn = nn.Linear(8, 8)
        self.norm = nn.LayerNorm(8)

    def forward(self, x):
        return self.norm(x + self.attn(x))


class _Pretrained(nn.Module):
    """A pretrained body (embedding, a stack of four blocks, a final norm) and a new head."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(20, 8)
        self.blocks = nn.ModuleList(_Block() for _ in range(4))
        self.final = nn.LayerNorm(8)
        self.classifier = nn.Linear(8, 3)

    def forward(self, x):
        h = self.embed(x)
        for block in self.blocks:
            h = block(h)
        return self.classifier(self.final(h).mean(1))


def _assert_partition(model: nn.Module, groups) -> None:
    """Every trainable parameter in exactly one group; no frozen one in any."""
    names = [n for g in groups for n in g.params]
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert sorted(names) == sorted(trainable)
    assert len(names) == len(set(names))


def test_fine_tuning_groups_decay_by_depth_below_a_larger_head():
    model = _Pretrained()
    model.embed.requires_grad_(False)  # frozen: in no group
    model.blocks[0].requires_grad_(False)
    advice = lrpilot.advise(model, optimizer="adam", steps=1000)
    assert advice.finetune and "finetune" in advice.assumed  # frozen params say so
    assert advice.lr == 1e-4  # ELECTRA's base fine-tuning LR, the head's
    _assert_partition(model, advice.param_groups)
    by_name = {g.name: g for g in advice.param_groups}
    assert list(by_name) == ["blocks.1", "blocks.2", "blocks.3", "final", "head"]
    d = 0.8  # ELECTRA-base's decay for a stack of at most 12
    assert by_name["head"].params == ("classifier.weight", "classifier.bias")
    for name, power in [("final", 1), ("blocks.3", 2), ("blocks.2", 3), ("blocks.1", 4)]:
        assert by_name[name].lr == pytest.approx(1e-4 * d**power)
    assert all(g.lr < by_name["head"].lr for g in advice.param_groups if g.name != "head")


def test_the_groups_build_a_working_optimizer_at_any_peak_lr():
    model = _Pretrained()
    advice = lrpilot.advise(
        model, optimizer="adam", finetune=True, head="classifier", layer_decay=0.5
    )
    groups = advice.torch_param_groups(model, lr=1e-3)
    optimizer = torch.optim.AdamW(groups)
    lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
    assert lrs["head"] == pytest.approx(1e-3)
    assert lrs["final"] == pytest.approx(5e-4) and lrs["blocks.3"] == pytest.approx(2.5e-4)
    assert lrs["embed"] == pytest.approx(1e-3 * 0.5**6)  # below blocks.0: the bottom
    held = [id(p) for g in optimizer.param_groups for p in g["params"]]
    assert sorted(held) == sorted(id(p) for p in model.parameters())
    x = torch.randint(0, 20, (4, 5))
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 2, 0]))
    loss.backward()
    optimizer.step()  # the groups are valid torch param groups


def test_a_sequential_body_takes_its_children_as_levels():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 2))
    groups, head, decay = finetune_groups(model, 1e-3, decay=0.5)
    assert head == ["4"] and decay == 0.5
    assert [(g.name, g.lr) for g in groups] == [("0", 2.5e-4), ("2", 5e-4), ("head", 1e-3)]
    _assert_partition(model, groups)


def test_a_linear_probe_trains_its_head_at_the_full_lr():
    class Probe(nn.Module):  # a frozen backbone, one new head: the commonest fine-tuning
        def __init__(self) -> None:
            super().__init__()
            self.backbone = nn.Sequential(nn.Linear(6, 8), nn.ReLU())
            self.head = nn.Linear(8, 3)

    probe = Probe()
    probe.backbone.requires_grad_(False)
    advice = lrpilot.advise(probe, optimizer="adam", batch_size=64, steps=1000)
    assert [(g.name, g.lr) for g in advice.param_groups] == [("head", advice.lr)]
    assert [(g["name"], g["lr"]) for g in advice.torch_param_groups(probe, 1e-3)] == [
        ("head", 1e-3)
    ]
    # a Sequential whose first layer is frozen: its last layer is the head, at the full LR
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    model[0].requires_grad_(False)
    groups, head, _ = finetune_groups(model, 1e-3)
    assert head == ["2"] and [(g.name, g.lr) for g in groups] == [("head", 1e-3)]


class _LoRALinear(nn.Module):
    """A frozen pretrained linear layer with a trainable low-rank update (PEFT's names)."""

    def __init__(self, d: int, rank: int = 2) -> None:
        super().__init__()
        self.base = nn.Linear(d, d).requires_grad_(False)
        self.lora_A = nn.Linear(d, rank, bias=False)
        self.lora_B = nn.Linear(rank, d, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) + self.lora_B(self.lora_A(x))


def test_lora_adapters_train_at_one_lr_with_no_layer_decay_a_and_b_apart():
    model = nn.Sequential(_LoRALinear(8), nn.ReLU(), _LoRALinear(8), nn.Linear(8, 3))
    advice = lrpilot.advise(model, optimizer="adamw", lora=True, steps=1000)
    by_name = {g.name: g for g in advice.param_groups}
    assert list(by_name) == ["lora_A", "lora_B", "other"]
    assert {g.lr for g in advice.param_groups} == {advice.lr}  # no depth decay
    assert by_name["lora_A"].params == ("0.lora_A.weight", "2.lora_A.weight")
    assert by_name["other"].params == ("3.weight", "3.bias")  # the new head
    _assert_partition(model, advice.param_groups)
    assert any("multiply lora_B's LR by 16" in r.text for r in advice.reasons)


def test_lora_is_fine_tuning_and_needs_adapters_for_its_rules():
    with_adapters = nn.Sequential(_LoRALinear(8), nn.Linear(8, 3))
    lora = lrpilot.advise(with_adapters, optimizer="adamw", lora=True, finetune=False, steps=1000)
    assert lora.lr == pytest.approx(1e-3) and lora.finetune  # 10x fine-tuning's 1e-4
    assert "LoRA adapts a pretrained model" in lora.assumed["finetune"]
    plain = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3))
    full = lrpilot.advise(plain, optimizer="adamw", lora=True, steps=1000)
    assert full.lr == pytest.approx(1e-4)  # no adapters: full fine-tuning's advice, said so
    assert any("no trainable parameter is named lora_A" in r.text for r in full.reasons)
    assert [g.name for g in full.param_groups][-1] == "head"  # the layer-wise groups
    with pytest.raises(lrpilot.ConfigError, match="head"):
        lrpilot.advise(with_adapters, lora=True, head="nope")


def test_peft_embedding_adapters_join_the_a_and_b_groups():
    class Embedded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb = nn.Embedding(10, 4).requires_grad_(False)
            self.lora_embedding_A = nn.Parameter(torch.zeros(2, 10))
            self.lora_embedding_B = nn.Parameter(torch.zeros(4, 2))

    advice = lrpilot.advise(Embedded(), optimizer="adamw", lora=True, steps=1000)
    groups = {g.name: g.params for g in advice.param_groups}
    assert groups == {"lora_A": ("lora_embedding_A",), "lora_B": ("lora_embedding_B",)}


def test_a_large_batch_warmup_is_seen_by_the_lint_whatever_its_length():
    model = nn.Linear(2, 2)
    for known in (
        dict(optimizer="adam", batch_size=1024),  # Adam's 2,000 steps, no run length
        dict(optimizer="sgd", batch_size=1024, dataset_size=10_000_000),  # Goyal's, uncapped
        dict(optimizer="sgd", batch_size=2048, steps=10),  # 5 % of 10 steps: 1, not 0
    ):
        advice = lrpilot.advise(model, history=False, **known)
        assert advice.schedule.startswith("warmup(") and advice.warmup_steps, known
        assert not [f for f in advice.findings if f.code == "large-batch-without-warmup"]


class _TiedLM(nn.Module):
    """A language model whose output layer shares its weight with the embedding."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.blocks = nn.ModuleList(nn.Linear(8, 8) for _ in range(3))
        self.out = nn.Linear(8, 20, bias=False)
        self.out.weight = self.emb.weight


def test_a_tied_output_layer_is_not_a_new_head_unless_named_one():
    model = _TiedLM()
    advice = lrpilot.advise(model, optimizer="adamw", finetune=True, steps=1000)
    assert advice.assumed["head"].startswith("none: out shares a weight with emb (tied)")
    assert not [g for g in advice.param_groups if g.name == "head"]
    assert max(g.lr for g in advice.param_groups) == advice.lr  # the top depth, not 0.8x it
    _assert_partition(model, advice.param_groups)
    # a tied decoder with a bias of its own (BERT's masked-LM head) is no new head either
    biased = _TiedLM()
    biased.out = nn.Linear(8, 20)
    biased.out.weight = biased.emb.weight
    advised = lrpilot.advise(biased, optimizer="adamw", finetune=True, steps=1000)
    assert "(tied)" in advised.assumed["head"]
    assert "the shared weight trains in emb's group" in advised.assumed["head"]
    assert not [g for g in advised.param_groups if g.name == "head"]
    _assert_partition(biased, advised.param_groups)
    biased.emb.requires_grad_(False)  # the shared weight frozen: said so, in no group
    frozen = lrpilot.advise(biased, optimizer="adamw", finetune=True, steps=1000)
    assert "the shared weight is frozen, in no group" in frozen.assumed["head"]
    _assert_partition(biased, frozen.param_groups)
    # named as the head, the shared weight trains at the head's LR (it is listed as emb's)
    groups, head, _ = finetune_groups(model, 1e-3, head="out")
    assert head == ["out"] and groups[-1].name == "head"
    assert groups[-1].params == ("emb.weight",) and groups[-1].lr == 1e-3
    _assert_partition(model, groups)


def test_a_bad_head_name_is_refused():
    with pytest.raises(lrpilot.ConfigError, match="head"):
        finetune_groups(_Pretrained(), 1e-3, head="nothead")


def test_a_real_bert_with_a_new_classifier():
    transformers = pytest.importorskip("transformers")
    config = transformers.BertConfig(
        vocab_size=50,
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=16,
        num_labels=3,
    )
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    model.bert.embeddings.requires_grad_(False)
    advice = lrpilot.advise(model, optimizer=torch.optim.AdamW, steps=300)
    _assert_partition(model, advice.param_groups)
    names = [g.name for g in advice.param_groups]
    assert names == [
        "bert.encoder.layer.0",
        "bert.encoder.layer.1",
        "bert.encoder.layer.2",
        "bert.pooler.dense",
        "head",
    ]
    lrs = [g.lr for g in advice.param_groups]
    assert lrs == sorted(lrs) and lrs[-1] == 1e-4
    assert advice.clip == rules.RNN_CLIP or advice.clip is False  # attention is BERT's own


# --------------------------------------------------------------------------------------------
# History
# --------------------------------------------------------------------------------------------


def test_without_history_the_rules_apply_and_with_it_its_best_lr():
    task = _task(optimizer=torch.optim.Adam, steps=30)
    before = lrpilot.advise(task)
    assert before.history is None and before.lr == 1e-3
    metrics = {}
    for lr in (3e-4, 3e-3, 3e-2):
        run = lrpilot.train(task, lr, progress=False)
        metrics[lr] = run.metric
        history.record_run(run, task)
    after = lrpilot.advise(task)
    best = max(metrics, key=metrics.__getitem__)
    assert after.lr == best and after.history["basis"] == "same task"
    assert any(r.rule == "history" and "replaces" in r.text for r in after.reasons)
    assert lrpilot.advise(task, history=False).lr == 1e-3  # switched off for this call


def test_history_of_another_family_is_reported_but_not_used():
    adam = _task(optimizer=torch.optim.Adam, steps=30)
    history.record_run(lrpilot.train(adam, 3e-3, progress=False), adam)
    advice = lrpilot.advise(_task())  # SGD
    assert advice.lr == 0.01
    (note,) = [r for r in advice.reasons if r.rule == "history"]
    assert "none of the sgd family" in note.text and "rules apply" in note.text


def test_the_findings_never_contradict_the_advice_and_lint_the_lr_given():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    advice = lrpilot.advise(model, optimizer="sgd", batch_size=1024, steps=1000)
    assert "warmup" in advice.schedule and "cosine" in advice.schedule
    said = " ".join(f.message for f in advice.findings)
    assert "does not warm up" not in said and "never decays" not in said
    for optimizer in ("adam", torch.optim.Adam):  # a name or a class: the family is known
        hot = lrpilot.advise(nn.Linear(2, 2), optimizer=optimizer, lr=5.0)
        assert any("above the usual range" in f.message for f in hot.findings), optimizer


def test_a_stack_of_named_blocks_decays_by_position():
    from collections import OrderedDict

    blocks = OrderedDict((name, nn.Linear(8, 8)) for name in ("first", "second", "third"))
    model = nn.Sequential(
        OrderedDict(embed=nn.Linear(4, 8), blocks=nn.Sequential(blocks), head=nn.Linear(8, 2))
    )
    groups, head, _ = finetune_groups(model, 1e-3, decay=0.5)
    assert head == ["head"]
    _assert_partition(model, groups)
    lrs = {g.name: g.lr for g in groups}
    assert lrs["blocks.first"] < lrs["blocks.second"] < lrs["blocks.third"] < lrs["head"]
    assert lrs["blocks.third"] == pytest.approx(0.5e-3) and lrs["head"] == 1e-3


def test_a_history_given_to_advise_is_checked_like_the_clis_url(tmp_path):
    model = nn.Linear(4, 2)
    with pytest.raises(lrpilot.ConfigError, match="no history store"):
        lrpilot.advise(model, optimizer="adam", history=str(tmp_path / "missing.sqlite"))
    with pytest.raises(lrpilot.ConfigError, match="not a database"):
        lrpilot.advise(model, optimizer="adam", history="nosuchdb://x/y")
    with pytest.raises(lrpilot.ConfigError, match="history"):
        lrpilot.advise(model, optimizer="adam", history=123)
    store = tmp_path / "h.sqlite"
    lrpilot.history.History(f"sqlite:///{store}").add("run", lr=0.01, fingerprint={}, metric=1.0)
    advice = lrpilot.advise(model, optimizer="adam", history=str(store))  # a plain path works
    assert advice.history is not None


def test_an_infinite_lr_or_ratio_is_refused():
    from lrpilot.rules import loraplus_lrs

    model = nn.Linear(4, 2)
    with pytest.raises(lrpilot.ConfigError, match="lr"):
        lrpilot.advise(model, optimizer="adam", lr=math.inf)
    pretrained = _Pretrained()
    advice = lrpilot.advise(pretrained, optimizer="adam", finetune=True)
    with pytest.raises(lrpilot.ConfigError, match="lr"):
        advice.torch_param_groups(pretrained, math.inf)
    with pytest.raises(lrpilot.ConfigError, match="ratio"):
        loraplus_lrs(1e-4, ratio=math.inf)


def test_a_family_without_a_default_is_not_given_one_by_name():
    model = nn.Linear(4, 2)
    rms = lrpilot.advise(model, optimizer=torch.optim.RMSprop(model.parameters()))
    (said,) = [r.text for r in rms.reasons if "rmsprop" in r.text]
    assert "usual range 0.001-0.05" in said and "plain default" not in said
    assert rms.lr == pytest.approx(math.sqrt(1e-3 * 5e-2))
    sgd = lrpilot.advise(model, optimizer="sgd")
    assert any("plain default of the sgd family" in r.text for r in sgd.reasons)


def test_attention_layers_outside_torch_get_the_clipping_advice():
    class GPT2LikeAttention(nn.Module):  # Hugging Face's subclass nothing of torch's
        def __init__(self) -> None:
            super().__init__()
            self.qkv = nn.Linear(8, 24)

    model = nn.Sequential(nn.Linear(4, 8), GPT2LikeAttention(), nn.Linear(8, 2))
    advice = lrpilot.advise(model, optimizer="adam", steps=1000)
    assert advice.clip and any("GPT2LikeAttention" in r.text for r in advice.reasons)
    assert not lrpilot.advise(nn.Linear(4, 2), optimizer="adam", steps=1000).clip
