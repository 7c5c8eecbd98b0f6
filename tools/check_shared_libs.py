"""Check that built Lambda packages load on the python3.12 arm64 runtime, without running them there.

Usage::

    python tools/check_shared_libs.py .aws-sam/build/ScoreFunction .aws-sam/build/MlLayer .aws-sam/build/KairosLayer

Each directory is a built function (mounted at ``/var/task``) or layer (mounted at ``/opt``; detected by a top-level
``python/`` or ``lib/`` folder, or forced with ``--layer``/``--function``). For every ELF file the checker

- requires the expected machine (``EM_AARCH64`` unless ``--arch`` says otherwise);
- resolves each ``DT_NEEDED`` entry the way glibc's ``ld.so`` would on Lambda: ``DT_RPATH`` (only without
  ``DT_RUNPATH``), then Lambda's ``LD_LIBRARY_PATH``, then ``DT_RUNPATH`` (``$ORIGIN`` expanded), then the
  default directories. A library is found in the packages or in the runtime list of ``lambda_runtime_libs.toml``;
- checks every versioned symbol reference (``GLIBC_2.xx``, ``GLIBCXX_3.4.xx``, ``GOMP_4.5`` …): against the
  runtime's highest version for runtime libraries, against the library's own version definitions for packaged ones.

It also adds up the unzipped size against Lambda's 250 MB limit (function plus all layers; MB = MiB, the limit
being 262,144,000 bytes). The exit status is 1
with a list of every problem, 0 when the packages would load. The ELF reader is plain Python (no pyelftools).
"""

from __future__ import annotations

import argparse
import os
import struct
import sys
import tomllib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

DEFAULT_RUNTIME_FILE = Path(__file__).with_name("lambda_runtime_libs.toml")
LAMBDA_UNZIPPED_LIMIT_MB = 250.0
MB = 1024 * 1024

# e_machine values from the ELF gABI; the names are the ones `--arch` accepts.
MACHINES = {"aarch64": 183, "x86_64": 62}
MACHINE_NAMES = {**{v: k for k, v in MACHINES.items()}, 3: "i386", 40: "arm", 243: "riscv"}

TASK_ROOT = PurePosixPath("/var/task")
OPT = PurePosixPath("/opt")
# Where ld.so looks when nothing else matched, and every directory holding the runtime's own system libraries
# (/var/lang/lib is the Python build's). A needed name is looked up in the runtime list for these.
DEFAULT_LIB_DIRS = ("/lib64", "/usr/lib64")
RUNTIME_LIB_DIRS = frozenset({"/var/lang/lib", "/lib64", "/usr/lib64", "/lib", "/usr/lib"})

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NEEDED, DT_STRTAB, DT_STRSZ, DT_SONAME, DT_RPATH, DT_RUNPATH = 1, 5, 10, 14, 15, 29
DT_VERDEF, DT_VERDEFNUM, DT_VERNEED, DT_VERNEEDNUM = 0x6FFFFFFC, 0x6FFFFFFD, 0x6FFFFFFE, 0x6FFFFFFF
VER_FLG_BASE, VER_FLG_WEAK = 0x1, 0x2


class ElfError(ValueError):
    """A file starts with the ELF magic but its headers cannot be read."""


@dataclass
class ElfInfo:
    """What the dynamic loader reads from one ELF file."""

    machine: int
    elf_class: int
    needed: list[str] = field(default_factory=list)
    soname: str | None = None
    rpath: list[str] = field(default_factory=list)
    runpath: list[str] = field(default_factory=list)
    # file name (as in DT_NEEDED) -> version names required from it (weak references left out)
    version_needs: dict[str, set[str]] = field(default_factory=dict)
    version_defs: set[str] = field(default_factory=set)


def is_elf(path: Path) -> bool:
    """Return True when ``path`` is a regular file starting with the ELF magic."""
    try:
        with path.open("rb") as fh:
            return fh.read(4) == b"\x7fELF"
    except OSError:
        return False


def read_elf(path: Path) -> ElfInfo:
    """Read the machine, dynamic section and symbol-version tables of an ELF file.

    Parameters
    ----------
    path : Path
        A 32- or 64-bit, little- or big-endian ELF file.

    Returns
    -------
    ElfInfo
        Needed libraries, SONAME, RPATH/RUNPATH, required and defined symbol versions.

    Raises
    ------
    ElfError
        When the headers point outside the file or the class/encoding is unknown.

    Example
    -------
    >>> read_elf(Path("lib_lightgbm.so")).needed  # doctest: +SKIP
    ['libdl.so.2', 'libstdc++.so.6', 'libm.so.6', 'libgomp.so.1', ...]
    """
    data = path.read_bytes()
    try:
        return _parse_elf(data)
    except (struct.error, IndexError, UnicodeDecodeError) as exc:
        raise ElfError(f"{path}: truncated or malformed ELF ({exc})") from exc


def _parse_elf(data: bytes) -> ElfInfo:
    if data[:4] != b"\x7fELF":
        raise ElfError("not an ELF file")
    elf_class, encoding = data[4], data[5]
    if elf_class not in (1, 2) or encoding not in (1, 2):
        raise ElfError(f"unknown ELF class {elf_class} or encoding {encoding}")
    end = "<" if encoding == 1 else ">"
    is64 = elf_class == 2
    machine = struct.unpack_from(end + "H", data, 18)[0]
    if is64:
        phoff, phentsize, phnum = struct.unpack_from(end + "Q", data, 32)[0], *struct.unpack_from(end + "HH", data, 54)
    else:
        phoff, phentsize, phnum = struct.unpack_from(end + "I", data, 28)[0], *struct.unpack_from(end + "HH", data, 42)
    info = ElfInfo(machine=machine, elf_class=elf_class)

    loads: list[tuple[int, int, int]] = []  # (vaddr, filesz, offset)
    dynamic: tuple[int, int] | None = None  # (offset, size)
    for i in range(phnum):
        base = phoff + i * phentsize
        if is64:
            p_type, _flags, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(end + "IIQQQQ", data, base)
        else:
            p_type, p_offset, p_vaddr, _paddr, p_filesz = struct.unpack_from(end + "IIIII", data, base)
        if p_type == PT_LOAD:
            loads.append((p_vaddr, p_filesz, p_offset))
        elif p_type == PT_DYNAMIC:
            dynamic = (p_offset, p_filesz)
    if dynamic is None:  # static executable or relocatable object: nothing for ld.so to resolve
        return info

    def offset_of(vaddr: int) -> int:
        for start, size, off in loads:
            if start <= vaddr < start + size:
                return vaddr - start + off
        raise ElfError(f"address {vaddr:#x} is in no PT_LOAD segment")

    entry_fmt = end + ("qQ" if is64 else "iI")
    entry_size = struct.calcsize(entry_fmt)
    tags: dict[int, list[int]] = {}
    for pos in range(dynamic[0], dynamic[0] + dynamic[1], entry_size):
        tag, val = struct.unpack_from(entry_fmt, data, pos)
        if tag == 0:
            break
        tags.setdefault(tag, []).append(val)
    if DT_STRTAB not in tags:
        raise ElfError("dynamic section without DT_STRTAB")
    strtab = offset_of(tags[DT_STRTAB][0])

    def string(off: int) -> str:
        stop = data.index(b"\0", strtab + off)
        return data[strtab + off : stop].decode()

    info.needed = [string(v) for v in tags.get(DT_NEEDED, [])]
    info.soname = string(tags[DT_SONAME][0]) if DT_SONAME in tags else None
    info.rpath = [p for v in tags.get(DT_RPATH, []) for p in string(v).split(":") if p]
    info.runpath = [p for v in tags.get(DT_RUNPATH, []) for p in string(v).split(":") if p]

    if DT_VERNEED in tags:
        pos = offset_of(tags[DT_VERNEED][0])
        for _ in range(tags.get(DT_VERNEEDNUM, [0])[0]):
            _ver, cnt, file_off, aux, nxt = struct.unpack_from(end + "HHIII", data, pos)
            wanted = info.version_needs.setdefault(string(file_off), set())
            apos = pos + aux
            for _ in range(cnt):
                _hash, flags, _other, name_off, anext = struct.unpack_from(end + "IHHII", data, apos)
                if not flags & VER_FLG_WEAK:
                    wanted.add(string(name_off))
                apos += anext
            if not nxt:
                break
            pos += nxt
    if DT_VERDEF in tags:
        pos = offset_of(tags[DT_VERDEF][0])
        for _ in range(tags.get(DT_VERDEFNUM, [0])[0]):
            _ver, flags, _ndx, cnt, _hash, aux, nxt = struct.unpack_from(end + "HHHHIII", data, pos)
            if cnt and not flags & VER_FLG_BASE:  # the base entry only repeats the SONAME
                info.version_defs.add(string(struct.unpack_from(end + "I", data, pos + aux)[0]))
            if not nxt:
                break
            pos += nxt
    return info


@dataclass(frozen=True)
class RuntimeLibs:
    """Libraries the Lambda runtime provides, with the highest symbol version of each version family."""

    name: str
    ld_library_path: tuple[str, ...]
    sonames: frozenset[str]
    max_versions: dict[str, dict[str, tuple[int, ...]]]  # soname -> {"GLIBC": (2, 34)}


def load_runtime(path: Path) -> RuntimeLibs:
    """Read the runtime description (see ``lambda_runtime_libs.toml`` for the format and its sources)."""
    doc = tomllib.loads(path.read_text())
    sonames: set[str] = set()
    max_versions: dict[str, dict[str, tuple[int, ...]]] = {}
    for group in doc["provides"]:
        limits = {family: _version_tuple(v) for family, v in group.get("max_versions", {}).items()}
        for soname in group["sonames"]:
            sonames.add(soname)
            max_versions[soname] = limits
    return RuntimeLibs(
        name=doc["runtime"]["name"],
        ld_library_path=tuple(doc["runtime"]["ld_library_path"]),
        sonames=frozenset(sonames),
        max_versions=max_versions,
    )


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split("."))


def _split_version(name: str) -> tuple[str, tuple[int, ...]] | None:
    """``GLIBCXX_3.4.29`` -> ``("GLIBCXX", (3, 4, 29))``; None for names such as ``GLIBC_PRIVATE``."""
    family, _, number = name.rpartition("_")
    try:
        return family, _version_tuple(number)
    except ValueError:
        return None


@dataclass
class Package:
    """One built directory and where Lambda mounts it."""

    path: Path
    mount: PurePosixPath

    @property
    def kind(self) -> str:
        return "layer" if self.mount == OPT else "function"


def detect_package(path: Path) -> Package:
    """A directory with a top-level ``python/`` or ``lib/`` folder is a layer (mounted at /opt), else a function."""
    is_layer = (path / "python").is_dir() or ((path / "lib").is_dir() and not any(path.glob("*.py")))
    return Package(path, OPT if is_layer else TASK_ROOT)


@dataclass
class Report:
    """Problems found by :func:`check` (each a readable line) and what was resolved where."""

    missing: list[str] = field(default_factory=list)
    wrong_arch: list[str] = field(default_factory=list)
    versions: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    size_problem: str | None = None
    elf_count: int = 0
    total_bytes: int = 0
    bundled_use: dict[str, set[str]] = field(default_factory=dict)  # packaged lib -> users
    runtime_use: dict[str, set[str]] = field(default_factory=dict)  # runtime soname -> users
    highest: dict[str, tuple[int, ...]] = field(default_factory=dict)  # version family -> highest required

    @property
    def ok(self) -> bool:
        return not (self.missing or self.wrong_arch or self.versions or self.unreadable or self.size_problem)


RUNTIME = "<runtime>"


def check(
    packages: list[Package],
    runtime: RuntimeLibs,
    arch: str = "aarch64",
    limit_mb: float = LAMBDA_UNZIPPED_LIMIT_MB,
) -> Report:
    """Check every ELF file in ``packages`` as it would be loaded on the Lambda runtime.

    Parameters
    ----------
    packages : list[Package]
        Built function and layer directories with their mount points; layers are merged into /opt in order.
    runtime : RuntimeLibs
        The runtime's libraries and ``LD_LIBRARY_PATH``.
    arch : str
        Expected machine, a key of ``MACHINES``.
    limit_mb : float
        Unzipped size limit for all packages together.

    Returns
    -------
    Report
        Problems found (``report.ok`` when none) and what was resolved where.
    """
    report = Report()
    files: dict[PurePosixPath, Path] = {}  # Lambda path -> file here; a later layer overrides an earlier one
    for pkg in packages:
        for root, _dirs, names in os.walk(pkg.path):
            for name in names:
                real = Path(root) / name
                if real.is_file():
                    report.total_bytes += real.stat().st_size
                    files[pkg.mount / real.relative_to(pkg.path).as_posix()] = real
    limit = limit_mb * MB
    if report.total_bytes > limit:
        report.size_problem = (
            f"{report.total_bytes / MB:.1f} MB unzipped exceeds the {limit_mb:g} MB limit by "
            f"{(report.total_bytes - limit) / MB:.1f} MB"
        )

    elves: dict[PurePosixPath, ElfInfo] = {}
    for vpath, real in sorted(files.items()):
        if not is_elf(real):
            continue
        report.elf_count += 1
        try:
            elves[vpath] = read_elf(real)
        except ElfError as exc:
            report.unreadable.append(str(exc))
    expected = MACHINES[arch]
    for vpath, info in elves.items():
        if info.machine != expected or info.elf_class != 2:
            got = MACHINE_NAMES.get(info.machine, f"e_machine {info.machine}")
            report.wrong_arch.append(f"{vpath}: {got}, {32 * info.elf_class}-bit (expected {arch}, 64-bit)")

    for vpath, info in elves.items():
        resolved: dict[str, PurePosixPath | str] = {}
        for needed in info.needed:
            where = _resolve(needed, vpath, info, files, runtime)
            if where is None:
                searched = ", ".join(_search_dirs(vpath, info, runtime))
                report.missing.append(f"{needed} needed by {vpath} (searched {searched})")
                continue
            resolved[needed] = where
            if where == RUNTIME:
                report.runtime_use.setdefault(needed, set()).add(str(vpath))
            else:
                report.bundled_use.setdefault(str(where), set()).add(str(vpath))
        for lib, wanted in info.version_needs.items():
            where = resolved.get(lib)
            if where is None:
                continue  # already reported as missing
            if where == RUNTIME:
                limits = runtime.max_versions.get(lib, {})
                for version in sorted(wanted):
                    parsed = _split_version(version)
                    if parsed is None or parsed[0] not in limits:
                        report.versions.append(
                            f"{vpath} needs {version} from runtime {lib}, which the runtime list does not vouch for"
                        )
                        continue
                    family, number = parsed
                    report.highest[family] = max(report.highest.get(family, ()), number)
                    if number > limits[family]:
                        top = ".".join(map(str, limits[family]))
                        report.versions.append(f"{vpath} needs {version} from {lib}; the runtime has {family} {top}")
            else:
                provider = elves.get(where) if isinstance(where, PurePosixPath) else None
                defined = provider.version_defs if provider else set()
                for version in sorted(wanted - defined):
                    report.versions.append(f"{vpath} needs {version} from {lib}, but {where} does not define it")
    return report


def _expand(entry: str, origin: PurePosixPath) -> str:
    # $ORIGIN is the directory of the object that carries the RPATH/RUNPATH (ld.so(8)).
    return entry.replace("${ORIGIN}", str(origin)).replace("$ORIGIN", str(origin))


def _search_dirs(vpath: PurePosixPath, info: ElfInfo, runtime: RuntimeLibs) -> list[str]:
    # glibc ld.so order: DT_RPATH (ignored when DT_RUNPATH is set), LD_LIBRARY_PATH, DT_RUNPATH, defaults.
    origin = vpath.parent
    dirs = [] if info.runpath else [_expand(p, origin) for p in info.rpath]
    dirs += list(runtime.ld_library_path)
    dirs += [_expand(p, origin) for p in info.runpath]
    dirs += list(DEFAULT_LIB_DIRS)
    return [os.path.normpath(d) for d in dirs]


def _resolve(
    needed: str,
    vpath: PurePosixPath,
    info: ElfInfo,
    files: dict[PurePosixPath, Path],
    runtime: RuntimeLibs,
) -> PurePosixPath | str | None:
    if "/" in needed:
        target = PurePosixPath(os.path.normpath(vpath.parent / needed))
        return target if target in files else None
    for directory in _search_dirs(vpath, info, runtime):
        if directory in RUNTIME_LIB_DIRS:
            if needed in runtime.sonames:
                return RUNTIME
            continue
        candidate = PurePosixPath(directory) / needed
        if candidate in files:
            return candidate
    return None


def render(report: Report, packages: list[Package], runtime: RuntimeLibs, arch: str, limit_mb: float) -> str:
    """Human-readable summary; problems first."""
    lines = []
    for title, items in (
        ("missing shared libraries", report.missing),
        (f"not {arch}", report.wrong_arch),
        ("symbol versions", report.versions),
        ("unreadable ELF files", report.unreadable),
    ):
        if items:
            lines.append(f"FAIL {title} ({len(items)}):")
            lines += [f"  {item}" for item in items]
    if report.size_problem:
        lines.append(f"FAIL size: {report.size_problem}")
    dirs = ", ".join(f"{p.path} ({p.kind} at {p.mount})" for p in packages)
    lines.append(f"checked {report.elf_count} ELF files in {dirs}")
    if report.runtime_use:
        lines.append(f"from the {runtime.name} runtime: " + ", ".join(sorted(report.runtime_use)))
    for lib, users in sorted(report.bundled_use.items()):
        lines.append(f"packaged {lib} <- needed by {len(users)} file(s)")
    if report.highest:
        lines.append(
            "highest runtime symbol versions needed: "
            + ", ".join(f"{k}_{'.'.join(map(str, v))}" for k, v in sorted(report.highest.items()))
        )
    headroom = limit_mb - report.total_bytes / MB
    lines.append(f"size: {report.total_bytes / MB:.1f} MB unzipped of {limit_mb:g} MB ({headroom:.1f} MB headroom)")
    lines.append("OK" if report.ok else "FAILED")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="*", type=Path, help="built function or layer directories (auto-detected)")
    parser.add_argument("--layer", action="append", type=Path, default=[], help="a layer directory (mounted at /opt)")
    parser.add_argument("--function", action="append", type=Path, default=[], help="a function directory")
    parser.add_argument("--runtime", type=Path, default=DEFAULT_RUNTIME_FILE, help="runtime library list (TOML)")
    parser.add_argument("--arch", choices=sorted(MACHINES), default="aarch64")
    parser.add_argument("--limit-mb", type=float, default=LAMBDA_UNZIPPED_LIMIT_MB)
    args = parser.parse_args(argv)

    packages = [detect_package(d) for d in args.dirs]
    packages += [Package(d, OPT) for d in args.layer] + [Package(d, TASK_ROOT) for d in args.function]
    if not packages:
        parser.error("give at least one directory")
    for pkg in packages:
        if not pkg.path.is_dir():
            parser.error(f"not a directory: {pkg.path}")
    if sum(p.kind == "function" for p in packages) > 1:
        parser.error("at most one function directory: Lambda mounts one function at /var/task")
    runtime = load_runtime(args.runtime)
    report = check(packages, runtime, arch=args.arch, limit_mb=args.limit_mb)
    print(render(report, packages, runtime, args.arch, args.limit_mb))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
