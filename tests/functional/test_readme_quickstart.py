"""The README's quick start, copied into a shell as a newcomer would, against the real local server."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from kairos_local.server import LocalProduct

README = Path(__file__).resolve().parents[2] / "README.md"
DEV_KEY = "kairos-local-dev-key"  # what `make serve` uses when KAIROS_API_KEY is not set


def quick_start() -> str:
    """The first bash block under the quick start heading."""
    text = README.read_text()
    section = text[text.index("## Quick start") :]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1)


@pytest.mark.skipif(not (shutil.which("bash") and shutil.which("curl")), reason="needs bash and curl")
def test_the_quick_start_reaches_a_message_in_the_outbox():
    script = quick_start()
    assert "http://127.0.0.1:8787" in script and DEV_KEY in script
    with LocalProduct(port=0, speed=1.0, api_key=DEV_KEY) as product:
        done = subprocess.run(
            ["bash", "-c", script.replace("http://127.0.0.1:8787", product.url)],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    # what the README says it prints
    assert "email ['ana@example.com'] On its way, Ana | Order A-1001 has shipped." in done.stdout, done.stdout
