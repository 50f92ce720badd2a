"""A conventional body-pose prior: one Gaussian over the 21 body joints' axis-angle rotations ``(B, 63)``.

This is the hand-made prior an optimisation-only fit uses in place of a learned one (SMPLify's pose term is of this
kind): a full-covariance Gaussian whose negative log-likelihood penalises poses unlike the training poses. The
shipped parameters (``assets/pose_prior.safetensors``, :data:`DEFAULT_POSE_PRIOR_PATH`) were fitted by
``training/fit_pose_prior.py`` on the ground-truth poses of the synthetic *training* stream only (our own generator,
no licensed data); re-running it rewrites the file bit for bit.

The root orientation is left out (it depends on the camera) and so are the hands (the generator barely moves them).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import safetensors.torch
import torch

from .atomic_files import atomic_write_bytes
from .input_checks import check_tensor
from .params import matrix_to_axis_angle
from .skeleton import NUM_BODY_JOINTS

POSE_DIM = NUM_BODY_JOINTS * 3  # 63: axis-angle of each body joint, joint after joint
DEFAULT_POSE_PRIOR_PATH = Path(__file__).resolve().parent / "assets" / "pose_prior.safetensors"

# Added to the covariance's diagonal (rad², i.e. a 0.01 rad standard deviation): the generator holds a few joint axes
# almost still (standard deviations of 0.015 rad), and without a floor their precision would make a tiny change
# there dominate the likelihood.
VARIANCE_FLOOR = 1e-4

_KEYS = ("mean", "covariance")


def body_pose_axis_angle(body_pose: torch.Tensor) -> torch.Tensor:
    """Body-joint rotation matrices ``(B, 21, 3, 3)`` to the prior's vector ``(B, 63)`` (axis-angle, joint by joint).

    Differentiable, so a prior on it can guide an optimisation over any rotation parameterisation.
    """
    check_tensor("body_pose", body_pose, (None, NUM_BODY_JOINTS, 3, 3), "(B, 21, 3, 3)")
    return matrix_to_axis_angle(body_pose).reshape(body_pose.shape[0], POSE_DIM)


def fit_gaussian(poses: torch.Tensor, variance_floor: float = VARIANCE_FLOOR) -> dict[str, torch.Tensor]:
    """Maximum-likelihood Gaussian of ``poses`` ``(N, 63)``, its covariance floored by ``variance_floor`` (rad²).

    Computed in float64 and returned as float32, so the same poses give the same bytes.

    Returns:
        ``{"mean": (63,), "covariance": (63, 63)}``, float32.
    """
    check_tensor("poses", poses, (None, POSE_DIM), "(N, 63)", finite=True)
    if poses.shape[0] < 2:
        raise ValueError(f"`poses` needs at least 2 rows to fit a covariance, got {poses.shape[0]}.")
    if not (math.isfinite(variance_floor) and variance_floor > 0):
        raise ValueError(f"`variance_floor` must be a finite number > 0, got {variance_floor!r}.")
    poses = poses.detach().to(torch.float64)
    mean = poses.mean(dim=0)
    centred = poses - mean
    covariance = centred.T @ centred / poses.shape[0]
    covariance = covariance + variance_floor * torch.eye(POSE_DIM, dtype=torch.float64)
    return {"mean": mean.float(), "covariance": covariance.float()}


def gaussian_negative_log_likelihood(
    pose: torch.Tensor, mean: torch.Tensor, whitening: torch.Tensor, log_det_covariance: torch.Tensor
) -> torch.Tensor:
    """Negative log-likelihood ``(B,)`` of ``pose`` ``(B, D)`` under a Gaussian of ``mean`` ``(D,)``.

    Args:
        pose: ``(B, D)`` vectors.
        mean: ``(D,)`` the Gaussian's mean.
        whitening: ``(D, D)`` lower-triangular ``C^-1``, where ``C C^T`` is the covariance (``C`` its Cholesky
            factor), so that ``|C^-1 (x - mean)|^2`` is the squared Mahalanobis distance.
        log_det_covariance: ``()`` the log-determinant of the covariance.

    Returns:
        ``(B,)``: ``0.5 * |C^-1 (x - mean)|^2 + 0.5 * log det covariance + 0.5 * D * log(2 pi)``.
    """
    dim = mean.shape[0]
    check_tensor("pose", pose, (None, dim), f"(B, {dim})")
    check_tensor("whitening", whitening, (dim, dim), f"({dim}, {dim})")
    whitened = (pose - mean) @ whitening.T
    return 0.5 * whitened.square().sum(dim=1) + 0.5 * (log_det_covariance + dim * math.log(2.0 * math.pi))


class GaussianPosePrior(torch.nn.Module):
    """The Gaussian body-pose prior; calling it gives the negative log-likelihood ``(B,)`` of body poses.

    Args:
        mean: ``(63,)`` mean axis-angle body pose.
        covariance: ``(63, 63)`` symmetric positive-definite covariance (rad²).
    """

    def __init__(self, mean: torch.Tensor, covariance: torch.Tensor):
        super().__init__()
        check_tensor("mean", mean, (POSE_DIM,), "(63,)", finite=True)
        check_tensor("covariance", covariance, (POSE_DIM, POSE_DIM), "(63, 63)", finite=True)
        covariance = covariance.detach().to(torch.float64)
        if not torch.allclose(covariance, covariance.T, rtol=1e-5, atol=1e-8):
            raise ValueError("`covariance` must be symmetric; fit it with pose_prior.fit_gaussian.")
        factor, info = torch.linalg.cholesky_ex(covariance)
        if info.item() != 0:
            raise ValueError("`covariance` must be positive definite; fit it with pose_prior.fit_gaussian.")
        identity = torch.eye(POSE_DIM, dtype=torch.float64)
        whitening = torch.linalg.solve_triangular(factor, identity, upper=False)
        self.register_buffer("mean", mean.detach().float().clone())
        self.register_buffer("covariance", covariance.float())
        self.register_buffer("whitening", whitening.float())
        self.register_buffer("log_det_covariance", (2.0 * factor.diagonal().log().sum()).float())

    @classmethod
    def from_file(cls, path: str | os.PathLike | None = None) -> GaussianPosePrior:
        """Load ``mean`` and ``covariance`` from a safetensors file (default: the shipped one)."""
        path = Path(DEFAULT_POSE_PRIOR_PATH if path is None else path)
        if not path.is_file():
            raise ValueError(f"Pose prior file {str(path)!r} does not exist; run training/fit_pose_prior.py.")
        try:
            tensors = safetensors.torch.load_file(str(path))
        except Exception as error:  # safetensors raises its own error types for a corrupt file
            raise ValueError(f"Pose prior file {str(path)!r} is not a readable safetensors file: {error}") from None
        missing = [key for key in _KEYS if key not in tensors]
        if missing:
            raise ValueError(f"Pose prior file {str(path)!r} lacks {missing}; run training/fit_pose_prior.py.")
        return cls(tensors["mean"], tensors["covariance"])

    def save(self, path: str | os.PathLike) -> Path:
        """Write ``mean`` and ``covariance`` to a safetensors file, atomically; the same prior gives the same bytes."""
        tensors = {"mean": self.mean.contiguous(), "covariance": self.covariance.contiguous()}
        return atomic_write_bytes(path, safetensors.torch.save(tensors, metadata={"format": "pt"}))

    def forward(self, body_pose: torch.Tensor) -> torch.Tensor:
        """Negative log-likelihood ``(B,)`` of body-joint rotation matrices ``(B, 21, 3, 3)``, in their dtype."""
        pose = body_pose_axis_angle(body_pose)
        dtype = pose.dtype
        return gaussian_negative_log_likelihood(
            pose, self.mean.to(dtype), self.whitening.to(dtype), self.log_det_covariance.to(dtype)
        )
