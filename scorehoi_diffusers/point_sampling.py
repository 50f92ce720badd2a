"""Farthest-point sampling: the evenly spread point subsets of the body (guidance vertices) and objects (keypoints).

Each new sample is the point farthest from everything chosen so far, so the samples spread over the whole set
and cover thin parts (fingers, a stick) as well as large ones. The result depends only on the points and the
start, never on a global random state.
"""
from __future__ import annotations

import numpy as np

__all__ = ["farthest_point_indices"]


def farthest_point_indices(points: np.ndarray, count: int, start: int | np.ndarray) -> np.ndarray:
    """Indices of ``count`` farthest-point samples of ``points``, in sampling order.

    Args:
        points: ``(N, 3)`` points.
        count: number of samples, ``1 <= count <= N``.
        start: either the index of the first sample, or a position ``(3,)`` (not necessarily one of the points):
            then the first sample is the point farthest from it and it counts as chosen for the distances.

    Returns:
        ``(count,)`` int64 indices into ``points``, all different.
    """
    points = np.asarray(points)
    if points.ndim != 2 or points.shape[1] != 3:
        raise ValueError(f"`points` must have shape (N, 3), got {points.shape}.")
    if not 0 < count <= len(points):
        raise ValueError(f"`count` must be in 1..{len(points)}, got {count}.")
    chosen = np.empty(count, dtype=np.int64)
    if isinstance(start, (int, np.integer)):
        if not 0 <= start < len(points):
            raise ValueError(f"`start` must be an index in 0..{len(points) - 1}, got {start}.")
        chosen[0] = start
        first = 1
        distance = np.linalg.norm(points - points[start], axis=1)
    else:
        first = 0
        distance = np.linalg.norm(points - np.asarray(start), axis=1)
    for i in range(first, count):
        chosen[i] = int(np.argmax(distance))
        distance = np.minimum(distance, np.linalg.norm(points - points[chosen[i]], axis=1))
    return chosen
