"""Progress of the long ``python -m training`` commands: what each does now, how far it is, seconds so far.

Training code reports through the ``training.progress`` logger, so used as a library it prints nothing; the
CLI calls :func:`enable`, which prints each line on stderr (stdout keeps the commands' results) with the
seconds since the command started. Reporting reads counters only: no result depends on it.

Example
-------
>>> meter = Meter("folding history", total=5_000, noun="customers")
>>> meter.update(2_000)  # logs "folding history: 40% (2,000 of 5,000 customers)" (at most every 2 s)
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from collections.abc import Callable

log = logging.getLogger("training.progress")

# Real seconds between two lines of one counted step: often enough to see it move, rarely enough to read.
EVERY_S = 2.0


def step(message: str, *args: Any) -> None:
    """A step begins (``step("training send-time model")``); ``args`` fill ``%`` fields as in logging."""
    log.info(message, *args)


class Meter:
    """How far a counted step is: its first update, a line at most every ``every_s`` real seconds, its end.

    Parameters
    ----------
    what
        The step (``"reading events"``).
    total
        How many there are, if known: lines then give the share done.
    noun
        What is counted (``"lines"``, ``"customers"``).
    every_s
        Real seconds between two lines.
    """

    def __init__(self, what: str, total: int | None = None, noun: str = "", every_s: float = EVERY_S) -> None:
        self.what, self.total, self.noun, self.every_s = what, total, noun, every_s
        self.done = 0
        self._last: float | None = None
        self._shown = -1

    def update(self, done: int) -> None:
        """``done`` of them are done."""
        self.done = done
        now = time.monotonic()
        finished = self.total is not None and done >= self.total
        if self._last is None or now - self._last >= self.every_s or (finished and done != self._shown):
            self._last, self._shown = now, done
            log.info("%s", self.line())

    def close(self) -> None:
        """The step has ended: its count, if the last line did not give it."""
        if self.done != self._shown:
            self._shown = self.done
            log.info("%s", self.line())

    def line(self) -> str:
        noun = f" {self.noun}" if self.noun else ""
        if self.total:
            return f"{self.what}: {100 * self.done / self.total:.0f}% ({self.done:,} of {self.total:,}{noun})"
        return f"{self.what}: {self.done:,}{noun}"


def lightgbm_callback(what: str, rounds: int, every_s: float = EVERY_S) -> Callable[[Any], None]:
    """A ``lgb.train`` callback that reports ``"<what>: iteration 120/400"`` (it reads, never stops training)."""
    last: list[float] = []

    def report(env: Any) -> None:
        done, now = env.iteration + 1, time.monotonic()
        if not last or now - last[0] >= every_s or done == rounds:
            last[:] = [now]
            log.info("%s: iteration %d/%d", what, done, rounds)

    return report


class _Elapsed(logging.Formatter):
    def __init__(self) -> None:
        super().__init__()
        self.t0 = time.monotonic()

    def format(self, record: logging.LogRecord) -> str:
        return f"[{time.monotonic() - self.t0:7.1f} s] {record.getMessage()}"


def enable(stream: TextIO | None = None) -> logging.Handler:
    """Print progress on ``stream`` (stderr) from now on, each line with the seconds since this call.

    Returns
    -------
    logging.Handler
        The handler added to the ``training.progress`` logger (remove it to stop).
    """
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Elapsed())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    # Printed here only: with --verbose the root logger prints the rest, not these a second time.
    log.propagate = False
    return handler
