"""The sdist and the wheel: licence, package data, and a wheel that runs on its own.

Both are built from a copy of the source tree with setuptools' own PEP 517 hooks (no
build isolation, so nothing is downloaded: the test extra brings setuptools). The wheel
is installed with `--no-deps` into a fresh venv that borrows this venv's installed
dependencies through a .pth line (but not its editable gateway, whose .pth is not read
from a borrowed directory), then `gateway init` and `gateway check` run in an empty
directory.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest

from gateway.scaffold import STARTER_FILES

ROOT = Path(__file__).resolve().parents[1]
SKIP = shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build", "dist",
                              ".*_cache", "bench", "tests", "docs", "dashboards")


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    work = tmp_path_factory.mktemp("packaging")
    source, out = work / "src", work / "dist"
    shutil.copytree(ROOT, source, ignore=SKIP)
    out.mkdir()
    # (setuptools rewrites sys.argv while it builds: take the directory first)
    build = ("from setuptools import build_meta as b; import sys; out = sys.argv[1]; "
             "b.build_sdist(out); b.build_wheel(out)")
    done = subprocess.run([sys.executable, "-W", "error::DeprecationWarning", "-c", build,
                           str(out)], cwd=source, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "License classifiers are deprecated" not in done.stderr
    assert "`project.license` as a TOML table is deprecated" not in done.stderr
    return out


def test_sdist_and_wheel_carry_the_licence_and_the_starter_files(dist):
    (sdist,) = dist.glob("*.tar.gz")
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert "LICENSE" in names
    assert {f"gateway/starter/{n}" for n in STARTER_FILES} <= names
    (wheel,) = dist.glob("*.whl")
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        metadata = next(whl.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    assert {f"gateway/starter/{n}" for n in STARTER_FILES} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert "License-Expression: Apache-2.0" in metadata
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")


@pytest.mark.slow
def test_the_installed_wheel_inits_and_checks_an_empty_directory(dist, tmp_path):
    (wheel,) = dist.glob("*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()"
                                "['purelib'])"], capture_output=True, text=True,
                               check=True).stdout.strip())
    (site / "borrowed-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                    "--no-deps", "--no-index", "--disable-pip-version-check", str(wheel)],
                   check=True, capture_output=True, timeout=120)
    empty = tmp_path / "empty"
    empty.mkdir()
    gateway = venv / "bin" / "gateway"
    where = subprocess.run([python, "-c", "import gateway; print(gateway.__file__)"],
                           cwd=empty, capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(venv)), where  # the wheel's, not this checkout's
    made = subprocess.run([gateway, "init"], cwd=empty, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    checked = subprocess.run([gateway, "check"], cwd=empty, capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: 5 routes")
