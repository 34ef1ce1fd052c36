"""Where a search keeps its study, and how trials whose worker died are found and retried.

* Default: Optuna's ``JournalStorage(JournalFileBackend(path))``, an append-only log file with
  a file lock, which several processes on one machine share safely (Optuna's FAQ advises
  against SQLite under parallel workers). The file is ``$LRPILOT_HOME/search.journal``
  (``~/.lrpilot`` when ``LRPILOT_HOME`` is unset), created readable by the user only.
* A path ending in ``.journal`` (or ``journal:PATH``): the same, at that path, whose folder
  must exist (only the default one is created: a typo must not start a study elsewhere).
* Any SQLAlchemy URL (``postgresql://user:pw@host/db``, ``sqlite:///f.db``): Optuna's
  ``RDBStorage`` with its heartbeat (``heartbeat_interval``) and
  ``RetryHeartbeatStaleTrialCallback``: a trial whose worker stops beating is failed and
  queued again.

The journal store has no heartbeat in Optuna 5.0, so lrpilot keeps its own, in the trial's user
attributes: every trial records its host and process id and beats every ``heartbeat`` seconds
from a thread (:func:`beating`), however long a step or a validation pass takes.
Before each trial, and while waiting for others, :func:`reap` fails a RUNNING trial whose
process is gone (same host) or whose beat is older than twice the interval (any host), and
queues it again with Optuna's own retry callback, so no trial stays RUNNING and a killed one is
run again. On a database the same check runs next to Optuna's.

Passwords never reach a message: every URL shown goes through :func:`masked`.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.trial import FrozenTrial, TrialState

from ..errors import ConfigError

__all__ = ["Store", "open_storage", "masked", "default_journal_path", "reap", "OWNER"]

OWNER = "lrpilot.owner"
"""User attribute ``"host:pid:number"`` of the process running a trial."""
HEARTBEAT = "lrpilot.heartbeat"
CONNECT_TIMEOUT_S = 10


@dataclass
class Store:
    """An opened storage and how to show it."""

    storage: Any
    shown: str
    heartbeat: float | None  # lrpilot's own beat interval, where the storage has none
    grace: float


def default_journal_path() -> Path:
    """``$LRPILOT_HOME/search.journal`` (``~/.lrpilot/search.journal`` by default)."""
    home = os.environ.get("LRPILOT_HOME")
    return (
        Path(home).expanduser() / "search.journal"
        if home
        else Path.home() / ".lrpilot" / "search.journal"
    )


def masked(url: str) -> str:
    """``url`` with its password replaced by ``***`` (a file path is returned as is)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        return url


def open_storage(storage: str | os.PathLike[str] | None, heartbeat: int) -> Store:
    """The Optuna storage for ``storage`` (``None``: the default journal file)."""
    if storage is None:
        return _journal(default_journal_path(), heartbeat, make_folder=True)
    text = os.fspath(storage)
    if text.startswith("journal:"):
        return _journal(_existing_folder(Path(text[len("journal:") :])), heartbeat)
    if "://" not in text:
        if text.endswith(".journal"):
            return _journal(_existing_folder(Path(text)), heartbeat)
        raise ConfigError(
            f"storage {text!r} is neither a SQLAlchemy URL (postgresql://user@host/db, "
            "sqlite:///search.db) nor a journal file (a path ending in .journal)."
        )
    return _database(text, heartbeat)


def _existing_folder(path: Path) -> Path:
    """``path`` (a journal file the user named) if its folder exists, else a ConfigError naming
    the folder: a typo must not silently start a fresh study in a new folder, away from the
    study the user meant to continue. (Only the default journal's folder is created.)"""
    path = path.expanduser()
    folder = path.parent
    if not folder.exists():
        raise ConfigError(
            f"cannot open the search journal {str(path)!r}: the folder {str(folder)!r} does "
            "not exist (create it first, or check the path)."
        )
    if not folder.is_dir():
        raise ConfigError(
            f"cannot open the search journal {str(path)!r}: {str(folder)!r} is not a folder."
        )
    return path


def _journal(path: Path, heartbeat: int, make_folder: bool = False) -> Store:
    """The journal store at ``path``; its folder is created (0o700) only if ``make_folder``."""
    path = path.expanduser()
    try:
        if make_folder:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_WRONLY | os.O_APPEND, 0o600)
            os.close(fd)
        backend = JournalFileBackend(str(path))
        return Store(JournalStorage(backend), str(path), float(heartbeat), 2.0 * heartbeat)
    except OSError as exc:
        raise ConfigError(
            f"cannot open the search journal {str(path)!r}: {exc.strerror or exc}"
        ) from None


def _database(url: str, heartbeat: int) -> Store:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    shown = masked(url)
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        raise ConfigError(f"storage {shown!r} is not a valid SQLAlchemy URL") from None
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername=_postgres_driver())
        url = parsed.render_as_string(hide_password=False)
    engine: dict[str, Any] = {"pool_pre_ping": True}
    if parsed.get_backend_name() == "postgresql":
        engine["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT_S}
    try:
        storage = _rdb_storage(url, engine, heartbeat)
    except ImportError as exc:
        raise ConfigError(
            f"storage {shown!r} needs a database driver that is not installed ({exc}); for "
            "PostgreSQL: pip install 'lrpilot[search]'"
        ) from None
    except (SQLAlchemyError, OSError, ValueError) as exc:
        reason = _first_line(str(getattr(exc, "orig", None) or exc), parsed.password)
        raise ConfigError(f"cannot reach the storage {shown!r}: {reason}") from None
    return Store(storage, shown, None, 2.0 * heartbeat)


CREATE_ATTEMPTS = 5
"""Tries at opening a database whose tables another worker may be creating at that moment."""


def _rdb_storage(url: str, engine: dict[str, Any], heartbeat: int) -> RDBStorage:
    """Optuna's ``RDBStorage`` on ``url``. Several workers started at once on an empty
    database all create Optuna's tables; on PostgreSQL the losers of that race fail with a
    unique-key violation on the catalogue, and a moment later the tables are there: so an
    integrity error (or "already exists") is retried, anything else (an unreachable server,
    bad credentials) is not."""
    from sqlalchemy.exc import IntegrityError, ProgrammingError

    for attempt in range(CREATE_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return RDBStorage(
                    url,
                    engine_kwargs=engine,
                    heartbeat_interval=heartbeat,
                    grace_period=2 * heartbeat,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(),
                )
        except (IntegrityError, ProgrammingError) as exc:
            racing = isinstance(exc, IntegrityError) or "already exists" in str(exc)
            if not racing or attempt == CREATE_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def _postgres_driver() -> str:
    """SQLAlchemy 2.1 reads a bare ``postgresql://`` as psycopg 3; the ``search`` extra brings
    psycopg2 (``psycopg2-binary``): use whichever is installed, psycopg 3 first."""
    import importlib.util

    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return "postgresql+psycopg2"
    return "postgresql"


def _first_line(text: str, password: Any) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "no reason given"
    if password:
        line = line.replace(str(password), "***")
    return line


def owner_tag(number: int) -> str:
    """The :data:`OWNER` attribute of trial ``number`` run by this process."""
    return f"{socket.gethostname()}:{os.getpid()}:{number}"


def is_stale(trial: FrozenTrial, grace: float | None, now: float | None = None) -> bool:
    """Whether RUNNING ``trial``'s worker is gone: its process no longer exists (same host),
    or it has not beaten for ``grace`` seconds (lrpilot's journal heartbeat; ``None``: the
    storage keeps its own heartbeat, only the process is checked)."""
    now = time.time() if now is None else now
    owner = str(trial.user_attrs.get(OWNER, ""))
    host, _, rest = owner.partition(":")
    pid, _, number = rest.partition(":")
    if owner and number == str(trial.number) and host == socket.gethostname() and pid.isdigit():
        if not _alive(int(pid)):
            return True
    if grace is None:
        return False
    beat = trial.user_attrs.get(HEARTBEAT)
    if beat is None:
        if trial.datetime_start is None:
            return False
        beat = trial.datetime_start.timestamp()
    return now - float(beat) > grace


@contextlib.contextmanager
def beating(trial: Any, interval: float | None) -> Iterator[None]:
    """Write ``trial``'s :data:`HEARTBEAT` every ``interval`` seconds from a thread of its own
    while the block runs (nothing for ``None``: a database keeps Optuna's own heartbeat).

    Why a thread: the training loop's steps cannot beat for it, since one step, or a
    validation pass, can outlast twice the interval on a big model, and another worker would
    then fail and retry a trial whose worker is alive (Optuna's own heartbeat beats from a
    thread for the same reason)."""
    if interval is None:
        yield
        return
    done = threading.Event()

    def beat() -> None:
        while not done.wait(interval):
            try:
                trial.set_user_attr(HEARTBEAT, time.time())
            except Exception:  # the trial finished meanwhile, or the store is gone: stop
                return

    thread = threading.Thread(target=beat, name=f"lrpilot-heartbeat-{trial.number}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def reap(study: optuna.Study, store: Store) -> int:
    """Fail every RUNNING trial of ``study`` whose worker is gone and queue it again (Optuna's
    ``RetryHeartbeatStaleTrialCallback``); on a database, also Optuna's own heartbeat check.
    Returns how many were reaped here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        if store.heartbeat is None:
            optuna.storages.fail_stale_trials(study)
        retry = RetryHeartbeatStaleTrialCallback()
        reaped = 0
        own = os.getpid()
        for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            if str(trial.user_attrs.get(OWNER, "")).split(":")[1:2] == [str(own)]:
                continue  # this process's own trial
            if not is_stale(trial, store.grace if store.heartbeat is not None else None):
                continue
            try:
                study.tell(trial.number, state=TrialState.FAIL)
            except (ValueError, RuntimeError, optuna.exceptions.UpdateFinishedTrialError):
                continue  # another worker got there first
            retry(study, study.get_trials(deepcopy=False)[trial.number])
            reaped += 1
    return reaped
