"""``python -m poster`` and the ``poster`` script: the command line of :mod:`poster.cli`."""

from __future__ import annotations

import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``poster upload|serve|demo`` with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    from poster.cli import main as run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
