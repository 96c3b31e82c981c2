"""How the package's warnings reach a person at the terminal: one line each, "warning: <message>"
(a damaged cache entry being rebuilt, a malformed record being skipped), without Python's
file, line and source text."""
from __future__ import annotations

import warnings


def one_line_warnings() -> None:
    """Print every warning of this process as one line (the command line and its worker processes)."""
    warnings.formatwarning = lambda message, category, filename, lineno, line=None: f"warning: {message}\n"
