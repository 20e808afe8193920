"""Entry point of the ``diffbio`` command line.

Each sub-command lives in its own module ``diffbio/cli/_<name>.py`` exposing
``register(subparsers) -> None``, which adds its parser and sets ``func=run`` where
``run(args) -> int``. Add the module name to ``_COMMANDS`` to enable it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from diffbio._errors import DiffbioError

_COMMANDS: tuple[str, ...] = (
    "inspect",
    "fk",
    "ik",
    "id",
    "residuals",
    "muscle-analysis",
    "so",
    "synergies",
    "tissue",
    "demo",
    "train",
    "evaluate",
    "smpl",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="diffbio",
        description="Differentiable musculoskeletal biomechanics (OpenSim-compatible).",
    )
    parser.add_argument("--version", action="version", version=_version())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMANDS:
        module = importlib.import_module(f"diffbio.cli._{name.replace('-', '_')}")
        module.register(sub)
    return parser


def _version() -> str:
    from diffbio import __version__

    return f"diffbio {__version__}"


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DiffbioError as exc:
        print(f"diffbio {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"diffbio {args.command}: error: {exc}", file=sys.stderr)
        return 2
