"""Test-only Lambda handler for the local runtime's concurrency tests: reports when it ran and what it saw."""

from __future__ import annotations

import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from kairos.core.config import settings

# What the function's settings were at its cold start (its module imported under its environment).
AT_IMPORT = settings().events_table


def lambda_handler(event: dict, context: object) -> dict:
    started = time.monotonic()
    time.sleep(float(event.get("hold_s", 0.0)))
    return {
        "started": started,
        "ended": time.monotonic(),
        "events_table": settings().events_table,
        "at_import": AT_IMPORT,
        "process_environment": os.environ.get("EVENTS_TABLE_NAME"),
        "in_a_pool": ThreadPoolExecutor(max_workers=1).submit(lambda: settings().events_table).result(),
        "module": __name__,
        "loaded": __name__ in sys.modules,
    }
