"""The commands show thermal-hf's own warnings as one log line, once.

The library warns with `warnings.warn` (a Python user filters or escalates them as any other). On the command
line Python's default display adds the source file, line number and code line of the call, and every launched
process repeats it; there each of our warnings becomes one ``WARNING - thermal_hf - ...`` line of the main process.
Warnings of other packages, and ours raised from a user's own code (``stacklevel`` points there), keep Python's
display.
"""

from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

_PACKAGE = str(Path(__file__).resolve().parent) + os.sep


def is_main_process() -> bool:
    """False in the processes a launcher (`accelerate launch`, torchrun) started besides the first (RANK > 0):
    what every process would say, one of them says."""
    return os.environ.get("RANK", "0") == "0"


def log_package_warnings(main_process: bool | None = None) -> None:
    """Route warnings raised inside thermal_hf to the ``thermal_hf`` logger (only on the main process)."""
    if main_process is None:
        main_process = is_main_process()
    show = getattr(warnings.showwarning, "__wrapped__", warnings.showwarning)  # installed once, not nested

    def showwarning(message, category, filename, lineno, file=None, line=None):
        if not str(Path(filename).resolve()).startswith(_PACKAGE):
            return show(message, category, filename, lineno, file, line)
        if main_process:
            logging.getLogger("thermal_hf").warning(str(message))

    showwarning.__wrapped__ = show
    warnings.showwarning = showwarning
