"""Clients acting at once: ``at_once(attempt, clients)`` runs ``attempt(i)`` in that many threads
released together, each on its own database connection, and collects what each returned or
raised (in finishing order)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from django.db import connections


def at_once(attempt: Callable[[int], Any], clients: int) -> tuple[list[Any], list[BaseException]]:
    barrier = threading.Barrier(clients)
    results: list[Any] = []
    raised: list[BaseException] = []
    lock = threading.Lock()

    def run(index: int) -> None:
        try:
            barrier.wait()
            result = attempt(index)
            with lock:
                results.append(result)
        except BaseException as error:
            with lock:
                raised.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(index,)) for index in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, raised
