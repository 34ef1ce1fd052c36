"""The history: every range test, search trial and run, kept in a local store, and a
recommender that learns from it.

The store is an SQLite file under ``$LRPILOT_HOME`` (default ``~/.lrpilot``) reached through
SQLAlchemy Core; the same code runs on a PostgreSQL URL for a team (``LRPILOT_HISTORY_URL`` or
the ``url`` argument). The folder is created readable by the user only (0o700), the file too
(0o600). Every record is one transaction, so a write interrupted at any point (Ctrl-C,
SIGKILL) leaves the store readable with every earlier record intact; SQLite runs in WAL mode
with a busy timeout, so several processes can record at once. ``LRPILOT_HISTORY=0`` (or
``enabled=False``) switches recording off.

Each record holds the task's fingerprint (:meth:`lrpilot.Task.fingerprint`), the chosen or
trained LR, the outcome (metric, diverged) and features: for a range test, those of its curve
(the LR at the loss minimum, the steepest slope, the divergence edge, the band, ...).

The recommender (:func:`recommend`) predicts a good LR for a task from the user's past ones:
the best LR of the same recipe (same fingerprint) when it was trained before, else a weighted
geometric mean over the nearest past tasks of the same optimizer family (k-nearest neighbours
in log space of parameter count, batch size and steps, with penalties for a different model
or optimizer class; dataset-size and clipping axes exist, weighted 0 by default), or with the
new task's range test, of their best LR relative to their range test's pick, times the new
one's. With nothing similar it says so and returns no LR, and the advisor keeps to its rules.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import math
import os
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import _validate as check
from .errors import ConfigError, LRPilotError, MissingDependencyError

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from ._result import LRFinderResult
    from .task import Task
    from .train import RunResult

__all__ = [
    "History",
    "Record",
    "Recommendation",
    "HistoryWarning",
    "KINDS",
    "home",
    "default_url",
    "enabled",
    "exists",
    "mask_url",
    "fingerprint_of",
    "range_test_features",
    "record_range_test",
    "record_run",
    "record_trial",
    "capturing_runs",
    "TrialCapture",
    "TRIAL_STATES",
    "recommend",
]

KINDS = ("range_test", "run", "trial")
"""What a record can be."""

TRIAL_STATES = ("complete", "pruned", "diverged", "failed")
"""What a search trial's record says it was (``details["state"]``): only a complete trial
has a metric the recommender learns from."""

BUSY_TIMEOUT_S = 30.0
"""How long an SQLite writer waits for another process's transaction before failing."""

NEIGHBOURS = 5
"""Past tasks the recommender averages over (at most). Chosen, with :data:`OPTIMIZER_PENALTY`
and :data:`ANCHOR`, by leave-one-family-out over the benchmark's 10 task families
(``python -m benchmarks.recommender``)."""

_OFF = {"0", "false", "no", "off"}


class HistoryWarning(UserWarning):
    """The history could not record something (the run itself is unaffected)."""


def home() -> Path:
    """lrpilot's folder: ``$LRPILOT_HOME``, default ``~/.lrpilot``."""
    return Path(os.environ.get("LRPILOT_HOME") or Path.home() / ".lrpilot").expanduser()


def default_url() -> str:
    """``$LRPILOT_HISTORY_URL``, or the SQLite file ``history.sqlite`` under :func:`home`."""
    return os.environ.get("LRPILOT_HISTORY_URL") or f"sqlite:///{home() / 'history.sqlite'}"


def enabled() -> bool:
    """Whether recording is on: ``LRPILOT_HISTORY`` is not ``0`` (or false/no/off)."""
    return os.environ.get("LRPILOT_HISTORY", "1").strip().lower() not in _OFF


def mask_url(url: str) -> str:
    """``url`` with its password hidden, as it may be shown in messages, tables and JSON."""
    sqlalchemy = _sqlalchemy()
    try:
        return str(sqlalchemy.engine.make_url(url).render_as_string(hide_password=True))
    except Exception:  # not a URL SQLAlchemy can parse: show nothing of it
        return "<unparseable URL>"


def exists(url: str | None = None) -> bool:
    """Whether the store at ``url`` (default :func:`default_url`) may hold records: an SQLite
    file that exists, or any server URL."""
    path = _sqlite_path(url or default_url())
    return path is None or path.is_file()


def _sqlalchemy() -> Any:
    from ._imports import require

    return require("sqlalchemy", "the history store")


URL_FORMS = (
    "give a SQLAlchemy URL such as sqlite:////abs/path/history.sqlite or "
    "postgresql://user@host/db, or the path of an SQLite file"
)


def checked_url(url: str, name: str = "history") -> str:
    """A store given on purpose (``name``: how the user gave it, for the message) as a
    SQLAlchemy URL, or a :class:`~lrpilot.ConfigError` naming it and the forms it takes.

    A plain path (no ``://``) is taken for an SQLite file. An SQLite store that does not exist
    is an error here, where the default store that has no records yet is not: a typo in a
    path given on purpose must not read as an empty history."""
    if not url.strip():
        raise ConfigError(f"{name} is empty: {URL_FORMS}.")
    if "://" not in url:
        path = Path(url).expanduser()
        if path.is_dir():
            raise ConfigError(f"{name} {url!r} is a folder: {URL_FORMS}.")
        url = "sqlite:///" + str(path.resolve())
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    try:
        make_url(url).get_dialect()
    except NoSuchModuleError:  # a subclass of ArgumentError: caught first
        scheme = url.split("://", 1)[0]
        raise ConfigError(
            f"{name}: {scheme!r} is not a database SQLAlchemy knows: {URL_FORMS}."
        ) from None
    except (ArgumentError, ValueError):
        raise ConfigError(f"{name} {url!r} is not a database URL: {URL_FORMS}.") from None
    except ImportError:
        pass  # a known database whose driver is missing: History says which to install
    _sqlite_store_exists(url, name)
    return url


def _sqlite_store_exists(url: str, name: str) -> None:
    """Raise if ``url`` names an SQLite file that is not there, saying which part is missing."""
    path = _sqlite_path(url)
    if path is None or path.is_file():
        return
    shown = mask_url(url)
    if not path.parent.is_dir():
        raise ConfigError(
            f"no history store at {shown} (the folder {str(path.parent)!r} does not exist)."
        )
    if path.exists():
        raise ConfigError(f"no history store at {shown} ({str(path)!r} is not a file).")
    raise ConfigError(
        f"no history store at {shown} (no such file): check {name}, which takes a SQLAlchemy "
        "URL or the path of an SQLite file."
    )


def _sqlite_path(url: str) -> Path | None:
    """The file of an SQLite URL; ``None`` for a server or an in-memory database."""
    if not url.startswith("sqlite"):
        return None
    database = _sqlalchemy().engine.make_url(url).database
    if not database or database == ":memory:":
        return None
    return Path(database).expanduser()


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    """One stored range test, run or trial, as plain data."""

    id: int
    kind: str
    created: float
    task_id: str | None
    task_name: str | None
    family: str | None
    model: str | None
    parameters: int | None
    batch_size: int | None
    steps: int | None
    lr: float | None
    metric: float | None
    diverged: bool | None
    features: dict[str, Any] = field(default_factory=dict)
    fingerprint: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class Recommendation:
    """The recommender's answer.

    Attributes:
        lr: the predicted LR, or ``None`` when the history holds nothing similar.
        low, high: where the best LR is expected to lie.
        confidence: in [0, 1]; 0.9 for the same recipe trained before, ``exp(-d)`` times
            ``n / (n + 1)`` times ``exp(-spread)`` for ``n`` neighbours at mean log-distance
            ``d`` whose LRs spread by ``spread`` decades; 0 with no answer. A heuristic, not a
            probability.
        basis: ``"same task"``, ``"neighbours"``, ``"neighbours + range test"`` or ``"none"``.
        neighbours: the past tasks used, each ``{task_id, name, lr, distance, weight}``.
        reason: the answer in one sentence.
        source: where it comes from (the store, its password masked).
    """

    lr: float | None
    low: float | None
    high: float | None
    confidence: float
    basis: str
    neighbours: list[dict[str, Any]]
    reason: str
    source: str

    def to_dict(self) -> dict[str, Any]:
        """Every field as JSON-ready data."""
        return asdict(self)


class History:
    """A history store at ``url`` (default :func:`default_url`).

    The SQLite file, its folder and the tables are created on the first write (or read);
    ``History(url).records()`` on a store that does not exist yet is empty.
    """

    def __init__(self, url: str | None = None) -> None:
        given = url if url is not None else default_url()
        if not isinstance(given, str) or not given.strip():
            raise check.ArgError("url", url, "a database URL such as sqlite:///path/h.sqlite")
        self.url = given
        self._engine: Engine | None = None
        self._pid = os.getpid()

    @property
    def shown_url(self) -> str:
        """The URL with its password masked."""
        return mask_url(self.url)

    def __repr__(self) -> str:
        return f"History({self.shown_url!r})"

    # -- connection --------------------------------------------------------------------------

    def engine(self) -> Engine:
        """The SQLAlchemy engine, created (with the file, folder and tables) on first use."""
        if self._engine is not None and self._pid == os.getpid():
            return self._engine
        sqlalchemy = _sqlalchemy()
        path = _sqlite_path(self.url)
        if path is not None:
            _private_file(path)
            engine = sqlalchemy.create_engine(self.url, connect_args={"timeout": BUSY_TIMEOUT_S})
            sqlalchemy.event.listen(engine, "connect", _sqlite_pragmas)
        else:
            try:
                engine = sqlalchemy.create_engine(_with_driver(self.url), pool_pre_ping=True)
            except ImportError as exc:
                raise MissingDependencyError(
                    f"The history store {self.shown_url} needs a database driver that is not "
                    f"installed ({exc}): for PostgreSQL, pip install 'lrpilot[search]' "
                    "(psycopg2-binary)."
                ) from None
        try:
            _create_tables(engine)
        except sqlalchemy.exc.SQLAlchemyError as exc:
            engine.dispose()
            raise ConfigError(
                f"Cannot open the history store {self.shown_url}: {_short(exc)}. Check the URL "
                "(LRPILOT_HISTORY_URL), or switch recording off with LRPILOT_HISTORY=0."
            ) from None
        self._engine, self._pid = engine, os.getpid()
        return engine

    def close(self) -> None:
        """Release the store's connections."""
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    # -- writing -----------------------------------------------------------------------------

    def add(
        self,
        kind: str,
        *,
        lr: float | None,
        fingerprint: Mapping[str, Any] | None = None,
        features: Mapping[str, Any] | None = None,
        metric: float | None = None,
        diverged: bool | None = None,
        details: Mapping[str, Any] | None = None,
        name: str | None = None,
    ) -> int:
        """Store one record in one transaction; its id."""
        from ._history_schema import records

        kind = check.choice("kind", kind, KINDS)
        print_ = dict(fingerprint or {})
        feats = dict(features or {})
        row = {
            "kind": kind,
            "created": time.time(),
            "task_id": print_.get("id"),
            "task_name": name if name is not None else print_.get("name"),
            "family": _family_name(print_.get("family") or print_.get("optimizer")),
            "model": print_.get("model"),
            "parameters": _int_or_none(print_.get("parameters")),
            "batch_size": _int_or_none(
                print_.get("batch_size") or feats.get("effective_batch_size")
            ),
            "steps": _int_or_none(print_.get("steps") or feats.get("steps")),
            "lr": _finite(lr),
            "metric": _finite(metric),
            "diverged": None if diverged is None else bool(diverged),
            "features": _plain(feats),
            "fingerprint": _plain(print_),
            "details": _plain(dict(details or {})),
        }
        with self.engine().begin() as conn:
            result = conn.execute(records.insert().values(**row))
            key = result.inserted_primary_key
        return int(key[0]) if key else -1

    # -- reading -----------------------------------------------------------------------------

    def records(
        self, kind: str | None = None, task_id: str | None = None, limit: int | None = None
    ) -> list[Record]:
        """Stored records, oldest first, optionally of one kind or task (the last ``limit``)."""
        if _sqlite_path(self.url) is not None and not exists(self.url):
            return []
        from ._history_schema import records

        query = records.select().order_by(records.c.id.desc())
        if kind is not None:
            query = query.where(records.c.kind == check.choice("kind", kind, KINDS))
        if task_id is not None:
            query = query.where(records.c.task_id == task_id)
        if limit is not None:
            query = query.limit(check.whole("limit", limit, 1))
        with self.engine().connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_record(row) for row in reversed(rows)]

    def get(self, record_id: int) -> Record:
        """The record with id ``record_id``.

        Raises:
            ConfigError: no such record.
        """
        from ._history_schema import records

        key = check.whole("record_id", record_id, 1)
        found = None
        if _sqlite_path(self.url) is None or exists(self.url):
            with self.engine().connect() as conn:
                found = (
                    conn.execute(records.select().where(records.c.id == key)).mappings().first()
                )
        if found is None:
            raise ConfigError(
                f"No record {key} in the history {self.shown_url}: `lrpilot history list` "
                "shows the ids."
            )
        return _record(found)

    def to_csv(self) -> str:
        """Every record as CSV text (header first; JSON columns as JSON text)."""
        from ._history_schema import COLUMNS

        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(COLUMNS)
        for rec in self.records():
            data = rec.to_dict()
            writer.writerow(
                json.dumps(data[c], sort_keys=True)
                if isinstance(data[c], dict)
                else _cell(data[c])
                for c in COLUMNS
            )
        return out.getvalue()

    def to_json(self) -> list[dict[str, Any]]:
        """Every record as plain data."""
        return [rec.to_dict() for rec in self.records()]

    # -- the recommender ---------------------------------------------------------------------

    def recommend(
        self,
        query: Task | Mapping[str, Any],
        *,
        range_test: LRFinderResult | Mapping[str, Any] | None = None,
        k: int = NEIGHBOURS,
        anchor: str | None = None,
    ) -> Recommendation:
        """A predicted LR for ``query`` (a Task, or a fingerprint/feature dict) from this
        store's past tasks; see :func:`recommend`."""
        wanted = _query_features(query, range_test)
        return _recommend(
            _past_tasks(self.records()),
            wanted,
            check.whole("k", k, 1),
            self.shown_url,
            anchor=_anchor(anchor),
        )


# --------------------------------------------------------------------------------------------
# Store helpers
# --------------------------------------------------------------------------------------------


def _with_driver(url: str) -> str:
    """``url`` with PostgreSQL's driver named when it names none and psycopg 3 (SQLAlchemy's
    default) is missing but psycopg2 (what the ``search`` extra installs) is there."""
    import importlib.util

    sqlalchemy = _sqlalchemy()
    parsed = sqlalchemy.engine.make_url(url)
    if parsed.drivername != "postgresql" or importlib.util.find_spec("psycopg") is not None:
        return url
    if importlib.util.find_spec("psycopg2") is None:
        return url
    return str(parsed.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False))


def _private_file(path: Path) -> None:
    """Create ``path``'s folder (0o700) and the empty file (0o600) if they do not exist."""
    folder = path.parent
    if not folder.exists():
        try:
            folder.mkdir(mode=0o700, parents=True)
        except FileExistsError:
            pass
        else:
            os.chmod(folder, 0o700)
    if not path.exists():
        fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
        os.close(fd)
        os.chmod(path, 0o600)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL (readers never block the writer, a killed writer leaves the file consistent) and a
    busy timeout, on every new SQLite connection."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA journal_mode = WAL")
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()


def _create_tables(engine: Engine) -> None:
    """Create the tables (a no-op when they exist); a race with another process creating them
    at the same moment is retried."""
    from ._history_schema import SCHEMA_VERSION, meta, metadata

    sqlalchemy = _sqlalchemy()
    for attempt in range(5):
        try:
            metadata.create_all(engine, checkfirst=True)
            with engine.begin() as conn:
                if conn.execute(meta.select().where(meta.c.key == "schema")).first() is None:
                    conn.execute(meta.insert().values(key="schema", value=SCHEMA_VERSION))
            return
        except (
            sqlalchemy.exc.OperationalError,
            sqlalchemy.exc.IntegrityError,
            sqlalchemy.exc.ProgrammingError,
        ):
            if attempt == 4:
                raise
            time.sleep(0.05 * (attempt + 1))


def _short(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _record(row: Any) -> Record:
    data = dict(row)
    for key in ("features", "fingerprint", "details"):
        data[key] = data.get(key) or {}
    return Record(**data)


def _cell(value: Any) -> Any:
    return "" if value is None else value


def _finite(value: Any) -> float | None:
    if value is None or not check.is_real(value):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _int_or_none(value: Any) -> int | None:
    return int(value) if check.is_count(value) else None


def _plain(value: Any) -> Any:
    """JSON-ready data: non-finite floats become ``None``, tuples lists, the rest strings."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if check.is_real(value):
        return _finite(value)
    return str(value)


def _family_name(optimizer: Any) -> str | None:
    if not isinstance(optimizer, str) or not optimizer:
        return None
    from . import rules

    try:
        return rules.family_of(optimizer)
    except ConfigError:
        return optimizer.lower()


_STORES: dict[tuple[int, str], History] = {}


def _store(history: History | str | None) -> History:
    if isinstance(history, History):
        return history
    url = history if history is not None else default_url()
    key = (os.getpid(), url)
    if key not in _STORES:
        _STORES[key] = History(url)
    return _STORES[key]


@contextlib.contextmanager
def _recording(history: History | str | None) -> Iterator[History]:
    """The store to record to. Recording to the default store never fails the caller: an
    error becomes a :class:`HistoryWarning`. A store given explicitly raises."""
    store = _store(history)
    if history is not None:
        yield store
        return
    try:
        yield store
    except (LRPilotError, OSError) as exc:
        warnings.warn(
            f"lrpilot could not record to the history {store.shown_url}: {exc} "
            "(set LRPILOT_HISTORY=0 to switch recording off)",
            HistoryWarning,
            stacklevel=4,
        )
    except Exception as exc:  # SQLAlchemy's errors: the store is broken, the work is not
        if type(exc).__module__.startswith("sqlalchemy"):
            warnings.warn(
                f"lrpilot could not record to the history {store.shown_url}: {_short(exc)} "
                "(set LRPILOT_HISTORY=0 to switch recording off)",
                HistoryWarning,
                stacklevel=4,
            )
        else:
            raise


def _on(choice: bool | None) -> bool:
    return enabled() if choice is None else check.boolean("enabled", choice)


# --------------------------------------------------------------------------------------------
# What a record says
# --------------------------------------------------------------------------------------------


def fingerprint_of(
    model: Any, optimizer: Any, train_loader: Any = None, *, steps: int | None = None
) -> dict[str, Any]:
    """A fingerprint of live objects, with the fields of :meth:`lrpilot.Task.fingerprint`
    that they hold (model class and size, optimizer and hyperparameters, batch and dataset
    size, steps) and an ``"id"`` hashed from them."""
    from ._state import inner_optimizer
    from .task import recipe_of

    data = {**recipe_of(model, inner_optimizer(optimizer), train_loader), "steps": steps}
    text = json.dumps(data, sort_keys=True, default=str)
    data["id"] = hashlib.sha256(text.encode()).hexdigest()[:16]
    return data


def range_test_features(result: LRFinderResult | Mapping[str, Any]) -> dict[str, Any]:
    """The curve's features: the chosen LR and band, the LR at the smoothed loss minimum,
    the steepest slope, the onset, the divergence edge and the valley floor (where the curve
    has enough points for them), the sweep's length and whether it diverged."""
    from . import suggest

    data = result if isinstance(result, Mapping) else result.to_dict()
    lrs, losses = list(data.get("lrs") or []), list(data.get("losses") or [])
    out: dict[str, Any] = {
        "lr": data.get("lr"),
        "band": data.get("band"),
        "bounds": data.get("bounds"),
        "rule": data.get("rule"),
        "candidates": data.get("candidates"),
        "diverged": data.get("diverged"),
        "divergence_lr": lrs[-1] if data.get("diverged") and lrs else None,
        "num_steps_run": data.get("num_steps_run"),
        "steps": data.get("steps"),
        "effective_batch_size": data.get("effective_batch_size"),
    }
    try:
        marks = suggest.landmarks(lrs, losses)
        out.update(
            lr_min=marks.minimum,
            onset=marks.onset,
            edge=marks.edge,
            floor=list(marks.floor),
            signal_to_noise=marks.signal_to_noise,
            steepest=suggest.steepest(lrs, losses),
        )
    except (ConfigError, ValueError):
        pass  # too few points: the curve's features stay unknown
    return out


def record_range_test(
    result: LRFinderResult,
    task: Task | None = None,
    *,
    fingerprint: Mapping[str, Any] | None = None,
    history: History | str | None = None,
    enabled: bool | None = None,
) -> int | None:
    """Record a range test: the task's fingerprint (or ``fingerprint``), the curve's
    features, the chosen LR. The record's id, or ``None`` when recording is off or failed
    (the default store only warns: a :class:`HistoryWarning`)."""
    if not _on(enabled):
        return None
    prints = task.fingerprint() if task is not None else dict(fingerprint or {})
    features = range_test_features(result)
    with _recording(history) as store:
        return store.add(
            "range_test",
            lr=result.lr,
            fingerprint=prints,
            features=features,
            diverged=result.diverged,
            name=getattr(task, "name", None),
        )
    return None


def record_run(
    run: RunResult,
    task: Task | None = None,
    *,
    fingerprint: Mapping[str, Any] | None = None,
    history: History | str | None = None,
    enabled: bool | None = None,
) -> int | None:
    """Record a training run: the LR it trained at, its final metric and whether it
    diverged, with its length, time, last loss and events count as features."""
    if not _on(enabled):
        return None
    prints = task.fingerprint() if task is not None else dict(fingerprint or {})
    finite = [x for x in run.losses if math.isfinite(x)]
    features = {
        "steps": run.steps,
        "steps_done": run.steps_done,
        "seconds": run.seconds,
        "final_loss": finite[-1] if finite else None,
        "skipped": run.skipped,
        "clipped": run.clipped,
        "stopped": run.stopped,
        "events": len(run.events),
        "seed": run.seed,
        "lr_scale": getattr(run, "lr_scale", 1.0),
    }
    capture = _CAPTURE.get()
    if capture is not None:  # a search trial: the search records it once its outcome is known
        capture.fingerprint = prints
        return None
    with _recording(history) as store:
        return store.add(
            "run",
            lr=run.lr,
            fingerprint=prints,
            features=features,
            metric=run.metric,
            diverged=run.diverged,
            name=run.task or getattr(task, "name", None),
        )
    return None


def record_trial(
    lr: float,
    metric: float | None,
    *,
    task: Task | None = None,
    fingerprint: Mapping[str, Any] | None = None,
    diverged: bool = False,
    study: str | None = None,
    number: int | None = None,
    params: Mapping[str, Any] | None = None,
    state: str = "complete",
    features: Mapping[str, Any] | None = None,
    name: str | None = None,
    history: History | str | None = None,
    enabled: bool | None = None,
) -> int | None:
    """Record one search trial: its LR, metric, whether it diverged, what it was (``state``,
    one of :data:`TRIAL_STATES`), its study, number and parameters, and ``features`` (the
    steps it trained, ...). Only a complete trial keeps its metric: a pruned, diverged or
    failed one stopped early, and its metric at that step is not a finished run's, so the
    recommender must not learn from it. ``name``: the task's name (default ``task.name``)."""
    if not _on(enabled):
        return None
    state = check.choice("state", state, TRIAL_STATES)
    prints = task.fingerprint() if task is not None else dict(fingerprint or {})
    details = {"study": study, "number": number, "params": dict(params or {}), "state": state}
    with _recording(history) as store:
        return store.add(
            "trial",
            lr=check.real("lr", lr, 0.0, open_low=True),
            fingerprint=prints,
            features=dict(features or {}),
            metric=metric if state == "complete" else None,
            diverged=diverged,
            details=details,
            name=name or getattr(task, "name", None),
        )
    return None


@dataclass
class TrialCapture:
    """What :func:`record_run` kept, inside :func:`capturing_runs`, instead of storing it:
    the fingerprint of the last run (``None`` when recording is off or no run ended)."""

    fingerprint: dict[str, Any] | None = None


_CAPTURE: ContextVar[TrialCapture | None] = ContextVar("lrpilot_history_capture", default=None)


@contextlib.contextmanager
def capturing_runs() -> Iterator[TrialCapture]:
    """Inside, :func:`record_run` stores nothing and keeps the run's fingerprint in the yielded
    :class:`TrialCapture`. A search trains each trial with :func:`lrpilot.train`, which records
    its run as it ends; a pruned trial would then be stored as a finished run with its metric
    at the step it stopped. The search records it as a ``trial`` instead (:func:`record_trial`),
    once it knows whether the trial completed."""
    capture = TrialCapture()
    token = _CAPTURE.set(capture)
    try:
        yield capture
    finally:
        _CAPTURE.reset(token)


# --------------------------------------------------------------------------------------------
# The recommender
# --------------------------------------------------------------------------------------------

_AXES = ("parameters", "batch_size", "steps")
"""The numeric features compared in log10 space at weight 1."""

DATA_AXIS = "dataset_size"
"""The fingerprint's training-set size: a log10 axis weighted by :data:`DATA_WEIGHT`."""

DATA_WEIGHT = 0.0
"""The weight of the log10 dataset-size axis (a decade of dataset size counts this many
decades of distance). 0: held out on the benchmark, opening it (with :data:`CLIP_PENALTY`)
raised the share of picks within 2x of the best LR but doubled the median regret, so it is
off (RESULTS.md "recommender", "Which axes help, held out")."""

CLIP_PENALTY = 0.0
"""Distance added when one task clips its gradients and the other does not (in decades):
clipping bounds the step, so a clipped recipe may tolerate another LR. 0, for the reason
:data:`DATA_WEIGHT` is."""

MISSING_PENALTY = 0.5
"""Distance added for an axis known on one side only (in decades)."""

MODEL_PENALTY = 0.5
"""Distance added when the model classes differ (in decades)."""

SPREAD_FLOOR = 0.15
"""The smallest spread (decades) a prediction is given: seed-to-seed noise of a best LR."""

OPTIMIZER_PENALTY = 1.0
"""Distance added when the optimizer classes differ within a family (Adam and AdamW, in
decades): 1, chosen like :data:`NEIGHBOURS` among 0 to 2 decades."""

ANCHOR = "lr"
"""What the relative mode (the query's range test given) transfers the neighbours' best LR
relative to: ``"lr"`` (the range test's chosen LR) or ``"lr_min"`` (the LR at the curve's
smoothed minimum; before). Chosen like :data:`NEIGHBOURS`: the chosen LR is the steadier
landmark (a curve's minimum moves by decades with the sweep's noise)."""

ANCHORS = ("lr_min", "lr")


@dataclass
class _PastTask:
    task_id: str
    name: str | None
    family: str | None
    model: str | None
    features: dict[str, float | None]
    lr: float
    basis: str
    count: int
    lr_min: float | None
    optimizer: str | None = None
    test_lr: float | None = None  # the latest range test's chosen LR
    clipped: bool | None = None  # whether the recipe clips gradients; None: not recorded

    def anchor(self, kind: str) -> float | None:
        """The range-test landmark of the relative mode: ``lr_min`` or the chosen ``lr``."""
        return self.lr_min if kind == "lr_min" else self.test_lr


def _past_tasks(rows: Sequence[Record], *, seed_mean: bool = True) -> list[_PastTask]:
    """One entry per past task: the LR of its best finished run or complete trial (finite
    metric, not diverged, not pruned: :func:`_finished`), else the LR its latest range test
    chose. With ``seed_mean``, runs at the same LR (several seeds)
    are scored by their mean metric, so one lucky seed does not pick the LR."""
    by_task: dict[str, list[Record]] = {}
    for rec in rows:
        if rec.task_id and rec.lr:
            by_task.setdefault(rec.task_id, []).append(rec)
    out = []
    for task_id, recs in by_task.items():
        scored = [r for r in recs if _finished(r)]
        tests = [r for r in recs if r.kind == "range_test"]
        if scored:
            lr, basis, count = _best_lr(scored, seed_mean), "runs", len(scored)
        elif tests:
            lr, basis, count = float(tests[-1].lr or 0.0), "range test", len(tests)
        else:
            continue
        lr_min = next((t.features.get("lr_min") for t in reversed(tests)), None)
        test_lr = float(tests[-1].lr) if tests and tests[-1].lr else None
        latest = recs[-1]
        out.append(
            _PastTask(
                task_id=task_id,
                name=latest.task_name,
                family=latest.family,
                model=latest.model,
                features={
                    **{a: getattr(latest, a) for a in _AXES},
                    DATA_AXIS: latest.fingerprint.get(DATA_AXIS),
                },
                lr=lr,
                basis=basis,
                count=count,
                lr_min=lr_min,
                optimizer=latest.fingerprint.get("optimizer"),
                test_lr=test_lr,
                clipped=_clipped(latest.fingerprint),
            )
        )
    return out


def _finished(rec: Record) -> bool:
    """Whether ``rec`` is a run or trial that trained its length and scored a finite metric,
    without diverging, at the LR it records (a run whose LR a monitor cut, ``lr_scale`` below
    1 in its features, trained at another). A trial records its state; a run stored by an
    older lrpilot for a search trial says ``stopped = "pruned at step N"`` (or
    ``"diverged..."``) in its features: both stopped early, so their metric is not a finished
    run's."""
    if rec.kind not in ("run", "trial") or rec.metric is None or rec.diverged:
        return False
    if rec.kind == "trial":
        return rec.details.get("state", "complete") == "complete"
    scale = rec.features.get("lr_scale")
    if scale is not None and float(scale) != 1.0:
        return False  # a monitor cut its LR: its metric is not the recorded LR's
    stopped = str(rec.features.get("stopped") or "")
    return not stopped.startswith(("pruned", "diverged"))


def _best_lr(scored: Sequence[Record], seed_mean: bool) -> float:
    """The LR of the best run: by the mean metric of the runs at each LR, or the single best."""
    if not seed_mean:
        return float(max(scored, key=lambda r: r.metric or -math.inf).lr or 0.0)
    by_lr: dict[float, list[float]] = {}
    for r in scored:
        by_lr.setdefault(float(r.lr or 0.0), []).append(float(r.metric or 0.0))
    return max(by_lr, key=lambda lr: sum(by_lr[lr]) / len(by_lr[lr]))


def _query_features(
    query: Any, range_test: LRFinderResult | Mapping[str, Any] | None
) -> dict[str, Any]:
    from .task import Task

    if isinstance(query, Task):
        data: dict[str, Any] = query.fingerprint()
    elif isinstance(query, Mapping):
        data = dict(query)
    else:
        raise check.ArgError("query", query, "an lrpilot.Task or a fingerprint/feature dict")
    data["family"] = data.get("family") or _family_name(data.get("optimizer"))
    if range_test is not None:
        features = range_test_features(range_test)
        data["lr_min"] = features.get("lr_min")
        data["test_lr"] = features.get("lr")
    return data


def _anchor(anchor: str | None) -> str:
    return ANCHOR if anchor is None else check.choice("anchor", anchor, ANCHORS)


def _clipped(data: Mapping[str, Any]) -> bool | None:
    """Whether a fingerprint's recipe clips gradients; ``None`` where it does not say (a
    fingerprint of live objects, a record from before the field, a hand-written query)."""
    return None if "grad_clip" not in data else data["grad_clip"] is not None


def _log_gap(a: Any, b: Any) -> float:
    """Decades between two sizes; :data:`MISSING_PENALTY` when only one is known."""
    if a and b:
        return abs(math.log10(float(a) / float(b)))
    return MISSING_PENALTY if a or b else 0.0


def _flag_gap(a: bool | None, b: bool | None) -> float:
    """1 for two known flags that differ, 0 for equal ones; :data:`MISSING_PENALTY` (as a
    share of a mismatch) when only one is known."""
    if a is not None and b is not None:
        return float(a != b)
    return MISSING_PENALTY if a is not None or b is not None else 0.0


def _distance(
    past: _PastTask,
    wanted: Mapping[str, Any],
    optimizer_penalty: float = OPTIMIZER_PENALTY,
    data_weight: float = DATA_WEIGHT,
    clip_penalty: float = CLIP_PENALTY,
) -> float:
    """The distance (in decades) from the query to a past task: the Euclidean norm of the
    log10 gaps in parameter count, batch size and steps, the dataset size's times
    ``data_weight``, and the penalties for a different model class, optimizer class and
    clipping (``clip_penalty``). An axis known on one side only counts
    :data:`MISSING_PENALTY`, so old records without a field still compare."""
    gaps = [_log_gap(past.features.get(a), wanted.get(a)) for a in _AXES]
    gaps.append(data_weight * _log_gap(past.features.get(DATA_AXIS), wanted.get(DATA_AXIS)))
    if wanted.get("model") and past.model and wanted["model"] != past.model:
        gaps.append(MODEL_PENALTY)
    if wanted.get("optimizer") and past.optimizer and wanted["optimizer"] != past.optimizer:
        gaps.append(optimizer_penalty)
    gaps.append(clip_penalty * _flag_gap(past.clipped, _clipped(wanted)))
    return math.sqrt(sum(g * g for g in gaps))


def _recommend(
    past: list[_PastTask],
    wanted: Mapping[str, Any],
    k: int,
    source: str,
    *,
    optimizer_penalty: float = OPTIMIZER_PENALTY,
    anchor: str = ANCHOR,
    data_weight: float = DATA_WEIGHT,
    clip_penalty: float = CLIP_PENALTY,
) -> Recommendation:
    same = [p for p in past if wanted.get("id") and p.task_id == wanted.get("id")]
    if same and same[0].basis == "runs":
        p = same[0]
        return Recommendation(
            lr=p.lr,
            low=p.lr / 2,
            high=p.lr * 2,
            confidence=0.9,
            basis="same task",
            neighbours=[_neighbour(p, 0.0, 1.0)],
            reason=(
                f"your history: this recipe (fingerprint {p.task_id}) was trained {p.count} "
                f"time(s); the best metric came at lr {p.lr:.3g}."
            ),
            source=f"lrpilot history {source}",
        )
    family = wanted.get("family")
    pool = [p for p in past if p.family == family] if family else []
    if not pool:
        return Recommendation(
            lr=None,
            low=None,
            high=None,
            confidence=0.0,
            basis="none",
            neighbours=[],
            reason=(
                f"your history holds {len(past)} task(s), none of the {family or 'unknown'} "
                "family: the rules apply."
            ),
            source=f"lrpilot history {source}",
        )
    distances = (
        (_distance(p, wanted, optimizer_penalty, data_weight, clip_penalty), p) for p in pool
    )
    ranked = sorted(distances, key=lambda t: t[0])[:k]
    return _neighbour_answer(ranked, wanted, source, anchor)


def _neighbour_answer(
    ranked: list[tuple[float, _PastTask]],
    wanted: Mapping[str, Any],
    source: str,
    anchor: str = ANCHOR,
) -> Recommendation:
    """A weighted geometric mean of the neighbours' LRs (weights ``1 / (0.1 + d)^2``); when the
    query and the neighbours have range tests, of their best LRs relative to their range
    test's ``anchor`` (the LR at the curve's minimum, or the test's chosen LR), times the
    query's."""
    weights = [1.0 / (0.1 + d) ** 2 for d, _ in ranked]
    total = sum(weights)
    lr_min = wanted.get("lr_min" if anchor == "lr_min" else "test_lr")
    relative = bool(lr_min) and all(p.anchor(anchor) for _, p in ranked)
    logs = [
        math.log10(p.lr / (p.anchor(anchor) or 1.0)) if relative else math.log10(p.lr)
        for _, p in ranked
    ]
    centre = sum(w * x for w, x in zip(weights, logs, strict=True)) / total
    spread = math.sqrt(
        sum(w * (x - centre) ** 2 for w, x in zip(weights, logs, strict=True)) / total
    )
    distance = sum(w * d for w, (d, _) in zip(weights, ranked, strict=True)) / total
    width = max(spread, SPREAD_FLOOR) + 0.5 * distance
    log_lr = centre + (math.log10(lr_min) if relative and lr_min else 0.0)
    lr = 10**log_lr
    n = len(ranked)
    confidence = math.exp(-distance) * n / (n + 1) * math.exp(-spread)
    basis = "neighbours + range test" if relative else "neighbours"
    names = ", ".join(p.name or p.task_id for _, p in ranked[:3])
    return Recommendation(
        lr=lr,
        low=lr / 10**width,
        high=lr * 10**width,
        confidence=confidence,
        basis=basis,
        neighbours=[
            _neighbour(p, d, w / total) for (d, p), w in zip(ranked, weights, strict=True)
        ],
        reason=(
            f"your history: {n} similar task(s) of the {ranked[0][1].family} family ({names}) "
            f"at a mean log-distance of {distance:.2f} decades point to lr {lr:.3g}."
        ),
        source=f"lrpilot history {source} (k-nearest neighbours in log space)",
    )


def _neighbour(p: _PastTask, distance: float, weight: float) -> dict[str, Any]:
    return {
        "task_id": p.task_id,
        "name": p.name,
        "lr": p.lr,
        "basis": p.basis,
        "distance": distance,
        "weight": weight,
    }


def recommend(
    query: Task | Mapping[str, Any],
    *,
    range_test: LRFinderResult | Mapping[str, Any] | None = None,
    history: History | str | None = None,
    k: int = NEIGHBOURS,
    anchor: str | None = None,
) -> Recommendation:
    """Predict a good LR for ``query`` from the history.

    Same recipe first: when a task with the same fingerprint id was trained before, the LR of
    its best run. Otherwise the ``k`` nearest past tasks of the same optimizer family, by
    distance in log10 space over parameter count, batch size, steps and dataset size (times
    :data:`DATA_WEIGHT`, 0 by default), plus penalties for a different model class, optimizer
    class (:data:`OPTIMIZER_PENALTY`) and gradient clipping (:data:`CLIP_PENALTY`, 0 by
    default); a field known on one side only counts :data:`MISSING_PENALTY`. The answer: the
    weighted geometric mean of their best LRs (a past task's best LR: the LR whose runs score
    the best mean metric), or, when ``range_test`` (the query's range-test result) is given
    and they had range tests too, of their best LR over their range test's chosen LR
    (``anchor="lr"``) or curve minimum (``"lr_min"``), times the query's. With no past task
    of the family, ``lr`` is ``None`` and the reason says the rules apply.

    Measured held out (``python -m benchmarks.recommender``, RESULTS.md "recommender"): with
    the other task families in the history, the zero-shot LR lands within 2x of the oracle's
    on fewer than half the tasks; the range test alone does better, and the geometric mean of
    the two better still.

    Args:
        query: a :class:`~lrpilot.Task`, or a dict with any of ``id``, ``family`` (or
            ``optimizer``, a class name), ``model``, ``parameters``, ``batch_size``, ``steps``,
            ``dataset_size``, ``grad_clip`` (``None``: no clipping; absent: unknown).
        range_test: the query's range-test result (or its dict), if one was run.
        history: the store (default :func:`default_url`).
        k: neighbours to average.
        anchor: the relative mode's landmark, ``"lr"`` or ``"lr_min"`` (default
            :data:`ANCHOR`).
    """
    store = _store(history)
    if history is None and not exists():
        wanted = _query_features(query, range_test)
        return _recommend([], wanted, k, store.shown_url, anchor=_anchor(anchor))
    return store.recommend(query, range_test=range_test, k=k, anchor=anchor)
