"""How well a projected body fills its person mask: the mask-coverage term of the keypoint fit and of the guidance.

The silhouette (mask) term of :mod:`~scorehoi_diffusers.guidance` pulls the body's points that project outside the
person mask INTO it; nothing in it makes the body FILL the mask, so a body too thin or with a limb held elsewhere
costs nothing there. The coverage term is the converse: a fixed, evenly strided sample of the mask's pixels
(:func:`sample_mask_pixels`, taken once per call from the mask's distance map), each at a robust (Charbonnier)
distance to the nearest projected body point (:func:`mask_coverage_loss`). The pre-cycle keypoint fit
(``pipelines/keypoint_fit.py``) and the guided cycles (``GuidanceConfig.mask_coverage``) read the same sample.
"""
from __future__ import annotations

import torch

from .camera import project_points

__all__ = ["COVERAGE_SAMPLES", "COVERAGE_SCALE_PIXELS", "mask_coverage_loss", "sample_mask_pixels"]

# The Charbonnier scale of the coverage term (pixels): distances well above it cost linearly (a mask pixel far
# from the body, e.g. of an object the mask wrongly holds, pulls no harder than a near one), and the square root
# stays differentiable at 0.
COVERAGE_SCALE_PIXELS = 1.0
# The number of person-mask pixels the coverage term samples per estimate (the keypoint fit's and the guidance's):
# enough to reach every limb of the mask, few enough that the (B, M, N) distance matrix stays small.
COVERAGE_SAMPLES = 256


def sample_mask_pixels(distance_map: torch.Tensor, count: int) -> torch.Tensor:
    """A fixed, evenly strided sample of each mask's pixels: the same pixels every call, no random numbers.

    The mask is where ``distance_map`` is 0. Its pixels, in row-major order, are taken at the ranks
    ``floor((i + 0.5) n / count)``, ``i = 0 .. count - 1``, for a mask of ``n`` pixels: spread over the whole mask,
    and repeated (each as often as the others, give or take one) when the mask has fewer than ``count`` pixels.

    Args:
        distance_map: ``(B, H, W)`` distance to the mask in pixels
            (:func:`~scorehoi_diffusers.guidance.mask_distance_transform`), 0 inside; every mask non-empty.
        count: the number of pixels ``M`` per mask, >= 1.

    Returns:
        ``(B, M, 2)`` pixel coordinates ``(u, v)`` (pixel centres on integers) in ``distance_map``'s dtype.
    """
    batch, height, width = distance_map.shape
    inside = (distance_map <= 0).reshape(batch, height * width)
    # A stable descending sort puts each mask's pixels first, in row-major order.
    order = torch.sort(inside.to(torch.uint8), dim=1, descending=True, stable=True).indices  # (B, H*W)
    strides = torch.arange(count, device=distance_map.device, dtype=torch.float64) + 0.5
    ranks = (strides * inside.sum(1, keepdim=True) / count).long().clamp(max=height * width - 1)  # (B, M)
    flat = order.gather(1, ranks)
    return torch.stack([flat % width, flat // width], dim=-1).to(distance_map.dtype)


def mask_coverage_loss(points_cam: torch.Tensor, intrinsics: torch.Tensor, mask_pixels: torch.Tensor,
                       image_diagonal: float) -> torch.Tensor:
    """How far the mask's pixels lie from the projected body: mean robust distance, in image diagonals.

    Each mask pixel costs the Charbonnier distance ``sqrt(d^2 + c^2) - c`` (``c`` =
    :data:`COVERAGE_SCALE_PIXELS`) to its nearest projected point, so a part of the mask no body point reaches
    (a long coat, an arm the body holds elsewhere) pulls the nearest points out to it. The mask term
    (:func:`~scorehoi_diffusers.guidance.mask_term`) is the converse: it pulls points that lie outside the mask in.

    Args:
        points_cam: ``(B, N, 3)`` camera-space body points.
        intrinsics: ``(B, 3, 3)``.
        mask_pixels: ``(B, M, 2)`` mask pixels (:func:`sample_mask_pixels`) in the pixels of ``intrinsics``.
        image_diagonal: the mask image's diagonal in pixels, the unit of the loss.

    Returns:
        ``(B,)`` loss, near 0 when every mask pixel has a projected point on it.
    """
    projected = project_points(points_cam, intrinsics)  # (B, N, 2)
    pixels = mask_pixels.to(projected.dtype)
    # The nearest point is found without autograd and its offset recomputed from it: the same loss as a min over
    # the (B, M, N) distances, but the backward pass touches M points instead of the whole (B, M, N, 2) difference.
    with torch.no_grad():
        nearest = (pixels[:, :, None] - projected[:, None]).square().sum(-1).argmin(-1)  # (B, M)
    nearest_points = projected.gather(1, nearest[..., None].expand(-1, -1, 2))  # (B, M, 2)
    squared = (pixels - nearest_points).square().sum(-1)  # (B, M)
    scale = COVERAGE_SCALE_PIXELS
    distance = (squared + scale * scale).sqrt() - scale
    return distance.mean(-1) / image_diagonal
