"""vsexcolor: exemplar-based video colorization (DEVC, CVPR 2019) for VapourSynth.

``vsexcolor.colorize(clip, ref, ...)`` is the entry point (:func:`vsexcolor.filter.colorize`);
``vsexcolor.open_clip(vsexcolor.probe(path))`` reads a file as the command line does
(:mod:`vsexcolor.render.video`).

The package has three sides, each a subpackage: :mod:`~vsexcolor.filter` (the VapourSynth
filter), :mod:`~vsexcolor.weights` (checkpoints) and :mod:`~vsexcolor.render` (a render to a
file, here or on a farm); ``docs/architecture.md`` draws them and their layers.
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["colorize", "open_clip", "probe"]


def __getattr__(name: str):
    # Importing the package must not pull VapourSynth into the networks' users (training).
    if name == "colorize":
        from .filter import colorize

        return colorize
    if name in ("open_clip", "probe"):
        from .render import video

        return getattr(video, name)
    raise AttributeError(name)
