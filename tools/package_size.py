"""Unzipped size of built Lambda packages per Python distribution, biggest first, against the 250 MB limit.

Usage::

    python tools/package_size.py .aws-sam/build/MlLayer [.aws-sam/build/KairosLayer .aws-sam/build/ScoreFunction]

A distribution's import package, its auditwheel ``<name>.libs`` folder and its ``.dist-info`` are counted together
(``numpy`` = ``numpy/`` + ``numpy.libs/`` + ``numpy-2.5.5.dist-info/``). A layer's ``python/`` folder is looked
into; anything else (``lib/libgomp.so.1``, a function's own modules) is listed by its path. Lambda's limit counts
the function and all its layers together: 250 MB = 262,144,000 bytes (the figure in Lambda's "Unzipped size must
be smaller than ..." error), so MB here means MiB.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from pathlib import Path

LAMBDA_UNZIPPED_LIMIT_MB = 250.0
MB = 1024 * 1024


def group_name(entry: str) -> str:
    """Distribution key of a top-level site entry: ``numpy.libs`` and ``numpy-2.5.5.dist-info`` -> ``numpy``."""
    name = re.sub(r"-[^-]*\.(dist|egg)-info$", "", entry)
    name = re.sub(r"\.libs$", "", name)
    name = re.sub(r"(\.cpython-[^.]*)?\.(py|so|pth)$", "", name)
    return re.sub(r"[-_.]+", "_", name).lower()


def _size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def package_sizes(build_dirs: list[Path]) -> Counter[str]:
    """Bytes per distribution (inside a ``python/`` folder) or per other top-level path, over all ``build_dirs``.

    Parameters
    ----------
    build_dirs : list[Path]
        Built layer or function directories (``.aws-sam/build/<LogicalId>``).

    Returns
    -------
    Counter[str]
        Size in bytes keyed by distribution name, or ``<dir>/<entry>`` for entries outside ``python/``.

    Example
    -------
    >>> package_sizes([Path(".aws-sam/build/MlLayer")]).most_common(1)  # doctest: +SKIP
    [('scipy', 93012345)]
    """
    sizes: Counter[str] = Counter()
    for build in build_dirs:
        for entry in sorted(build.iterdir()):
            if entry.name == "python" and entry.is_dir():
                for item in entry.iterdir():
                    sizes[group_name(item.name)] += _size(item)
            else:
                sizes[f"{build.name}/{entry.name}"] += _size(entry)
    return sizes


def render(sizes: Counter[str], limit_mb: float = LAMBDA_UNZIPPED_LIMIT_MB) -> str:
    """Table of sizes, biggest first, with the total and the headroom left under ``limit_mb``."""
    total = sum(sizes.values())
    width = max([len(k) for k in sizes] + [5])
    lines = [
        f"{name:<{width}}  {size / MB:8.1f} MB  {100 * size / total if total else 0:5.1f}%"
        for name, size in sizes.most_common()
    ]
    lines.append(f"{'total':<{width}}  {total / MB:8.1f} MB  of {limit_mb:g} MB ({limit_mb - total / MB:.1f} MB left)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="built layer or function directories")
    parser.add_argument("--limit-mb", type=float, default=LAMBDA_UNZIPPED_LIMIT_MB)
    args = parser.parse_args(argv)
    sizes = package_sizes(args.dirs)
    print(render(sizes, args.limit_mb))
    return 0 if sum(sizes.values()) <= args.limit_mb * MB else 1


if __name__ == "__main__":
    sys.exit(main())
