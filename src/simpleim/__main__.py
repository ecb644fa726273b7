"""``python -m simpleim`` runs the ``simpleim`` command."""

from __future__ import annotations

import sys

from simpleim.cli.main import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
