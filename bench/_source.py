"""Which Maestro code a benchmark measures: the working tree (default) or a git revision exported to a temp dir.

Others edit the working tree while benchmarks run; `--rev HEAD` pins the measurement to a commit.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TREE_SKIP = {".venv", ".git", ".states", ".pytest_cache", ".ruff_cache", ".benchmarks", "__pycache__"}


def describe_tree() -> str:
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "backend", "maestro_ui", "assets", "alembic"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return f"working tree {ROOT}"
    return f"working tree {ROOT} (HEAD {head}" + (f", {len(dirty)} app files changed)" if dirty else ", clean)")


def export_rev(rev: str, dest: Path) -> str:
    """`git archive rev` into `dest`; returns a description."""
    sha = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", rev], capture_output=True, text=True, check=True
    ).stdout.strip()
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.Popen(["git", "-C", str(ROOT), "archive", sha], stdout=subprocess.PIPE)
    subprocess.run(["tar", "-x", "-C", str(dest)], stdin=archive.stdout, check=True)
    archive.wait()
    return f"git {rev} = {sha}, exported to {dest}"


def copy_tree(dest: Path, *, web: bool) -> None:
    """Copy the working tree to `dest` (no .venv/.git/caches/databases); `.web` without its build if `web`."""

    def ignore(directory: str, names: list[str]) -> set[str]:
        here = Path(directory)
        skip = {n for n in names if n in TREE_SKIP}
        if here == ROOT:
            skip |= {n for n in names if n == "build" or n.endswith((".db", ".db-wal", ".db-shm"))}
            if not web:
                skip |= {n for n in names if n == ".web"}
        if here == ROOT / ".web":
            skip |= {n for n in names if n == "build"}
        return skip

    shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True, dirs_exist_ok=True)


def copy_web(dest: Path) -> None:
    """The repository's .web (node_modules etc., not the build) into `dest`/.web, so a build starts warm."""
    src = ROOT / ".web"
    if src.is_dir():
        shutil.copytree(
            src,
            dest / ".web",
            ignore=lambda d, names: {"build"} if Path(d) == src else set(),
            symlinks=True,
            dirs_exist_ok=True,
        )


def use_code(path: Path) -> None:
    """Import `backend` (and `maestro_ui`) from `path` from now on."""
    sys.path.insert(0, str(path))
