"""The clips a ``colorize`` call returns: the planning clip (props only, no network) and the
finished render (the recurrence's ab at full size under the input's L)."""
from __future__ import annotations

import functools
import itertools

import numpy as np
import vapoursynth as vs

from ..backends.base import Backend
from .formats import OUTPUT_PROPS, frame_ab
from .both_ways import BothWays
from .callback_reads import outside_locks
from ..memory import release_freed_memory
from .frame_requests import RELEASE_EVERY, RecurrenceRequests, ScenesProbe
from .keyframe_requests import KeyframeProbe
from .options import Direction
from .postprocess import Finish, finish_rgb
from .recurrence import EngineConfig, Recurrence
from .wiring import Wiring

core = vs.core


def planned(clip: vs.VideoNode, wiring: Wiring, out_fmt: vs.VideoFormat, props: dict[str, int]) -> vs.VideoNode:
    """A blank clip in the output format whose frames carry the output's props (see
    :func:`~vsexcolor.filter.recording.recording`), made from the scene probe alone, and the
    keyframe probe where shots find automatic keyframes. Each frame brings the frames around
    it, as the recurrence's do."""
    source, scenes = wiring.source, wiring.scenes
    probe = ScenesProbe(scenes, source, wiring.is_cut, wiring.internal)
    keyframes = _keyframe_probe(wiring, probe)
    # Planning makes no keyframe: it waits for them to be found, not for their frames.
    waits = [probe.clip] if keyframes is None else [probe.clip, keyframes.walked]
    marked_count = itertools.count(1)

    def mark(n: int, f: list[vs.VideoFrame], owns: tuple) -> vs.VideoFrame:
        # ``owns``: the probes, whose own callbacks reach them weakly; this callback keeps them.
        source.offer(n, f[1 + len(waits):], catch_up=False, planning=True)
        marks = outside_locks(lambda: wiring.props(scenes.segment(n)))
        # A planning pass reads a whole film; without this the freed heap grew as a render's
        # does (600 MiB over 9107 frames of 320x180 in `vsexcolor colorize --refs`'s shots check).
        if next(marked_count) % RELEASE_EVERY == 0:
            release_freed_memory()
        out = f[0].copy()
        for key, value in marks.items():
            out.props[key] = value
        return out

    blank = core.std.BlankClip(clip, format=out_fmt.id, keep=True)
    marked = core.std.ModifyFrame(blank, [blank, *waits, *source.window(catch_up=False, planning=True)],
                                  functools.partial(mark, owns=(probe, keyframes)))
    return core.std.SetFrameProps(marked, **props)


def finished(clip: vs.VideoNode, wiring: Wiring, backend: Backend, config: EngineConfig,
             finish: Finish, direction: Direction = "both") -> vs.VideoNode:
    """An RGBS clip of ``clip``'s size: the recurrence's ab brought to full size and
    finished (:func:`finish_rgb`) under the full-size L.

    The recurrence and the finish are separate frame callbacks: VapourSynth runs each one on
    one thread at a time, so the recurrence of one frame and the finish of the frame before
    run side by side. The finish callback owns the requests (see
    :mod:`~vsexcolor.filter.frame_requests`): the recurrence lives as long as this clip.

    ``direction``: ``"both"`` fuses each frame between two keyframes of its shot with a
    backward pass (:mod:`.both_ways`); ``"forward"`` takes the forward recurrence alone.
    """
    engine = Recurrence(backend, wiring.scenes, wiring.source.internal_L, wiring.references, config)
    both = direction == "both"
    probe = ScenesProbe(wiring.scenes, wiring.source, wiring.is_cut, wiring.internal)
    requests = RecurrenceRequests(engine, wiring.source, wiring.internal, wiring.is_cut, wiring.props,
                                  confidence=both, probe=probe, keyframes=_keyframe_probe(wiring, probe))
    chroma = BothWays(wiring, requests, backend, config) if both else requests
    geometry, device = wiring.geometry, backend.device

    def render(n: int, f: list[vs.VideoFrame]) -> vs.VideoFrame:
        L = chroma.source.full_L(n, f[2]).to(device)
        rgb = finish_rgb(L, frame_ab(f[1]), geometry, finish)[0].cpu().numpy()
        out = f[0].copy()
        for p in range(3):
            np.copyto(np.asarray(out[p]), rgb[p])
        for key in OUTPUT_PROPS:
            out.props[key] = f[1].props[key]
        return out

    canvas = core.std.BlankClip(clip, format=vs.RGBS, keep=True)
    return core.std.ModifyFrame(canvas, [canvas, chroma.clip, requests.source.clip], render)


def _keyframe_probe(wiring: Wiring, probe: ScenesProbe) -> KeyframeProbe | None:
    """What every request waits for where shots find automatic keyframes, else None."""
    if wiring.scenes.automatic is None:
        return None
    return KeyframeProbe(wiring, probe)
