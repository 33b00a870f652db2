"""The film behind a shots folder, as the review page needs it: its gray frames (to re-pick
a keyframe, to check an upload's lightness), the keyframe model's colouring of a frame, and
the film coloured from the folder exactly as ``colorize --refs DIR`` colours it."""
from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np
import vapoursynth as vs

from ..filter import shots
from ..filter.formats import colour_props
from ..filter.keyframes import KeyframeColorizer
from ..filter.luma import Luma


@dataclass
class Film:
    """``clip``: the film as colorize sees it (a script's: the clip its colorize call
    colours); ``coloured``: builds the film coloured from the folder as it is now (the
    folder is read anew each time); ``colorizer``: the keyframe model, None where there is
    none; ``command``: the command line that renders the folder; ``fps``: frames a second."""

    clip: vs.VideoNode
    coloured: Callable[[], vs.VideoNode]
    colorizer: KeyframeColorizer | None
    command: str
    fps: float
    # VapourSynth serves frames from any thread; the model and the cached clips are shared.
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _built: tuple[str, vs.VideoNode] | None = field(default=None, repr=False)

    def coloured_as(self, key: str) -> vs.VideoNode:
        """The film coloured from the folder whose references are ``key``
        (:func:`~vsexcolor.review.preview.references_key`): built once for each, since
        building reads every reference of the folder."""
        if self._built is None or self._built[0] != key:
            self._built = None  # the old clip's frames are not kept while the new one is built
            self._built = (key, self.coloured())
        return self._built[1]

    @cached_property
    def luma(self) -> Luma:
        return Luma(self.clip, colour_props(self.clip, self.clip.get_frame(0).props))

    @cached_property
    def _gray(self) -> vs.VideoNode:
        return shots.gray(self.clip)

    @property
    def bits(self) -> int:
        return 8 if self.clip.format.bits_per_sample == 8 else 16

    def gray(self, n: int) -> np.ndarray:
        """Frame ``n`` as ``vsexcolor shots`` writes it to colour: gray, uint8 or uint16 [H, W]."""
        return np.asarray(self._gray.get_frame(n)[0]).copy()

    def in_colour(self, n: int) -> np.ndarray | None:
        """Frame ``n`` as colorize colours an automatic keyframe, as ``vsexcolor shots
        --colorize`` writes it (BGR, uint8 or uint16); None without a keyframe model."""
        if self.colorizer is None:
            return None
        with self.lock:
            return shots.png_image(shots.in_colour(self.luma, n, self.colorizer), self.bits)
