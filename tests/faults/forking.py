"""The fork server fault runs start their processes from: it imports tillflow once, and
each `tillflow worker` or shop process is a fork of it (a real process, killed with real
signals, running the real code) that starts in a fraction of a second instead of paying
for the imports again."""

from __future__ import annotations

import multiprocessing
from typing import Final

FORK_SERVER: Final = multiprocessing.get_context("forkserver")
FORK_SERVER.set_forkserver_preload(["tests.faults.worker_process", "tests.faults.sqlite_child"])
