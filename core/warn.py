"""Warnings that point at the caller's line, not at ours.

`warnings.warn(stacklevel=n)` needs the depth of the call chain, which differs between a runner
built with `from_pretrained`, one built by `tasks.load` and the command line. Counting the frames
that belong to nopipe's own packages finds the first line the user wrote, whatever the path.
"""

import sys
import warnings
from pathlib import Path

OUR_PACKAGES = tuple(str(Path(__file__).resolve().parents[1] / name) for name in ("core", "tasks", "decoding"))


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn with the location of the innermost frame outside core/, tasks/ and decoding/."""
    frame, level = sys._getframe(1), 2  # stacklevel 2 is the caller of warn_caller
    while frame is not None and frame.f_code.co_filename.startswith(OUR_PACKAGES):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
