"""A test run that is killed (SIGKILL, a CI timeout) must not leave its private
PostgreSQL server running: the cluster's watchdog stops it and deletes its directory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

CHILD = """
import os
from tests.postgres_cluster import running_cluster
with running_cluster() as cluster:
    print(cluster.directory, flush=True)
    os.kill(os.getpid(), 9)
"""


def test_a_killed_run_leaves_no_server_behind() -> None:
    root = Path(__file__).resolve().parents[2]
    child = subprocess.run(
        [sys.executable, "-c", CHILD],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert child.returncode == -9, child.stderr
    directory = Path(child.stdout.strip())
    assert directory.name.startswith("tillflow-pg-")
    deadline = time.monotonic() + 60
    while directory.exists():
        assert time.monotonic() < deadline, f"{directory} is still there: server leaked"
        time.sleep(0.1)
    pids = subprocess.run(["pgrep", "-f", str(directory)], capture_output=True, check=False)
    assert pids.stdout == b"", "a server of the killed run is still running"
