"""A SIGTERM while the supervisor starts its HTTP workers is held until every worker it
started is in its list, so that stopping them misses none (a signal that raised in the
middle of ``Popen`` once left a worker it had started out of the list, running on until its
lifeline told it the supervisor was gone)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

from tillflow.cli.serve import _exit_cleanly
from tillflow.cli.supervisor import Supervisor
from tillflow.service.settings import load_settings


class SignalledWhileStarting:
    """A worker process whose start is interrupted by a SIGTERM to the supervisor."""

    started: list[SignalledWhileStarting] = []  # noqa: RUF012 (the test's record)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        os.kill(os.getpid(), signal.SIGTERM)  # handled at the next bytecode, in here
        SignalledWhileStarting.started.append(self)


@pytest.fixture
def serve_handlers() -> Iterator[None]:
    """SIGTERM and SIGINT as ``tillflow serve`` sets them before it starts its workers."""
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    for signum in before:
        signal.signal(signum, _exit_cleanly)
    yield
    for signum, handler in before.items():
        signal.signal(signum, handler)


@pytest.mark.usefixtures("serve_handlers")
def test_a_sigterm_while_the_workers_start_loses_none_of_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(subprocess, "Popen", SignalledWhileStarting)
    SignalledWhileStarting.started.clear()
    listener = socket.socket()
    starting = Supervisor(load_settings(), listener, 3, None)
    try:
        with pytest.raises(SystemExit) as stopped:
            starting.start()
    finally:
        starting.close()
    assert stopped.value.code == 0
    assert len(SignalledWhileStarting.started) == 3
    started = [id(worker) for worker in SignalledWhileStarting.started]
    assert [id(worker) for worker in starting.workers] == started  # every one, to be stopped
    assert listener.fileno() == -1  # closed: the workers hold the socket now
    assert signal.getsignal(signal.SIGTERM) is _exit_cleanly  # put back
