"""Tills ringing up the fault run's checkouts on PostgreSQL, through a database restart."""

from __future__ import annotations

import threading
import time
from functools import partial

from tests.faults.retry import UNAVAILABLE_FOR, retrying
from tests.faults.verdict import Place
from tests.faults.workload import checkout
from tillflow.shop.assembly import Shop


class Tills:
    """Threads ringing up checkouts at ``rate`` in all, each one retried (same id) until
    it is acknowledged; the acknowledgements, by checkout id."""

    def __init__(self, shop: Shop, rate: float, threads: int = 2) -> None:
        self.shop = shop
        self.interval = threads / rate
        self.acknowledged: dict[str, Place] = {}
        self.error: BaseException | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._next = 0
        self._threads = [
            threading.Thread(target=self._ring, args=(f"till-{n}",), daemon=True)
            for n in range(threads)
        ]

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=UNAVAILABLE_FOR + 10)
        if self.error is not None:
            raise AssertionError(f"a till failed: {self.error!r}") from self.error

    def _ring(self, till_id: str) -> None:
        due = time.monotonic()
        try:
            while not self._stop.is_set():
                with self._lock:
                    seq, self._next = self._next, self._next + 1
                command = checkout(seq, till_id)
                receipt, _ = retrying(partial(self.shop.sale.checkout_recorded, command))
                [place] = receipt.positions.items()
                with self._lock:
                    self.acknowledged[command.checkout_id] = place
                due += self.interval
                self._stop.wait(max(0.0, due - time.monotonic()))
        except BaseException as error:
            self.error = error
