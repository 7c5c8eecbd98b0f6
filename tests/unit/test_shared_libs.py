"""Packaging checks: the ELF dependency checker, the size report and the ml layer's trim/vendor steps.

Fixture libraries are compiled here with the host C compiler (so for the host architecture): ``libmadeup.so.1``
with symbol versions MADEUP_1.0 and MADEUP_2.0, an old build with MADEUP_1.0 only, and ``libuser.so`` that needs
``madeup_two@MADEUP_2.0`` (and ``puts`` from glibc). The runtime list is a small TOML written per test.
"""

from __future__ import annotations

import importlib.util
import platform
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def _load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module  # dataclasses look the module up while the class body runs
    spec.loader.exec_module(module)
    return module


csl = _load(ROOT / "tools" / "check_shared_libs.py")
package_size = _load(ROOT / "tools" / "package_size.py")
layer = _load(ROOT / "layers" / "ml" / "layer.py")

HOST_ARCH = {"x86_64": "x86_64", "amd64": "x86_64", "aarch64": "aarch64", "arm64": "aarch64"}.get(platform.machine())
OTHER_ARCH = {"x86_64": "aarch64", "aarch64": "x86_64"}.get(HOST_ARCH or "")
CC = shutil.which("gcc") or shutil.which("cc")

MADEUP_C = "int madeup_one(void) { return 1; }\nint madeup_two(void) { return 2; }\n"
MADEUP_MAP = "MADEUP_1.0 { global: madeup_one; local: *; };\nMADEUP_2.0 { global: madeup_two; } MADEUP_1.0;\n"
OLD_C = "int madeup_one(void) { return 1; }\n"
OLD_MAP = "MADEUP_1.0 { global: madeup_one; local: *; };\n"
USER_C = '#include <stdio.h>\nint madeup_two(void);\nint user(void) { puts("user"); return madeup_two(); }\n'


@pytest.fixture(scope="session")
def libs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Compile the fixture libraries once: new/old libmadeup.so.1, libuser.so, libuser_runpath.so."""
    if CC is None or HOST_ARCH is None:
        pytest.skip("needs a C compiler on x86_64 or aarch64")
    src = tmp_path_factory.mktemp("elf-src")
    for name, text in {
        "madeup.c": MADEUP_C,
        "madeup.map": MADEUP_MAP,
        "old.c": OLD_C,
        "old.map": OLD_MAP,
        "user.c": USER_C,
    }.items():
        (src / name).write_text(text)
    (src / "new").mkdir()
    (src / "old").mkdir()
    soname = ["-Wl,-soname,libmadeup.so.1"]

    def cc(*args: str) -> None:
        subprocess.run([CC, "-shared", "-fPIC", *args], cwd=src, check=True, capture_output=True)

    cc("-o", "new/libmadeup.so.1", "madeup.c", *soname, "-Wl,--version-script=madeup.map")
    cc("-o", "old/libmadeup.so.1", "old.c", *soname, "-Wl,--version-script=old.map")
    cc("-o", "libuser.so", "user.c", "-Lnew", "-l:libmadeup.so.1")
    cc(
        "-o",
        "libuser_runpath.so",
        "user.c",
        "-Lnew",
        "-l:libmadeup.so.1",
        "-Wl,--enable-new-dtags,-rpath,$ORIGIN/../pkg.libs",
    )
    return {
        "madeup": src / "new" / "libmadeup.so.1",
        "madeup_old": src / "old" / "libmadeup.so.1",
        "user": src / "libuser.so",
        "user_runpath": src / "libuser_runpath.so",
    }


def runtime_file(tmp_path: Path, glibc_max: str = "2.99", extra: tuple[str, ...] = ()) -> Path:
    sonames = ["libc.so.6", "libm.so.6", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1", *extra]
    path = tmp_path / "runtime.toml"
    path.write_text(
        '[runtime]\nname = "test-runtime"\n'
        'ld_library_path = ["/var/lang/lib", "/lib64", "/usr/lib64", "/var/task", "/var/task/lib", "/opt/lib"]\n'
        f"[[provides]]\nsonames = {sonames!r}\nmax_versions = {{ GLIBC = {glibc_max!r} }}\n"
    )
    return path


def place(root: Path, files: dict[str, Path]) -> Path:
    """Copy ``{relative path: source}`` into ``root`` (a built layer or function directory)."""
    for rel, source in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, root / rel)
    return root


def run_check(tmp_path: Path, *packages: object, glibc_max: str = "2.99", extra: tuple[str, ...] = (), **kw: object):
    runtime = csl.load_runtime(runtime_file(tmp_path, glibc_max, extra))
    return csl.check(list(packages), runtime, arch=kw.pop("arch", HOST_ARCH), **kw)


def test_read_elf_matches_readelf(libs: dict[str, Path]) -> None:
    # GIVEN a library with a RUNPATH and a versioned dependency, and binutils' own reading of it
    if shutil.which("readelf") is None:
        pytest.skip("readelf not installed")
    dynamic = subprocess.run(["readelf", "-dW", libs["user_runpath"]], capture_output=True, text=True).stdout

    # WHEN the pure-Python reader parses it
    info = csl.read_elf(libs["user_runpath"])

    # THEN it sees the same DT_NEEDED and DT_RUNPATH, and the version needed from libmadeup
    assert info.needed == re.findall(r"\(NEEDED\).*\[(.*)\]", dynamic)
    assert info.runpath == re.findall(r"\(RUNPATH\).*\[(.*)\]", dynamic) == ["$ORIGIN/../pkg.libs"]
    assert info.version_needs["libmadeup.so.1"] == {"MADEUP_2.0"}
    assert csl.read_elf(libs["madeup"]).version_defs == {"MADEUP_1.0", "MADEUP_2.0"}
    assert csl.read_elf(libs["madeup"]).soname == "libmadeup.so.1"


def test_check_library_in_opt_lib_passes(tmp_path: Path, libs: dict[str, Path]) -> None:
    # GIVEN a layer whose extension needs libmadeup.so.1, shipped in the layer's lib/ (= /opt/lib)
    built = place(tmp_path / "layer", {"python/pkg/libuser.so": libs["user"], "lib/libmadeup.so.1": libs["madeup"]})

    # WHEN checked
    report = run_check(tmp_path, csl.Package(built, csl.OPT))

    # THEN it loads, and libmadeup is resolved to /opt/lib
    assert report.ok, report
    assert report.bundled_use == {"/opt/lib/libmadeup.so.1": {"/opt/python/pkg/libuser.so"}}


def test_check_missing_library_names_it_and_its_user(tmp_path: Path, libs: dict[str, Path], capsys) -> None:
    # GIVEN the same layer without libmadeup.so.1
    built = place(tmp_path / "layer", {"python/pkg/libuser.so": libs["user"]})

    # WHEN the CLI checks it
    status = csl.main(["--layer", str(built), "--runtime", str(runtime_file(tmp_path)), "--arch", HOST_ARCH])

    # THEN it fails with the library and the file that needs it
    out = capsys.readouterr().out
    assert status == 1
    assert "libmadeup.so.1 needed by /opt/python/pkg/libuser.so" in out
    assert out.rstrip().endswith("FAILED")


def test_check_runpath_origin_finds_auditwheel_libs_dir(tmp_path: Path, libs: dict[str, Path]) -> None:
    # GIVEN an extension with RUNPATH $ORIGIN/../pkg.libs and the library in python/pkg.libs (auditwheel layout)
    built = place(
        tmp_path / "layer",
        {"python/pkg/libuser_runpath.so": libs["user_runpath"], "python/pkg.libs/libmadeup.so.1": libs["madeup"]},
    )

    # WHEN checked
    report = run_check(tmp_path, csl.Package(built, csl.OPT))

    # THEN $ORIGIN is expanded and the library found
    assert report.ok, report.missing
    assert "/opt/python/pkg.libs/libmadeup.so.1" in report.bundled_use


def test_check_without_runpath_does_not_search_libs_dir(tmp_path: Path, libs: dict[str, Path]) -> None:
    # GIVEN an extension with no RUNPATH next to a pkg.libs folder holding its dependency
    built = place(
        tmp_path / "layer", {"python/pkg/libuser.so": libs["user"], "python/pkg.libs/libmadeup.so.1": libs["madeup"]}
    )

    # WHEN checked
    report = run_check(tmp_path, csl.Package(built, csl.OPT))

    # THEN ld.so would not look there: missing
    assert [m.split()[0] for m in report.missing] == ["libmadeup.so.1"]


def test_check_function_lib_dir_serves_layer(tmp_path: Path, libs: dict[str, Path]) -> None:
    # GIVEN the library in the function's lib/ (= /var/task/lib) and its user in a layer
    function = place(tmp_path / "fn", {"app.py": Path(__file__), "lib/libmadeup.so.1": libs["madeup"]})
    built = place(tmp_path / "layer", {"python/pkg/libuser.so": libs["user"]})

    # WHEN both are checked together
    report = run_check(tmp_path, csl.Package(function, csl.TASK_ROOT), csl.Package(built, csl.OPT))

    # THEN /var/task/lib on LD_LIBRARY_PATH satisfies it
    assert report.ok, report
    assert "/var/task/lib/libmadeup.so.1" in report.bundled_use


def test_check_runtime_provided_library_passes(tmp_path: Path, libs: dict[str, Path]) -> None:
    # GIVEN a layer without libmadeup, and a runtime that lists it
    built = place(tmp_path / "layer", {"python/pkg/libuser.so": libs["user"]})

    # WHEN checked
    report = run_check(tmp_path, csl.Package(built, csl.OPT), extra=("libmadeup.so.1",))

    # THEN it resolves to the runtime, whose list vouches for no MADEUP versions: that is reported
    assert not report.missing
    assert "libmadeup.so.1" in report.runtime_use
    assert report.versions == [
        "/opt/python/pkg/libuser.so needs MADEUP_2.0 from runtime libmadeup.so.1, which the runtime list does not "
        "vouch for"
    ]


def test_check_reports_wrong_architecture(tmp_path: Path, libs: dict[str, Path]) -> None:
    # GIVEN a complete layer built for this host
    built = place(tmp_path / "layer", {"python/pkg/libuser.so": libs["user"], "lib/libmadeup.so.1": libs["madeup"]})

    # WHEN checked for the other architecture (aarch64 on an x86_64 host)
    report = run_check(tmp_path, csl.Package(built, csl.OPT), arch=OTHER_ARCH)

    # THEN every ELF file is reported with what it really is
    assert len(report.wrong_arch) == 2
    assert all(f"{HOST_ARCH}, 64-bit (expected {OTHER_ARCH}" in line for line in report.wrong_arch)
    assert not report.ok


def test_check_reports_version_missing_from_packaged_library(tmp_path: Path, libs: dict[str, Path]) -> None:
    # GIVEN libuser (needs MADEUP_2.0) shipped with an old libmadeup that defines MADEUP_1.0 only
    built = place(tmp_path / "layer", {"python/pkg/libuser.so": libs["user"], "lib/libmadeup.so.1": libs["madeup_old"]})

    # WHEN checked
    report = run_check(tmp_path, csl.Package(built, csl.OPT))

    # THEN the missing symbol version is named
    assert report.versions == [
        "/opt/python/pkg/libuser.so needs MADEUP_2.0 from libmadeup.so.1, but /opt/lib/libmadeup.so.1 does not "
        "define it"
    ]


@pytest.mark.parametrize(("glibc_max", "ok"), [("2.0", False), ("2.99", True)])
def test_check_glibc_versions_against_runtime(tmp_path: Path, libs: dict[str, Path], glibc_max: str, ok: bool) -> None:
    # GIVEN a complete layer; every glibc build's libraries need at least GLIBC_2.2.5 (x86_64) or 2.17 (aarch64)
    built = place(tmp_path / "layer", {"python/pkg/libuser.so": libs["user"], "lib/libmadeup.so.1": libs["madeup"]})

    # WHEN checked against a runtime whose glibc is older or newer than that
    report = run_check(tmp_path, csl.Package(built, csl.OPT), glibc_max=glibc_max)

    # THEN only the older runtime fails, naming the GLIBC version
    assert report.ok is ok
    failing = r"needs GLIBC_2\.[\d.]+ from libc\.so\.6; the runtime has GLIBC 2\.0$"
    assert bool(report.versions) is not ok
    assert all(re.search(failing, v) for v in report.versions)
    assert report.highest["GLIBC"] >= (2, 2)


def test_check_reports_size_over_limit(tmp_path: Path, libs: dict[str, Path]) -> None:
    # GIVEN a layer of a few kB
    built = place(tmp_path / "layer", {"python/pkg/libuser.so": libs["user"], "lib/libmadeup.so.1": libs["madeup"]})

    # WHEN the limit is 1 kB
    report = run_check(tmp_path, csl.Package(built, csl.OPT), limit_mb=1 / 1024)

    # THEN the size is the only problem
    assert report.size_problem and "exceeds the 0.000976562 MB limit" in report.size_problem
    assert not (report.missing or report.versions or report.wrong_arch)


def test_detect_package_mounts_layers_at_opt(tmp_path: Path) -> None:
    # GIVEN a layer build (python/) and a function build (app.py)
    (tmp_path / "layer" / "python").mkdir(parents=True)
    (tmp_path / "fn").mkdir()
    (tmp_path / "fn" / "app.py").write_text("")

    # WHEN detected / THEN mounted where Lambda puts them
    assert csl.detect_package(tmp_path / "layer").mount == csl.OPT
    assert csl.detect_package(tmp_path / "fn").mount == csl.TASK_ROOT


def test_runtime_file_lists_glibc_but_not_libgomp() -> None:
    # GIVEN the repository's python3.12 runtime list
    runtime = csl.load_runtime(csl.DEFAULT_RUNTIME_FILE)

    # THEN glibc 2.34 and GCC 11's C++ runtime are there, OpenMP is not, and /opt/lib is searched
    assert {"libc.so.6", "libm.so.6", "ld-linux-aarch64.so.1", "libstdc++.so.6", "libgcc_s.so.1"} <= runtime.sonames
    assert "libgomp.so.1" not in runtime.sonames
    assert runtime.max_versions["libc.so.6"]["GLIBC"] == (2, 34)
    assert runtime.max_versions["libstdc++.so.6"]["GLIBCXX"] == (3, 4, 29)
    assert "/opt/lib" in runtime.ld_library_path


def test_package_sizes_group_a_distribution_and_its_libs(tmp_path: Path) -> None:
    # GIVEN a layer with numpy's package, auditwheel libs and metadata, plus lib/libgomp.so.1
    built = tmp_path / "MlLayer"
    for rel, size in {
        "python/numpy/core.so": 3000,
        "python/numpy.libs/libopenblas.so": 5000,
        "python/numpy-2.5.5.dist-info/METADATA": 100,
        "python/narwhals/__init__.py": 2000,
        "lib/libgomp.so.1": 400,
    }.items():
        (built / rel).parent.mkdir(parents=True, exist_ok=True)
        (built / rel).write_bytes(b"x" * size)

    # WHEN sized
    sizes = package_size.package_sizes([built])

    # THEN numpy's three parts are one entry, biggest first, and lib/ is listed by path
    assert sizes.most_common() == [("numpy", 8100), ("narwhals", 2000), ("MlLayer/lib", 400)]
    assert "total" in package_size.render(sizes)


def test_trim_removes_tests_and_stubs_and_keeps_imports(tmp_path: Path, capsys) -> None:
    # GIVEN a site dir with a package, its tests, a stub, a header and a console script
    site = tmp_path / "python"
    for rel, text in {
        "pkg/__init__.py": "from . import core\nfrom .sub import helper\n",
        "pkg/core.py": "import pkg.sub.helper\n",
        "pkg/sub/__init__.py": "",
        "pkg/sub/helper.py": "",
        "pkg/tests/__init__.py": "",
        "pkg/tests/test_core.py": "import pkg.core\n",
        "pkg/core.pyi": "",
        "pkg/include/api.h": "",
        "bin/pkg-cli": "#!/usr/bin/python3\n",
    }.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)

    # WHEN trimmed
    status = layer.trim(site)

    # THEN only the library remains and the import scan passes
    assert status == 0, capsys.readouterr().out
    kept = sorted(p.relative_to(site).as_posix() for p in site.rglob("*") if p.is_file())
    assert kept == ["pkg/__init__.py", "pkg/core.py", "pkg/sub/__init__.py", "pkg/sub/helper.py"]


def test_trim_fails_when_kept_module_imports_a_trimmed_one(tmp_path: Path, capsys) -> None:
    # GIVEN library code that imports from its tests package (as scipy's _precompute scripts do)
    site = tmp_path / "python"
    for rel, text in {
        "pkg/__init__.py": "",
        "pkg/data.py": "def load():\n    from .tests.fixtures import TABLE\n    return TABLE\n",
        "pkg/tests/__init__.py": "",
        "pkg/tests/fixtures.py": "TABLE = 1\n",
    }.items():
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        (site / rel).write_text(text)

    # WHEN trimmed
    status = layer.trim(site)

    # THEN the broken import is reported, even though it sits inside a function
    assert status == 1
    assert "pkg/data.py imports pkg.tests.fixtures" in capsys.readouterr().out


def test_vendor_libgomp_copies_the_bundled_library(tmp_path: Path) -> None:
    # GIVEN a donor wheel bundling one libgomp under its .libs folder
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "donor-1.0-cp312-cp312-manylinux_2_28_aarch64.whl", "w") as whl:
        whl.writestr("donor.libs/libgomp-a49a47f9.so.1.0.0", b"\x7fELF-gomp")
        whl.writestr("donor/__init__.py", "")

    # WHEN vendored into a layer's lib/
    target = layer.vendor_libgomp(wheels, tmp_path / "lib")

    # THEN it is there under the name lib_lightgbm.so asks for
    assert target == tmp_path / "lib" / "libgomp.so.1"
    assert target.read_bytes() == b"\x7fELF-gomp"


def test_vendor_libgomp_refuses_a_wheel_without_it(tmp_path: Path) -> None:
    # GIVEN a wheel that bundles no libgomp
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with zipfile.ZipFile(wheels / "donor-1.0-py3-none-any.whl", "w") as whl:
        whl.writestr("donor/__init__.py", "")

    # WHEN / THEN vendoring stops the build
    with pytest.raises(SystemExit, match="expected one bundled libgomp"):
        layer.vendor_libgomp(wheels, tmp_path / "lib")
