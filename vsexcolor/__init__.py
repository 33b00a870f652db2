"""vsexcolor: exemplar-based video colorization (DEVC, CVPR 2019) for VapourSynth.

``vsexcolor.colorize(clip, ref, ...)`` is the entry point; see :func:`vsexcolor.filter.colorize`.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["colorize"]


def __getattr__(name: str):
    # Importing the package must not pull VapourSynth into the networks' users (training).
    if name == "colorize":
        from .filter import colorize

        return colorize
    raise AttributeError(name)
