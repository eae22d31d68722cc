"""Warnings that point at the caller's line, not at ours.

`warnings.warn(stacklevel=n)` needs the depth of the call chain, which differs between a runner
built with `from_pretrained`, one built by `tasks.load` and the command line. Counting the frames
that belong to nopipe's own packages finds the first line the user wrote, whatever the path.
Decorators such as `torch.inference_mode()` add a frame of torch's own between the caller and us,
so those wrapper frames are skipped too.

It lives in decoding/, the bottom layer, so that every layer can use it without importing the
model-loading code.
"""

import contextlib
import sys
import warnings
from pathlib import Path

import torch.utils._contextlib as torch_contextlib

OUR_PACKAGES = tuple(str(Path(__file__).resolve().parents[1] / name) for name in ("core", "tasks", "decoding"))
WRAPPER_FILES = (torch_contextlib.__file__, contextlib.__file__)


def is_ours(filename: str) -> bool:
    """A frame of nopipe's own code, or of a decorator wrapped around it."""
    return filename.startswith(OUR_PACKAGES) or filename in WRAPPER_FILES


def warn_caller(message: str, category: type[Warning] = UserWarning) -> None:
    """Warn with the location of the innermost frame outside core/, tasks/ and decoding/."""
    frame, level = sys._getframe(1), 2  # stacklevel 2 is the caller of warn_caller
    while frame is not None and is_ours(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
