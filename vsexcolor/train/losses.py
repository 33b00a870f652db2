"""The DEVC training losses, each a plain function of tensors.

Units: Lab with L 0..100 and raw a, b (CIE units); ab tensors are [N, 2, H, W]; VGG features
are [N, C, h, w] activations of :class:`vsexcolor.models.VGG19Features`. Every function
returns a scalar tensor, unweighted: the trainer multiplies by the configured weights.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ..models.vgg import LAYERS
from ..models.warpnet import channel_normalize

_CONTEXTUAL_LAYERS = ("relu5_2", "relu4_2", "relu3_2")
# Keeps the normalised distance finite where a feature matches exactly (the authors' value).
_CONTEXTUAL_EPS = 1e-5


def l1_ab(pred_ab: torch.Tensor, true_ab: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean absolute ab error over the samples with ``weight`` 1 ([N] of 0/1).

    Only samples whose reference comes from their own clip have a known right answer; with an
    external reference the ground-truth colours are one plausible answer among many. No such
    sample gives 0.
    """
    per_sample = (pred_ab - true_ab).abs().mean(dim=(1, 2, 3))
    return (per_sample * weight).sum() / weight.sum().clamp(min=1)


def perceptual(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean squared difference of two feature maps (relu5_2 of prediction and ground truth)."""
    return F.mse_loss(pred, true.detach())


def contextual(x: torch.Tensor, y: torch.Tensor, bandwidth: float = 0.1) -> torch.Tensor:
    """Contextual loss (Mechrez et al. 2018) of features ``x`` against ``y``, averaged over the batch.

    Each position of ``x`` should find a close match somewhere in ``y`` (the "forward"
    direction the authors train with): features are centred on ``y``'s mean and normalised,
    cosine distances are normalised by each ``x`` position's nearest distance, turned into
    affinities ``exp((1 - d) / bandwidth)`` normalised over ``y``, and the loss is
    ``-log(mean over x of the best affinity)``. 0 when every x position has an exact match
    that no other y position comes close to; log(number of y positions) when all are alike.
    """
    mean = y.flatten(2).mean(dim=-1)[..., None, None]
    xs = channel_normalize(x - mean).flatten(2)  # [N, C, P]
    ys = channel_normalize(y - mean).flatten(2)  # [N, C, Q]
    distance = 1 - torch.matmul(xs.transpose(1, 2), ys)  # [N, P, Q]
    relative = distance / (distance.min(dim=-1, keepdim=True).values + _CONTEXTUAL_EPS)
    affinity = torch.softmax((1 - relative) / bandwidth, dim=-1)
    return -torch.log(affinity.max(dim=-1).values.mean(dim=-1)).mean()


def contextual_vgg(pred: Sequence[torch.Tensor], ref: Sequence[torch.Tensor],
                   layer_weights: Sequence[float] = (8.0, 4.0, 2.0), bandwidth: float = 0.1) -> torch.Tensor:
    """Weighted contextual loss at relu5_2, relu4_2, relu3_2 of the prediction against the reference.

    ``pred`` and ``ref`` are the VGG outputs listed in :data:`vsexcolor.models.vgg.LAYERS`.
    relu3_2 is average-pooled by 2 first, as the authors do, which quarters the cost of its
    all-pairs distances.
    """
    total = pred[0].new_zeros(())
    for name, weight in zip(_CONTEXTUAL_LAYERS, layer_weights):
        i = LAYERS.index(name)
        x, y = pred[i], ref[i].detach()
        if name == "relu3_2":
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        total = total + weight * contextual(x, y, bandwidth)
    return total


def smoothness(pred_ab: torch.Tensor, true_lab: torch.Tensor, alpha: float = 10.0) -> torch.Tensor:
    """Mean squared difference between each predicted ab and a weighted mean of its 3x3 neighbourhood.

    The weights are ``softmax(-|Lab_j - Lab_i|^2 / alpha)`` over the neighbours j of pixel i
    (itself included, those outside the image excluded), measured on the ground truth, as in
    the authors' code: colour may change across the true edges but not inside regions that
    are one colour.
    """
    n, _, h, w = pred_ab.shape

    def neighbours(t: torch.Tensor) -> torch.Tensor:  # [N, C, H, W] -> [N, C, 9, H, W]
        return F.unfold(t, 3, padding=1).view(n, t.shape[1], 9, h, w)

    inside = neighbours(true_lab.new_ones(1, 1, h, w).expand(n, 1, h, w)) > 0
    distance = ((neighbours(true_lab) - true_lab.unsqueeze(2)) ** 2).sum(dim=1, keepdim=True)
    weights = torch.softmax((-distance / alpha).masked_fill(~inside, float("-inf")), dim=2)
    smoothed = (weights * neighbours(pred_ab)).sum(dim=2)
    return F.mse_loss(pred_ab, smoothed)


def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``x`` [N, C, H, W] along ``flow`` [N, 2, H, W] (x, y pixels), bilinearly.

    Output pixel p takes ``x`` at ``p + flow[p]`` (the convention of :mod:`vsexcolor.backends.flow`);
    samples outside take the nearest border value.
    """
    _, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=x.device, dtype=x.dtype),
                            torch.arange(w, device=x.device, dtype=x.dtype), indexing="ij")
    gx = (xs + flow[:, 0]) * (2 / max(w - 1, 1)) - 1
    gy = (ys + flow[:, 1]) * (2 / max(h - 1, 1)) - 1
    return F.grid_sample(x, torch.stack((gx, gy), dim=-1), mode="bilinear",
                         padding_mode="border", align_corners=True)


def temporal(ab: torch.Tensor, prev_ab: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between frame t's ab and frame t-1's ab warped onto frame t.

    ``flow`` [N, 2, H, W] is the backward flow from frame t to frame t-1; ``valid`` [N, 1, H, W]
    is 1 where it can be trusted (not occluded, not from outside the frame). No valid pixel gives 0.
    """
    difference = (ab - warp(prev_ab, flow)).abs() * valid
    return difference.sum() / (valid.sum() * ab.shape[1]).clamp(min=1)


def discriminator_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Relativistic average least-squares loss of the discriminator (the authors' GAN loss).

    ``real`` and ``fake`` are the [N] scores of real and generated pairs. Minimal (0) when
    every real score is 1 above the mean fake score and every fake score 1 below the mean real one.
    """
    return (((real - fake.mean() - 1) ** 2).mean() + ((fake - real.mean() + 1) ** 2).mean()) / 2


def generator_adversarial(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """The generator's side of :func:`discriminator_loss`: the targets swapped."""
    return discriminator_loss(fake, real)
