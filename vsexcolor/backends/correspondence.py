"""Dense matching of frame positions to reference positions.

Both sides are [N, C, h, w] embeddings. Each position is centred over the positions of
its image and scaled to unit length, so their dot product is a cosine similarity. Every
frame position then takes the reference colour either

* ``"wta"`` (winner-take-all): of its single best match; the inference path, equal to the
  authors' softmax at temperature 1e-10 except at exact ties, or
* ``"soft"``: averaged with ``softmax(similarity / temperature)`` weights; differentiable,
  used in training.

Frame positions are processed in chunks so the similarity matrix is never held whole:
its extra memory is ``chunk x reference positions`` per frame instead of the square of
the position count (1.7 GB in float32 at a 432x768 input).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from ..models.warpnet import EPS

Mode = Literal["wta", "soft"]

#: Default bound on the bytes one similarity chunk may take.
DEFAULT_CHUNK_BYTES = 32 * 2**20


def normalize_positions(x: torch.Tensor) -> torch.Tensor:
    """[N, C, h, w] -> [N, C, h*w], centred over positions and unit length over channels."""
    x = x.flatten(2)
    x = x - x.mean(dim=-1, keepdim=True)
    return x / (torch.linalg.vector_norm(x, dim=1, keepdim=True) + EPS)


@dataclass(frozen=True)
class Match:
    """Result for a batch of frames at the embedding grid (h x w).

    ``values``: [N, K, h, w] reference values carried to each frame position.
    ``similarity``: [N, 1, h, w] the best cosine similarity (-1..1), the confidence.
    """

    values: torch.Tensor
    similarity: torch.Tensor


def chunk_rows(frames: int, ref_positions: int, itemsize: int, budget_bytes: int) -> int:
    """Frame positions per chunk so that ``frames x chunk x ref_positions`` fits the budget."""
    return max(1, budget_bytes // max(1, frames * ref_positions * itemsize))


def match(frame: torch.Tensor, ref: torch.Tensor, ref_values: torch.Tensor, *,
          mode: Mode = "wta", temperature: float = 0.01,
          chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Match:
    """Carry ``ref_values`` to the frame positions by feature similarity.

    Args:
        frame: [N, C, h, w] frame embedding (theta side).
        ref: [1 or N, C, H', W'] reference embedding (phi side); one reference is shared
            by a batch of frames without being copied.
        ref_values: [1 or N, K, H', W'] values on the reference grid (e.g. pooled Lab).
        mode: ``"wta"`` or ``"soft"`` (see module doc).
        temperature: softmax temperature of ``"soft"`` mode (ignored by ``"wta"``).
        chunk_bytes: bound on the bytes of one similarity chunk.
    """
    if mode not in ("wta", "soft"):
        raise ValueError(f"match: mode must be 'wta' or 'soft', got {mode!r}")
    n, _, h, w = frame.shape
    theta = normalize_positions(frame).transpose(1, 2)  # [N, hw, C]
    phi = normalize_positions(ref)  # [R, C, P]
    values = ref_values.flatten(2).transpose(1, 2).to(theta.dtype)  # [R, P, K]
    positions = theta.shape[1]
    step = chunk_rows(n, phi.shape[-1], theta.element_size(), chunk_bytes)
    out_values, out_sim = [], []
    for start in range(0, positions, step):
        f = torch.matmul(theta[:, start:start + step], phi)  # [N, rows, P]
        best, index = f.max(dim=-1)
        if mode == "wta":
            picked = torch.gather(values.expand(n, -1, -1), 1,
                                  index.unsqueeze(-1).expand(-1, -1, values.shape[-1]))
        else:
            picked = torch.matmul(torch.softmax(f / temperature, dim=-1), values)
        out_values.append(picked)
        out_sim.append(best)
    v = torch.cat(out_values, 1).transpose(1, 2).reshape(n, -1, h, w)
    s = torch.cat(out_sim, 1).reshape(n, 1, h, w)
    return Match(values=v, similarity=s)
