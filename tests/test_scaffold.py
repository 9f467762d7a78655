"""`gateway init` from an empty directory, as someone who installed the package does."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from gateway.scaffold import STARTER_FILES, starter_text

ROOT = Path(__file__).resolve().parents[1]


def _gateway(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60)


def test_an_empty_directory_is_told_to_run_init_then_init_makes_it_work(tmp_path):
    missing = _gateway(tmp_path, "check")
    assert missing.returncode == 2
    assert "routes.yaml: (file): file not found" in missing.stderr
    assert "gateway init" in missing.stderr and "Traceback" not in missing.stderr

    made = _gateway(tmp_path, "init")
    assert made.returncode == 0, made.stderr
    assert {str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.yaml")} == \
        set(STARTER_FILES)
    assert "gateway check" in made.stderr
    checked = _gateway(tmp_path, "check")
    assert checked.returncode == 0, checked.stderr
    assert "5 routes" in checked.stdout and "tenants.yaml" in checked.stdout


def test_init_into_a_directory_keeps_existing_files_unless_forced(tmp_path):
    target = tmp_path / "deploy" / "gw"
    assert _gateway(tmp_path, "init", str(target)).returncode == 0
    (target / "routes.yaml").write_text("# mine\n")
    again = _gateway(tmp_path, "init", str(target))
    assert again.returncode == 1 and "--force" in again.stderr
    assert (target / "routes.yaml").read_text() == "# mine\n"
    assert _gateway(tmp_path, "init", str(target), "--force").returncode == 0
    assert (target / "routes.yaml").read_bytes() == starter_text("routes.yaml")


def test_the_starter_files_are_the_shipped_ones():
    # One routing table and one set of policies: the clone's root and the package's copy.
    for name in STARTER_FILES:
        assert (ROOT / name).read_bytes() == starter_text(name), (
            f"{name} and gateway/starter/{name} differ: copy one onto the other")
    assert b"#" in starter_text("routes.yaml")  # commented for whoever edits it first
