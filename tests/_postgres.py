"""A throwaway PostgreSQL server for the tests that need a real one (search workers, the
history store): its own temp data folder, a free loopback port, the unix socket in that folder,
run as an unprivileged user when the tests run as root; stopped and deleted at the end of the
session. Skips (with the command to install it) only when no PostgreSQL binaries exist."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest


def _pg_bin() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's /usr/lib/postgresql/*/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(Path(folder) / "initdb", os.X_OK):
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_server_user(cmd: list[str], user: str | None) -> list[str]:
    """``cmd`` run as ``user`` (initdb and postgres refuse to run as root)."""
    return ["runuser", "-u", user, "--", *cmd] if user else cmd


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    pytest.skip("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL")


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A PostgreSQL server of its own: a temp data folder, a free loopback port, the unix
    socket in that folder; stopped and deleted at the end of the session."""
    bin_dir = _pg_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL binaries (initdb, pg_ctl): apt-get install postgresql")
    user = _server_user()
    root = Path(tempfile.mkdtemp(prefix="lrpilot-pg-"))
    data = root / "data"
    if user:
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    port = _free_port()
    run = lambda cmd: subprocess.run(  # noqa: E731
        _as_server_user(cmd, user), check=True, capture_output=True, text=True, timeout=120
    )
    run([str(bin_dir / "initdb"), "-D", str(data), "-U", "lrpilot", "-A", "trust", "--no-sync"])
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
    run(
        [
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-o",
            options,
            "-l",
            str(root / "log"),
            "-w",
            "start",
        ]
    )
    try:
        yield f"postgresql://lrpilot:not-a-secret@127.0.0.1:{port}/postgres"
    finally:
        run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(root, ignore_errors=True)
