"""The ``relulab`` command.

``relulab fetch <dataset>... [--data-dir DIR]`` downloads MNIST, Fashion-MNIST or CIFAR-10 once,
through torchvision, into the data directory a study reads them from (``data_dir`` in the
config), then reads them back and checks them.
"""

from __future__ import annotations

import argparse
import logging
import sys

from relulab.data import vision


def _fetch(args: argparse.Namespace) -> int:
    status = 0
    for name in args.datasets:
        try:
            where = vision.fetch(name, args.data_dir, accept_unverified=args.accept_unverified)
        except Exception as error:  # noqa: BLE001 - report each dataset and go on
            print(f"relulab fetch: {name}: {error}", file=sys.stderr)
            status = 1
            continue
        print(f"{name}: ready in {where}")
    return status


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="relulab", description=__doc__.splitlines()[0])
    commands = root.add_subparsers(dest="command", required=True)
    fetch = commands.add_parser(
        "fetch",
        help="download datasets into the data directory (needs network, once)",
        description="Download datasets with torchvision into the data directory and check them.",
    )
    fetch.add_argument(
        "datasets",
        nargs="+",
        choices=vision.DATASETS,
        metavar="dataset",
        help=f"one or more of {', '.join(vision.DATASETS)}",
    )
    fetch.add_argument(
        "--data-dir",
        default=vision.DEFAULT_DATA_DIR,
        help=f"where to put them (default: {vision.DEFAULT_DATA_DIR}, as in the config)",
    )
    fetch.add_argument(
        "--accept-unverified",
        action="store_true",
        help="accept files already there that differ from the published checksums "
        "(files you made yourself); they are then read without network",
    )
    fetch.set_defaults(run=_fetch)
    return root


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parser().parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
