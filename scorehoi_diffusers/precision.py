"""The dtype geometry is computed in: the model's dtype, but never below float32.

Half-precision weights (float16, bfloat16) are fine for the networks, but skinning, signed-distance lookups, the
x0 codec's rotations and the guidance loss and its gradient lose millimetres (and get NaN gradients) in 10 or 8
mantissa bits. They run in :func:`geometry_dtype` of the model dtype instead: float32 for half precision, the dtype
itself for float32 and float64. For float32 every cast this implies is a no-op, so float32 results are unchanged.
"""
from __future__ import annotations

import torch


def geometry_dtype(dtype: torch.dtype) -> torch.dtype:
    """``dtype`` promoted to at least float32: float16 and bfloat16 become float32, float64 stays float64."""
    return torch.promote_types(dtype, torch.float32)


def upcast(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` in :func:`geometry_dtype` of its own dtype (itself, uncopied, when already float32 or wider)."""
    return tensor.to(geometry_dtype(tensor.dtype))
