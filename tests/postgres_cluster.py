"""A private PostgreSQL cluster for tests and benchmarks: ``initdb`` + ``pg_ctl`` in a
temporary directory, on a free port of 127.0.0.1, stopped (and deleted) at the end.

Missing server binaries are an error, never a skip: ``make test`` installs Debian's
``postgresql`` package when ``initdb`` is missing. As root (CI), the server runs as the
``postgres`` user, since ``initdb`` refuses to run as root.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest

BINARIES = Path("/usr/lib/postgresql")
SHARED_DATABASE = "tillflow_tests"
TEST_SETTINGS: Mapping[str, str] = {"fsync": "off"}
"""Tests need no durability across power cuts: ``fsync=off`` (commits stay synchronous)."""


class PostgresMissing(RuntimeError):
    """The server binaries (``initdb``, ``pg_ctl``) are not installed."""


def server_binaries() -> Path:
    """The ``bin`` directory of the newest installed PostgreSQL server."""
    found = sorted(
        BINARIES.glob("*/bin/initdb"), key=lambda path: int(path.parent.parent.name), reverse=True
    )
    if not found:
        raise PostgresMissing(
            f"no PostgreSQL server under {BINARIES}/*/bin (initdb, pg_ctl): install Debian's "
            "'postgresql' package (make test does)"
        )
    return found[0].parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PostgresCluster:
    """One running server; :meth:`create_database` hands out fresh databases."""

    def __init__(self, directory: Path, settings: Mapping[str, str]) -> None:
        self.directory = directory
        self.data = directory / "data"
        self.port = free_port()
        self.settings = dict(settings)
        self.bin = server_binaries()
        self._numbers = itertools.count(1)
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(directory, user.pw_uid, user.pw_gid)
            self._as = {"user": user.pw_uid, "group": user.pw_gid}
        self.user = "postgres"

    def _run(self, *command: str) -> None:
        done = subprocess.run(
            command, capture_output=True, text=True, check=False, cwd=self.directory, **self._as
        )
        if done.returncode != 0:
            log = self.directory / "server.log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(command)} failed: {done.stderr or done.stdout}{tail}")

    def start(self) -> None:
        if not self.data.exists():
            self._run(
                str(self.bin / "initdb"),
                "-D",
                str(self.data),
                "-U",
                self.user,
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            )
        options = [f"-p {self.port}", f"-k {self.directory}", "-c listen_addresses=127.0.0.1"]
        options += [f"-c {name}={value}" for name, value in self.settings.items()]
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.directory / "server.log"),
            "-o",
            " ".join(options),
            "-w",
            "start",
        )

    def watchdog(self) -> subprocess.Popen[bytes]:
        """A process that stops the server and deletes its directory once this process has
        gone without doing so (killed, or timed out): a test run never leaks a server.
        Terminate it after a normal stop."""
        script = (
            f"while [ -d /proc/{os.getpid()} ]; do sleep 1; done; "
            f"{self.bin / 'pg_ctl'} -D {self.data} -m immediate -w stop; rm -rf {self.directory}"
        )
        return subprocess.Popen(
            ["sh", "-c", script],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            **self._as,
        )

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``mode``: ``fast``, or ``immediate`` for a crash)."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def admin(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url(), autocommit=True)

    def create_database(self) -> str:
        """A new, empty database; its URL."""
        name = f"tillflow_test_{next(self._numbers)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def drop_database(self, url: str) -> None:
        name = url.rsplit("/", 1)[1]
        with self.admin() as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def create_schema(self) -> str:
        """A new, empty schema in the shared ``tillflow_tests`` database: the URL of that
        database with the schema as its ``search_path`` (much cheaper than a database)."""
        name = f"test_{next(self._numbers)}"
        with psycopg.connect(self.url(SHARED_DATABASE), autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.url(SHARED_DATABASE)}?options=-csearch_path%3D{name}"

    def drop_schema(self, url: str) -> None:
        name = url.rsplit("%3D", 1)[1]
        with psycopg.connect(self.url(SHARED_DATABASE), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {name} CASCADE")

    def setting(self, name: str) -> str:
        with self.admin() as conn:
            row = conn.execute("SELECT current_setting(%s)", (name,)).fetchone()
        return "" if row is None else str(row[0])


@contextmanager
def running_cluster(settings: Mapping[str, str] = TEST_SETTINGS) -> Iterator[PostgresCluster]:
    """A started cluster, stopped and deleted on exit."""
    directory = Path(tempfile.mkdtemp(prefix="tillflow-pg-"))
    try:
        cluster = PostgresCluster(directory, settings)
        cluster.start()
        watchdog = cluster.watchdog()
        try:
            yield cluster
        finally:
            cluster.stop()
            watchdog.terminate()
            watchdog.wait()
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    """One private cluster for the whole test session, started on first use."""
    with running_cluster() as cluster:
        with cluster.admin() as conn:
            conn.execute(f"CREATE DATABASE {SHARED_DATABASE}")
        yield cluster


@pytest.fixture
def postgres_url(postgres_cluster: PostgresCluster) -> Iterator[str]:
    """The URL of a fresh, empty schema (the connections' ``search_path``) in the session's
    shared database, dropped after the test."""
    url = postgres_cluster.create_schema()
    yield url
    postgres_cluster.drop_schema(url)
