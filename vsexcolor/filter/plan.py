"""The reference plan: which frames ``colorize`` takes colour from, and from what.

A frame's colour comes from a *reference* the user gave (an image, a mapping of them, a
folder; each an exemplar or a keyframe), from the clip's own colour frames (propagation
with no reference), or from an *automatic keyframe* of its shot: a frame coloured by the
keyframe model (DDColor) or read from a clip of keyframes. :func:`plan_references` reads
what was given into a :class:`ReferencePlan`; :meth:`ReferencePlan.restarts` says where
each reference comes into force once cuts can be tested.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import vapoursynth as vs

from ..weights.ddcolor import KeyframeModelError, NothingToColourFrom, keyframe_model_for
from .formats import check_clip, fail
from .luma import Luma
from .options import Options
from .ref_inputs import Keyed, RefInput, references
from .scenes import AUTOMATIC, Segment, reference_shot_start


@dataclass(frozen=True)
class ReferencePlan:
    """Where colour comes from.

    ``refs``: the references given, sorted by frame; ``from_clip``: propagation from the
    clip's own colour frames (each scene's first); ``keyframe_clip``: automatic keyframes are
    read from this clip; ``keyframe_model``: else coloured by this DDColor checkpoint (None
    with neither: shots without a reference take the one before them).
    """

    refs: list[Keyed]
    from_clip: bool
    keyframe_clip: vs.VideoNode | None
    keyframe_model: Path | None

    @property
    def automatic(self) -> bool:
        """Do shots without a reference of their own get an automatic keyframe?"""
        return self.keyframe_clip is not None or self.keyframe_model is not None

    @property
    def keyframes(self) -> list[int]:
        """Frames whose reference is that frame in colour."""
        return [r.start for r in self.refs if r.keyframe]

    def restarts(self, cut_at: Callable[[int], bool] | None) -> tuple[list[int], dict[int, int]]:
        """Where each reference comes into force, and the shot start of each restart that is
        not one, given the cut test ``cut_at`` (None: no cuts, one shot).

        A reference serves its whole shot, the frames before it included, unless the
        reference before it is in the same shot; a keyframe's own frame restarts the
        recurrence. Frame 0 belongs to the first reference where no cut comes between.
        """
        if not self.refs:
            return ([] if self.automatic else [0]), {}
        covers, shot_of, before, shot = [], {}, -1, 0
        for keyed in self.refs:
            found = reference_shot_start(keyed.start, before, cut_at)
            shot = shot if found is None else found
            covers.append(keyed.start if found is None else found)
            shot_of[covers[-1]] = shot
            if keyed.keyframe:
                shot_of[keyed.start] = shot
            before = keyed.start
        return covers, shot_of

    def keyframe_of(self, segment: Segment) -> int | None:
        """The frame whose colour version the segment's reference is, if it is one of its shot."""
        if segment.reference == AUTOMATIC:
            return segment.keyframe
        if self.from_clip:
            return segment.start
        keyed = self.refs[segment.reference]
        # A keyframe is its shot's: after a cut another shot starts from it as an exemplar.
        return keyed.start if keyed.keyframe and segment.start <= keyed.start else None


def plan_references(clip: vs.VideoNode, ref: RefInput | Mapping[int, RefInput] | None,
                    keyframe_clip: vs.VideoNode | None, options: Options, lumas: Sequence[Luma]) -> ReferencePlan:
    """Read what ``colorize`` was given into a plan (``lumas``: clips of the same pictures
    to match a folder's keyframes against, the cheapest first)."""
    ref, keyframe_clip = _keyframe_source(clip, ref, keyframe_clip)
    from_clip = options.propagate and ref is None and keyframe_clip is None
    refs = references(clip, ref, options.propagate, lumas) if ref is not None or from_clip else []
    model = None if from_clip or keyframe_clip is not None else _keyframe_model(options.keyframe_model, not refs)
    return ReferencePlan(refs, from_clip, keyframe_clip, model)


def _keyframe_source(clip: vs.VideoNode, ref: object, keyframe_clip: vs.VideoNode | None
                     ) -> tuple[object, vs.VideoNode | None]:
    """``ref`` and ``keyframe_clip`` as meant: a ``ref`` clip as long as a clip of several
    frames was the way to give a clip of keyframes before ``keyframe_clip`` existed."""
    if isinstance(ref, vs.VideoNode) and clip.num_frames > 1 and ref.num_frames == clip.num_frames \
            and keyframe_clip is None:
        warnings.warn("colorize: a ref clip as long as the clip is read as a clip of keyframes; pass it as "
                      "keyframe_clip= instead (ref= will take only its first frame in a later release)",
                      FutureWarning, stacklevel=4)
        ref, keyframe_clip = None, ref
    if keyframe_clip is None:
        return ref, None
    check_clip(keyframe_clip, "keyframe_clip")
    if (keyframe_clip.width, keyframe_clip.height, keyframe_clip.num_frames) != \
            (clip.width, clip.height, clip.num_frames):
        raise fail("keyframe_clip", f"a clip of keyframes of the clip's size and length, {clip.width}x{clip.height}, "
                                    f"{clip.num_frames} frames",
                   f"{keyframe_clip.width}x{keyframe_clip.height}, {keyframe_clip.num_frames} frames")
    return ref, keyframe_clip


def _keyframe_model(choice: str | os.PathLike[str] | None, needed: bool) -> Path | None:
    """The keyframe model's checkpoint to colour shots without a reference with: ``choice``
    (None: the preferred one in the model folder; ``"none"``: no model). Where none is found,
    an error if it is ``needed`` (no reference at all) or was named, else None: such shots
    then take the reference before them."""
    try:
        return keyframe_model_for(choice, needed)
    except NothingToColourFrom:
        raise vs.Error("colorize: keyframe_model='none' leaves nothing to colour from: pass a reference "
                       "(ref=) or a keyframe model") from None
    except KeyframeModelError as e:
        what = "no colour reference was given and " if needed else ""
        raise vs.Error(f"colorize: {what}{e}") from None
