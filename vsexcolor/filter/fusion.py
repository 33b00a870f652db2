"""Fusing the two colourings of a frame between keyframes: one carried forward from the
keyframe before it, one carried backward from the keyframe after it.

Each pass drifts as it moves away from its keyframe, so each pixel takes a mix weighted by
how near each keyframe is, and by how sure each pass's match of the pixel to its own
keyframe is (the backend's correspondence confidence: where a keyframe shows the pixel's
surface, its pass carries the right colour; where the surface is new to it, the pass
guesses). ``benchmarks/both_ways.py`` measured this rule against the others tried
(benchmarks/README.md): on the bundled clips, propagate backend, ground-truth keyframes every
40 frames, +2.7 / +2.3 / +0.8 dB over the forward pass alone (bikes, bigbuckbunny,
carphone), where weights by distance alone give +2.2 / +1.4 / +0.7.

The confidence is the propagate backend's (0..1). DEVC's is a cosine similarity (-1..1, most
pixels above 0.5), on which the rule stays close to the distance weights: not measured.

Pure torch: tensors on any device, [1, C, H, W] at the engine's internal size.
"""
from __future__ import annotations

import torch

#: Confidence added to each pass's before weighting, so that a pixel neither pass is sure
#: of falls back to the distance weights instead of dividing noise by noise.
CONFIDENCE_FLOOR = 0.05
#: Power of the confidences in the weights: 2 measured 0.01 to 0.05 dB above 1 on each
#: bundled clip, 4 no better.
CONFIDENCE_POWER = 2.0


def distance_weights(since: int, until: int) -> tuple[float, float]:
    """Weights (forward, backward) of a frame ``since`` frames after the keyframe before it
    and ``until`` frames before the keyframe after it (both >= 0, not both 0): each pass
    weighs by how near its own keyframe is; they sum to 1, and a frame at a keyframe takes
    that keyframe's pass alone."""
    if since < 0 or until < 0 or since + until == 0:
        raise ValueError(f"distance_weights: need since, until >= 0 and not both 0, got {since}, {until}")
    span = since + until
    return until / span, since / span


def pass_weights(since: int, until: int, confidence_forward: torch.Tensor | None = None,
                 confidence_backward: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-pixel weights (forward, backward), each [1, 1, H, W], summing to 1 at every pixel.

    ``since``, ``until``: as :func:`distance_weights`. ``confidence_forward``,
    ``confidence_backward``: [1, 1, H, W], 0..1 (higher is surer; negative values count as
    0), each pass's confidence in its correspondence to its own keyframe; None for both:
    distance alone (as scalars broadcast to [1, 1, 1, 1]).
    """
    near_forward, near_backward = distance_weights(since, until)
    if (confidence_forward is None) != (confidence_backward is None):
        raise ValueError("pass_weights: give the confidences of both passes or of neither")
    if confidence_forward is None:
        return torch.full((1, 1, 1, 1), near_forward), torch.full((1, 1, 1, 1), near_backward)
    if confidence_forward.shape != confidence_backward.shape:
        raise ValueError(f"pass_weights: confidences differ in shape: {tuple(confidence_forward.shape)} "
                         f"vs {tuple(confidence_backward.shape)}")
    forward = near_forward * (confidence_forward.clamp(min=0.0) + CONFIDENCE_FLOOR) ** CONFIDENCE_POWER
    backward = near_backward * (confidence_backward.clamp(min=0.0) + CONFIDENCE_FLOOR) ** CONFIDENCE_POWER
    total = forward + backward
    return forward / total, backward / total


def fuse(ab_forward: torch.Tensor, ab_backward: torch.Tensor, since: int, until: int,
         confidence_forward: torch.Tensor | None = None,
         confidence_backward: torch.Tensor | None = None) -> torch.Tensor:
    """The fused chroma of a frame between two keyframes of its shot.

    Args:
        ab_forward, ab_backward: [1, 2, H, W] CIE a and b (raw units) of the forward and the
            backward pass.
        since, until: frames from the keyframe before, and to the keyframe after (>= 0, not
            both 0).
        confidence_forward, confidence_backward: [1, 1, H, W] 0..1, or None for both (see
            :func:`pass_weights`).

    Returns:
        [1, 2, H, W] ab, float32 like its inputs: the per-pixel weighted mean.
    """
    if ab_forward.shape != ab_backward.shape or ab_forward.shape[1] != 2:
        raise ValueError(f"fuse: need two [N, 2, H, W] ab of one shape, got {tuple(ab_forward.shape)} "
                         f"and {tuple(ab_backward.shape)}")
    forward, backward = pass_weights(since, until, confidence_forward, confidence_backward)
    return forward.to(ab_forward) * ab_forward + backward.to(ab_backward) * ab_backward
