"""Build steps of the ml layer that pip cannot do: vendor the OpenMP runtime, trim what is never imported.

``python layers/ml/layer.py vendor-libgomp WHEEL_DIR LIB_DIR``
    Copies the aarch64 ``libgomp`` that auditwheel bundled into a donor wheel (``*.libs/libgomp-<hash>.so.1.0.0``)
    to ``LIB_DIR/libgomp.so.1``. ``lib_lightgbm.so`` asks for ``libgomp.so.1``; ld.so finds a library on
    ``LD_LIBRARY_PATH`` (which has /opt/lib) by file name, so the renamed copy satisfies it.

``python layers/ml/layer.py trim SITE_DIR``
    Deletes test suites, type stubs, C/Cython sources and headers, console scripts and byte-code caches, then proves
    that no remaining module imports a deleted one (a static scan of every ``import`` in the kept ``.py`` files,
    function-level ones included). Prints the size before and after. Exits 1 if the scan finds a broken import.
"""

from __future__ import annotations

import argparse
import ast
import shutil
import sys
import zipfile
from pathlib import Path

# Directory names that hold test suites only; pytest collects them, library code never imports them.
TEST_DIRS = frozenset({"tests", "__pycache__"})
# Build-time or type-checker-only files: headers and sources for C extensions and Cython cimport, stubs, configs.
TRIM_SUFFIXES = frozenset({".pyi", ".pxd", ".pyx", ".pxi", ".c", ".cpp", ".h", ".hpp", ".f", ".f90", ".a"})
TRIM_NAMES = frozenset({"conftest.py"})
# Paths under the site directory that Lambda never uses: console scripts (with this host's shebang), and scipy's
# developer scripts that regenerate special-function tables (they import scipy's tests and mpmath).
TRIM_PATHS = ("bin", "scipy/special/_precompute")
MB = 1024 * 1024


def vendor_libgomp(wheel_dir: Path, lib_dir: Path) -> Path:
    """Extract the bundled ``libgomp`` from the one wheel in ``wheel_dir`` into ``lib_dir/libgomp.so.1``.

    Parameters
    ----------
    wheel_dir : Path
        Directory holding exactly one donor wheel (see ``libgomp.txt``).
    lib_dir : Path
        The layer's ``lib/`` directory (mounted at /opt/lib).

    Returns
    -------
    Path
        The written library.

    Raises
    ------
    SystemExit
        When there is not exactly one wheel, or it bundles no or several ``libgomp`` copies.
    """
    wheels = sorted(wheel_dir.glob("*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one donor wheel in {wheel_dir}, found {[w.name for w in wheels]}")
    with zipfile.ZipFile(wheels[0]) as whl:
        members = [
            n for n in whl.namelist() if n.split("/")[0].endswith(".libs") and n.split("/")[-1].startswith("libgomp")
        ]
        if len(members) != 1:
            raise SystemExit(f"{wheels[0].name}: expected one bundled libgomp, found {members}")
        lib_dir.mkdir(parents=True, exist_ok=True)
        target = lib_dir / "libgomp.so.1"
        target.write_bytes(whl.read(members[0]))
    target.chmod(0o755)
    print(f"vendored {wheels[0].name}:{members[0]} -> {target}")
    return target


def _tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _module_name(site: Path, path: Path) -> str | None:
    """Dotted module name of a ``.py`` or extension file under ``site``; None for anything else."""
    rel = path.relative_to(site)
    if path.suffix == ".py":
        parts = list(rel.with_suffix("").parts)
    elif path.suffix == ".so" and ".cpython-" in path.name:
        parts = [*rel.parent.parts, path.name.split(".", 1)[0]]
    else:
        return None
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts) if parts and all(p.isidentifier() for p in parts) else None


def _imports(site: Path, path: Path) -> set[str]:
    """Every module name an ``import`` statement anywhere in ``path`` may load (``from a import b`` gives a, a.b)."""
    module = _module_name(site, path) or ""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([node.module] if node.module else [])])
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def trim(site: Path) -> int:
    """Delete files Lambda never needs from ``site`` and verify no kept module imports a deleted one.

    Parameters
    ----------
    site : Path
        A ``pip install --target`` directory (the layer's ``python/``).

    Returns
    -------
    int
        0 when every import of a deleted module is gone with it, 1 otherwise (the offenders are printed).
    """
    before = _tree_size(site)
    doomed: list[Path] = [site / name for name in TRIM_PATHS if (site / name).exists()]
    for path in site.rglob("*"):
        if any(parent in doomed for parent in path.parents):
            continue
        if (path.is_dir() and path.name in TEST_DIRS) or (
            path.is_file() and (path.suffix in TRIM_SUFFIXES or path.name in TRIM_NAMES)
        ):
            doomed.append(path)
    removed_modules = {
        name
        for d in doomed
        for f in ([d] if d.is_file() else d.rglob("*"))
        if f.is_file() and (name := _module_name(site, f))
    }
    for path in doomed:
        shutil.rmtree(path) if path.is_dir() else path.unlink()

    broken: list[str] = []
    for py in sorted(site.rglob("*.py")):
        try:
            names = _imports(site, py)
        except SyntaxError as exc:  # e.g. scanning 3.12 sources with an older Python: cannot prove, so fail
            broken.append(f"{py.relative_to(site)} does not parse with Python {sys.version.split()[0]}: {exc.msg}")
            continue
        broken += [f"{py.relative_to(site)} imports {name}" for name in sorted(names & removed_modules)]
    after = _tree_size(site)
    print(f"trimmed {len(doomed)} paths: {before / MB:.1f} MB -> {after / MB:.1f} MB ({(before - after) / MB:.1f} MB)")
    if broken:
        print("kept modules import trimmed ones:", *broken, sep="\n  ")
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    vendor = sub.add_parser("vendor-libgomp", help="copy the donor wheel's libgomp to LIB_DIR/libgomp.so.1")
    vendor.add_argument("wheel_dir", type=Path)
    vendor.add_argument("lib_dir", type=Path)
    trimmer = sub.add_parser("trim", help="delete tests, stubs, sources; verify imports")
    trimmer.add_argument("site", type=Path)
    args = parser.parse_args(argv)
    if args.command == "vendor-libgomp":
        vendor_libgomp(args.wheel_dir, args.lib_dir)
        return 0
    return trim(args.site)


if __name__ == "__main__":
    sys.exit(main())
