"""``python -m empirical.predict``: an alias of ``python -m empirical.analysis.predict`` (the predictions CLI)."""
from __future__ import annotations

import sys

from empirical.analysis.predict import build_parser, format_table, main

__all__ = ["build_parser", "format_table", "main"]

if __name__ == "__main__":
    sys.exit(main())
