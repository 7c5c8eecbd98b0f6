"""The API's contract, checked by schemathesis against a running API: ``make serve``, or a deployed stage.

Every check schemathesis has (conformance of statuses, content types, headers and bodies to the OpenAPI document;
valid requests accepted and invalid ones refused; 401 without a key; 405 with ``Allow`` for an undeclared method;
a deleted resource gone), in every phase (examples, coverage, fuzzing, and the stateful one that follows the
document's links). ``bench/contract.toml`` holds the exceptions, each with its reason; a warning fails the run
too. The script starts nothing: it takes the API's URL and an API key with every scope.

Usage::

    make serve                        # in another terminal; it prints the URL and the key
    python bench/contract.py [--url http://127.0.0.1:8787] [--key KEY] [--examples 30] [--seed N] [--workers 1]

The key defaults to ``$KAIROS_API_KEY``, else the local app's default key. The exit status is schemathesis's: 0
when nothing was found. A run of 30 examples per operation takes about 15 minutes on one worker (the coverage
phase of the journey and campaign bodies is most of it); ``--seed`` repeats a run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kairos_local.embedded import DEFAULT_LOCAL_API_KEY  # noqa: E402

CONFIG = ROOT / "bench" / "contract.toml"
PHASES = "examples,coverage,fuzzing,stateful"


def command(url: str, key: str, examples: int, seed: int | None, workers: int) -> list[str]:
    """The schemathesis command line: the settings of ``bench/contract.toml``, every phase, the key as a header.

    No ``--checks``: every check runs by default, and ``--checks all`` would override the exceptions the
    configuration makes for single operations.
    """
    cli = Path(sys.executable).with_name("schemathesis")
    args = [
        str(cli),
        "--config-file",
        str(CONFIG),
        "run",
        f"{url.rstrip('/')}/v1/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--phases",
        PHASES,
        "--max-examples",
        str(examples),
        "--workers",
        str(workers),
    ]
    return [*args, "--seed", str(seed)] if seed is not None else args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--url", default=f"http://127.0.0.1:{os.environ.get('PORT', '8787')}", help="the API's base URL"
    )
    parser.add_argument(
        "--key", default=os.environ.get("KAIROS_API_KEY", DEFAULT_LOCAL_API_KEY), help="an API key with every scope"
    )
    parser.add_argument("--examples", type=int, default=30, help="test cases per operation and phase")
    parser.add_argument("--seed", type=int, default=None, help="the seed of a run to repeat")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    return subprocess.run(command(args.url, args.key, args.examples, args.seed, args.workers), check=False).returncode


if __name__ == "__main__":
    raise SystemExit(main())
