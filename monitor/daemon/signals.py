"""Stopping on SIGTERM and SIGINT: ``on_stop`` installs the handlers for a block and restores them."""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable, Iterator

__all__ = ["on_stop"]

log = logging.getLogger(__name__)


@contextlib.contextmanager
def on_stop(callback: Callable[[], None]) -> Iterator[None]:
    """Call ``callback`` on SIGTERM and SIGINT inside the block; restore the previous handlers after.

    Does nothing off the main thread (Python delivers signals to the main thread only).

    Example::

        with on_stop(daemon.stop):
            daemon.run()
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = (signal.SIGTERM, signal.SIGINT)
    previous = {sig: signal.getsignal(sig) for sig in signals}

    def handler(signum: int, _frame: object) -> None:
        log.info(
            "signal received, stopping", extra={"action": "signal", "signal": signal.Signals(signum).name}
        )
        callback()

    for sig in signals:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
