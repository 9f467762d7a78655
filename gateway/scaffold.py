"""`gateway init [DIR]`: write a starting routes.yaml and policies/ into a directory.

The files are the ones a clone of the repository ships at its root (routes.yaml,
policies/tenants.yaml, policies/tiers.yaml), carried inside the package as data
(`gateway/starter/`), so `pip install ai-gateway` followed by `gateway init` gives the same
working start: the two bundled services' routes and the `demo` tenant. Existing files are
kept unless `--force` is given, so running it twice never loses an operator's edits.
"""

from __future__ import annotations

import argparse
import sys
from importlib.resources import files
from pathlib import Path
from typing import Any

STARTER_FILES = ("routes.yaml", "policies/tenants.yaml", "policies/tiers.yaml")
INIT_HINT = ("run `gateway init` to write a commented routes.yaml and policies/ here "
             "(or point GATEWAY_ROUTES_FILE and GATEWAY_POLICIES_DIR at yours)")


class InitRefused(Exception):
    """`gateway init` would overwrite files: the message names them."""


def starter_text(name: str) -> bytes:
    """One starter file, as shipped in the package."""
    return files("gateway").joinpath("starter", name).read_bytes()


def write_starter(target: Path, *, force: bool = False) -> list[Path]:
    """Write every starter file under `target`; refuse to overwrite unless `force`."""
    paths = [target / name for name in STARTER_FILES]
    existing = [p for p in paths if p.exists()]
    if existing and not force:
        raise InitRefused(f"{', '.join(str(p) for p in existing)} already exist; "
                          "keep them, or pass --force to overwrite")
    for name, path in zip(STARTER_FILES, paths, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(starter_text(name))
    return paths


def cmd_init(args: argparse.Namespace) -> int:
    target = Path(args.dir)
    try:
        written = write_starter(target, force=args.force)
    except InitRefused as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    here = "" if target == Path(".") else f"cd {target} && "
    print(f"next: {here}gateway check && gateway dev   (or `gateway serve` without the "
          "bundled inference services)", file=sys.stderr)
    return 0


def add_command(sub: Any) -> None:
    """Add `init` to the CLI's subparsers."""
    p = sub.add_parser("init", help="write a starting routes.yaml and policies/")
    p.add_argument("dir", nargs="?", default=".", help="where to write them (default: here)")
    p.add_argument("--force", action="store_true", help="overwrite files that exist")
    p.set_defaults(func=cmd_init)
