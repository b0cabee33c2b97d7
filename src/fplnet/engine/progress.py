"""Progress bars: tqdm on stderr while a person watches, nothing in logs and pipes.

A bar is shown when stderr is a terminal, or when ``FPLNET_PROGRESS`` is set (to see one where
stderr is captured: a notebook, a test). Elsewhere the bar is tqdm's disabled one, which costs
nothing and keeps the caller free of ``if bar`` checks.
"""
from __future__ import annotations

import os
import sys
from typing import Optional


def progress_wanted() -> bool:
    return sys.stderr.isatty() or bool(os.environ.get("FPLNET_PROGRESS"))


def progress_bar(total: Optional[int] = None, description: str = "", unit: str = "it", enabled: bool = True):
    """A tqdm bar counting to ``total`` (None: a running count without a percentage); it leaves
    no line behind when closed, so the command's own report of the finished work follows."""
    from tqdm import tqdm
    return tqdm(total=total, desc=description, unit=unit, leave=False, dynamic_ncols=True,
                disable=not (enabled and progress_wanted()))
