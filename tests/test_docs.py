"""The docs site builds strictly, and strictly means a broken link fails it (`.ci/run` builds it too)."""

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytest.importorskip("mkdocs")


def build(folder) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DISABLE_MKDOCS_2_WARNING": "true", "NO_MKDOCS_2_WARNING": "1"}
    command = [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(folder / "site")]
    return subprocess.run(command, cwd=folder, env=environment, capture_output=True, text=True, timeout=300)


def test_the_site_builds_strictly_and_a_broken_link_fails_it(tmp_path):
    """Before: `.ci/run` built with `--quiet`, which hides warnings from the count `--strict` fails on, so a
    broken link and nine unreadable docstrings passed."""
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path)
    for name in ("owsd", "results"):  # the API pages' sources and the figures the result pages show
        (tmp_path / name).symlink_to(REPO / name)
    built = build(tmp_path)
    assert built.returncode == 0, built.stderr[-3000:]
    assert (tmp_path / "site" / "reference" / "settings" / "index.html").is_file()
    with (tmp_path / "docs" / "index.md").open("a") as page:
        page.write("\n[a page that is not there](nothere.md)\n")
    broken = build(tmp_path)
    assert broken.returncode != 0 and "nothere.md" in broken.stderr
