"""The web console's files: static HTML, CSS and JavaScript shipped inside the package (``kairos/http/console/``).

The console is a client of the public API like any other: it runs in the browser, holds the API key in the
tab's ``sessionStorage`` and calls ``/v1/...`` with it. Serving it needs no key and no AWS call, only these files,
so the local server answers ``/console`` from here, and a deployment can copy the same folder to a bucket.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CONSOLE_DIR = Path(__file__).with_name("console")
PREFIX = "/console"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
    ".json": "application/json",
}
# The console's own files only: no inline script, nothing from another origin (it works offline, too).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


@dataclass(frozen=True)
class ConsoleAsset:
    """A console file as an HTTP answer: its status, headers and bytes."""

    status: int
    headers: dict[str, str]
    body: bytes


def console_asset(path: str) -> ConsoleAsset | None:
    """The answer to ``GET path`` when ``path`` is the console's, else ``None`` (the API answers it).

    Parameters
    ----------
    path
        The request's path, e.g. ``/console``, ``/console/`` or ``/console/js/app.js``.

    Returns
    -------
    ConsoleAsset or None
        ``/console`` redirects to ``/console/`` (so relative links resolve); ``/console/`` is ``index.html``; a
        name outside the folder, a hidden file or a missing one is a 404.

    Example
    -------
    >>> console_asset("/console/").headers["Content-Type"]
    'text/html; charset=utf-8'
    """
    if path == PREFIX:
        return ConsoleAsset(308, {"Location": f"{PREFIX}/", "Content-Type": "text/plain"}, b"")
    if not path.startswith(f"{PREFIX}/"):
        return None
    name = path[len(PREFIX) + 1 :] or "index.html"
    parts = name.split("/")
    root = CONSOLE_DIR.resolve()
    target = (CONSOLE_DIR / name).resolve()
    ok = (
        all(p and not p.startswith(".") for p in parts)
        and target.is_relative_to(root)
        and target.is_file()
        and target.suffix in CONTENT_TYPES
    )
    if not ok:
        return ConsoleAsset(404, {"Content-Type": "text/plain; charset=utf-8"}, b"not found")
    headers = {
        "Content-Type": CONTENT_TYPES[target.suffix],
        # Small files, read on a laptop: revalidate each load so an upgrade shows at once.
        "Cache-Control": "no-cache",
        "Content-Security-Policy": CSP,
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }
    return ConsoleAsset(200, headers, target.read_bytes())
