"""Human-object interaction parameters and their diffusion vector ``x0``.

``HOIParams`` is what a user reads and writes: rotation matrices, betas in SMPL-H units and metres.
``HOIParamCodec`` turns it into the flat ``(B, 331)`` vector the diffusion prior works on and back,
laid out exactly as the paper's release:

====================  =====================================================================
slice                 content
====================  =====================================================================
``0:6``               body global orientation (root), 6D
``6:132``             21 body joints, 6D each (SMPL-H order)
``132:222``           15 left-hand joints, 6D each (offsets from the SMPL-H mean hand)
``222:312``           15 right-hand joints, 6D each
``312:318``           object rotation, 6D
``318:321``           object translation in metres, relative to the pelvis, camera axes
``321:331``           10 betas, min-max normalised to [-1, 1]
====================  =====================================================================

6D is the first two columns of a rotation matrix, flattened row-major ``[R00, R01, R10, R11, R20, R21]``;
decoding orthonormalises them with Gram-Schmidt, so any 6 numbers decode to a proper rotation.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

import roma
import torch

from .input_checks import check_last_dims, check_tensor
from .precision import geometry_dtype, upcast
from .skeleton import NUM_BODY_JOINTS, NUM_HAND_JOINTS

NUM_BETAS = 10
X0_DIM = 331  # width of the diffusion vector x0, the denoiser's sample

# Slices of the x0 vector, named so that no other module repeats the numbers.
ROOT_SLICE = slice(0, 6)
BODY_POSE_SLICE = slice(6, 132)
LEFT_HAND_SLICE = slice(132, 222)
RIGHT_HAND_SLICE = slice(222, 312)
OBJECT_ROTATION_SLICE = slice(312, 318)
OBJECT_TRANSLATION_SLICE = slice(318, 321)
BETAS_SLICE = slice(321, 331)
# The five rotation slices above, in order and side by side.
ROTATIONS_SLICE = slice(ROOT_SLICE.start, OBJECT_ROTATION_SLICE.stop)
# The object's pose (rotation, then translation), side by side.
OBJECT_SLICE = slice(OBJECT_ROTATION_SLICE.start, OBJECT_TRANSLATION_SLICE.stop)


def matrix_to_rotation_6d(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to 6D ``(..., 6)``: the first two columns, row-major."""
    check_last_dims("matrix", matrix, (3, 3))
    return matrix[..., :, :2].reshape(*matrix.shape[:-2], 6)


# Below this norm a 6D column counts as zero (or as parallel to the first) and a fixed fallback is used.
_DEGENERATE_NORM = 1e-12


def rotation_6d_to_matrix(rotation_6d: torch.Tensor) -> torch.Tensor:
    """6D ``(..., 6)`` to rotation matrices ``(..., 3, 3)`` by Gram-Schmidt (b1, b2, b1 x b2 as columns).

    Degenerate input still gives a rotation: a zero first column falls back to the x axis, and a second
    column parallel to the first falls back to a fixed perpendicular, so no 6 finite numbers decode to NaN.
    """
    check_last_dims("rotation_6d", rotation_6d, (6,))
    columns = rotation_6d.reshape(*rotation_6d.shape[:-1], 3, 2)
    a1, a2 = columns[..., 0], columns[..., 1]
    norm1 = a1.norm(dim=-1, keepdim=True)
    x_axis = torch.zeros_like(a1)
    x_axis[..., 0] = 1.0
    b1 = torch.where(norm1 > _DEGENERATE_NORM, a1 / norm1.clamp_min(_DEGENERATE_NORM), x_axis)
    a2 = a2 - (b1 * a2).sum(dim=-1, keepdim=True) * b1
    norm2 = a2.norm(dim=-1, keepdim=True)
    # Perpendicular fallback: b1 crossed with the axis it is least aligned with.
    least = torch.nn.functional.one_hot(b1.abs().argmin(dim=-1), 3).to(b1)
    fallback = torch.nn.functional.normalize(torch.linalg.cross(b1, least, dim=-1), dim=-1)
    b2 = torch.where(norm2 > _DEGENERATE_NORM, a2 / norm2.clamp_min(_DEGENERATE_NORM), fallback)
    return torch.stack([b1, b2, torch.linalg.cross(b1, b2, dim=-1)], dim=-1)


def axis_angle_to_matrix(axis_angle: torch.Tensor) -> torch.Tensor:
    """Axis-angle ``(..., 3)`` to rotation matrices ``(..., 3, 3)``; finite with finite gradients at 0."""
    check_last_dims("axis_angle", axis_angle, (3,))
    return roma.rotvec_to_rotmat(axis_angle)


def matrix_to_axis_angle(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices ``(..., 3, 3)`` to axis-angle ``(..., 3)``, angle in [0, pi]; no NaN at 0 or pi."""
    check_last_dims("matrix", matrix, (3, 3))
    return roma.rotmat_to_rotvec(matrix)


@dataclass
class HOIParams:
    """One batch of human-object interaction parameters, all rotations as matrices.

    Attributes:
        global_orient: ``(B, 3, 3)`` body root rotation, camera axes.
        body_pose: ``(B, 21, 3, 3)`` the 21 SMPL-H body joints, relative to their parents.
        left_hand_pose: ``(B, 15, 3, 3)`` left-hand joints as given to smplx with ``flat_hand_mean=False``
            (i.e. offsets from the SMPL-H mean hand, added in axis-angle by smplx).
        right_hand_pose: ``(B, 15, 3, 3)`` right-hand joints, likewise.
        betas: ``(B, 10)`` SMPL-H shape coefficients (not normalised).
        object_rotation: ``(B, 3, 3)`` object rotation, template frame to camera axes.
        object_translation: ``(B, 3)`` object position in metres relative to the pelvis joint, camera axes.
        camera_translation: ``(B, 3)`` pelvis joint position in camera space, metres. Not part of ``x0``.

    A point ``p`` of the body with the pelvis at the origin is at ``p + camera_translation`` in the camera;
    an object template point ``q`` is at ``object_rotation @ q + object_translation + camera_translation``.
    """

    global_orient: torch.Tensor
    body_pose: torch.Tensor
    left_hand_pose: torch.Tensor
    right_hand_pose: torch.Tensor
    betas: torch.Tensor
    object_rotation: torch.Tensor
    object_translation: torch.Tensor
    camera_translation: torch.Tensor

    _TRAILING_SHAPES = {
        "global_orient": (3, 3),
        "body_pose": (NUM_BODY_JOINTS, 3, 3),
        "left_hand_pose": (NUM_HAND_JOINTS, 3, 3),
        "right_hand_pose": (NUM_HAND_JOINTS, 3, 3),
        "betas": (NUM_BETAS,),
        "object_rotation": (3, 3),
        "object_translation": (3,),
        "camera_translation": (3,),
    }

    def __post_init__(self) -> None:
        batch_size = None
        for name, trailing in self._TRAILING_SHAPES.items():
            value = getattr(self, name)
            spec = "(" + ", ".join(["B", *map(str, trailing)]) + ")"
            check_tensor(f"HOIParams.{name}", value, (None, *trailing), spec)
            if batch_size is None:
                batch_size = value.shape[0]
            elif value.shape[0] != batch_size:
                raise ValueError(
                    f"HOIParams.{name} has batch size {value.shape[0]}, but global_orient has {batch_size}."
                )

    @property
    def batch_size(self) -> int:
        return self.global_orient.shape[0]

    @property
    def device(self) -> torch.device:
        return self.global_orient.device

    @property
    def dtype(self) -> torch.dtype:
        return self.global_orient.dtype

    def to(self, device=None, dtype=None) -> HOIParams:
        """A copy on ``device`` and/or in ``dtype``."""
        return HOIParams(**{f.name: getattr(self, f.name).to(device=device, dtype=dtype) for f in fields(self)})

    def detach(self) -> HOIParams:
        return HOIParams(**{f.name: getattr(self, f.name).detach() for f in fields(self)})

    def __getitem__(self, index) -> HOIParams:
        """Select samples; an integer index keeps the batch dimension."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        return HOIParams(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @classmethod
    def cat(cls, items: Sequence[HOIParams]) -> HOIParams:
        """Concatenate batches."""
        return cls(**{f.name: torch.cat([getattr(p, f.name) for p in items]) for f in fields(cls)})

    @classmethod
    def identity(cls, batch_size: int = 1, device=None, dtype=torch.float32) -> HOIParams:
        """Rest pose, mean shape, object at the pelvis, pelvis 3 m in front of the camera."""
        eye = torch.eye(3, device=device, dtype=dtype)
        camera_translation = torch.zeros(batch_size, 3, device=device, dtype=dtype)
        camera_translation[:, 2] = 3.0
        return cls(
            global_orient=eye.expand(batch_size, 3, 3).clone(),
            body_pose=eye.expand(batch_size, NUM_BODY_JOINTS, 3, 3).clone(),
            left_hand_pose=eye.expand(batch_size, NUM_HAND_JOINTS, 3, 3).clone(),
            right_hand_pose=eye.expand(batch_size, NUM_HAND_JOINTS, 3, 3).clone(),
            betas=torch.zeros(batch_size, NUM_BETAS, device=device, dtype=dtype),
            object_rotation=eye.expand(batch_size, 3, 3).clone(),
            object_translation=torch.zeros(batch_size, 3, device=device, dtype=dtype),
            camera_translation=camera_translation,
        )

    def full_pose_axis_angle(self) -> torch.Tensor:
        """``(B, 52, 3)`` axis-angle of all SMPL-H joints (hand entries still relative to the mean hand)."""
        matrices = torch.cat(
            [self.global_orient[:, None], self.body_pose, self.left_hand_pose, self.right_hand_pose], dim=1
        )
        return matrix_to_axis_angle(matrices)


class HOIParamCodec:
    """Converts :class:`HOIParams` to and from the diffusion vector ``x0`` of shape ``(B, 331)``.

    Args:
        betas_min: ``(10,)`` per-dimension minimum of the training betas.
        betas_max: ``(10,)`` per-dimension maximum; betas are mapped linearly so that
            ``betas_min -> -1`` and ``betas_max -> 1``.

    The statistics are plain lists so they live in a JSON config (the pipeline's), not in a pickle. Both
    directions compute in at least float32 (Gram-Schmidt in half precision is far from orthonormal) and return
    the dtype they are given.
    """

    def __init__(self, betas_min: Sequence[float], betas_max: Sequence[float]):
        betas_min = torch.as_tensor(betas_min, dtype=torch.float64)
        betas_max = torch.as_tensor(betas_max, dtype=torch.float64)
        for name, value in (("betas_min", betas_min), ("betas_max", betas_max)):
            if value.shape != (NUM_BETAS,):
                raise ValueError(f"`{name}` must have {NUM_BETAS} values, got shape {tuple(value.shape)}.")
            if not torch.isfinite(value).all():
                raise ValueError(f"`{name}` must be finite, got {value.tolist()}.")
        if not (betas_max > betas_min).all():
            raise ValueError("Every `betas_max` entry must be greater than the matching `betas_min` entry.")
        self.betas_min = betas_min
        self.betas_max = betas_max

    @classmethod
    def default(cls) -> HOIParamCodec:
        """Betas in [-3, 3], the usual range of SMPL shape coefficients."""
        return cls([-3.0] * NUM_BETAS, [3.0] * NUM_BETAS)

    def normalize_betas(self, betas: torch.Tensor) -> torch.Tensor:
        """``(B, 10)`` betas to ``[-1, 1]`` (values outside the training range map outside it)."""
        low, high = self.betas_min.to(betas), self.betas_max.to(betas)
        return 2.0 * (betas - low) / (high - low) - 1.0

    def denormalize_betas(self, normalized: torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`normalize_betas`."""
        low, high = self.betas_min.to(normalized), self.betas_max.to(normalized)
        return (normalized + 1.0) * 0.5 * (high - low) + low

    def encode(self, params: HOIParams) -> torch.Tensor:
        """:class:`HOIParams` with batch B to ``x0`` of shape ``(B, 331)``."""
        if not isinstance(params, HOIParams):
            raise TypeError(f"`params` must be HOIParams, got {type(params).__name__}.")
        dtype = params.dtype
        params = params.to(dtype=geometry_dtype(dtype))
        batch = params.batch_size
        x0 = torch.cat(
            [
                matrix_to_rotation_6d(params.global_orient),
                matrix_to_rotation_6d(params.body_pose).reshape(batch, -1),
                matrix_to_rotation_6d(params.left_hand_pose).reshape(batch, -1),
                matrix_to_rotation_6d(params.right_hand_pose).reshape(batch, -1),
                matrix_to_rotation_6d(params.object_rotation),
                params.object_translation,
                self.normalize_betas(params.betas),
            ],
            dim=-1,
        )
        return x0.to(dtype)

    def decode(self, x0: torch.Tensor, camera_translation: torch.Tensor | None = None) -> HOIParams:
        """``x0`` of shape ``(B, 331)`` to :class:`HOIParams`.

        Args:
            x0: ``(B, 331)`` diffusion vector.
            camera_translation: ``(B, 3)`` pelvis position in camera space; defaults to 3 m straight ahead
                since ``x0`` does not hold it.
        """
        check_tensor("x0", x0, (None, X0_DIM), f"(B, {X0_DIM})")
        dtype = x0.dtype
        x0 = upcast(x0)
        batch = x0.shape[0]
        if camera_translation is None:
            camera_translation = x0.new_zeros(batch, 3)
            camera_translation[:, 2] = 3.0
        # Every rotation in one Gram-Schmidt pass (the guidance decodes x0 at every step; one pass is a fifth of
        # the operations of five): root, body, hands and object rotation lie side by side in x0.
        rotations = rotation_6d_to_matrix(x0[:, ROTATIONS_SLICE].reshape(batch, -1, 6))  # (B, 53, 3, 3)
        global_orient, body_pose, left_hand_pose, right_hand_pose, object_rotation = rotations.split(
            [1, NUM_BODY_JOINTS, NUM_HAND_JOINTS, NUM_HAND_JOINTS, 1], dim=1
        )
        params = HOIParams(
            global_orient=global_orient[:, 0],
            body_pose=body_pose,
            left_hand_pose=left_hand_pose,
            right_hand_pose=right_hand_pose,
            betas=self.denormalize_betas(x0[:, BETAS_SLICE]),
            object_rotation=object_rotation[:, 0],
            object_translation=x0[:, OBJECT_TRANSLATION_SLICE],
            camera_translation=camera_translation,
        )
        return params.to(dtype=dtype)
