"""Differentiable physics and image guidance terms for score-guided refinement.

Every term is batched and returns one loss per sample, shape ``(B,)``: samples never mix, so a NaN in one
sample stays in that sample's loss and gradient. ``ScoreHOIPipeline.guidance_gradient`` differentiates the
weighted sum returned by :func:`guidance_loss` with respect to the noisy sample, and the guided scheduler step
adds it to the predicted noise.

The terms, for body points ``H`` (a downsampled body surface), object points ``O`` (keypoints or surface
samples) and per-point contact probabilities ``c`` from the contact estimator:

- **contact**: ``sum_i c_i^h relu(sdf_O(h_i) - thr)^2 + sum_j c_j^o relu(d(o_j, H) - thr)^2``;
- **penetration**: ``sum_i relu(-sdf_O(h_i))^2`` (+ object points inside the body when a body SDF is given);
- **floor**: ``c^floor (height of the object's lowest point above the floor)^2``;
- **mask**: mean distance, in image diagonals, from the projected points to their mask;
- **mask_coverage**: the converse for the person: mean robust distance, in image diagonals, from a fixed sample of
  the person mask's pixels to the nearest projected body point (:mod:`~scorehoi_diffusers.mask_coverage`), so that
  the body fills the mask as well as staying inside it;
- **keypoints_2d**: robust (Geman-McClure) reprojection error of body points against detected 2D keypoints,
  weighted by the detector's visibility, in units of the person's box size;
- **pose_prior**: the body pose's negative log-likelihood under a conventional Gaussian pose prior
  (:class:`~scorehoi_diffusers.pose_prior.GaussianPosePrior`), computed by the caller from the pose (the pipeline
  does) and handed in as ``pose_negative_log_likelihood``.

Signed distances are taken as precomputed tensors (negative inside), so this module does not depend on how
the object or body is represented. Values are not checked for NaN: guidance runs inside the sampling loop,
where one diverged sample must not stop the batch; non-finite values propagate to that sample only, and
:func:`clip_gradient_norm` zeroes that sample's gradient.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import distance_transform_edt

from .camera import project_points
from .input_checks import check_tensor, mask_inside
from .mask_coverage import mask_coverage_loss
from .precision import upcast

# The keypoint term's weight and Geman-McClure scale (in person-box sizes) and the camera refinement's step, chosen
# on the validation slice with simulated detections by training/choose_keypoints.py (lowest CD_h + CD_o at N = 2
# among the settings with the fewest flipped bodies; the README's guidance section has the numbers). The term is
# in squared box sizes (a 5 % error costs 0.0025), hence a weight of 1000 next to the mask term's 10.
DEFAULT_KEYPOINTS_WEIGHT = 1000.0
DEFAULT_KEYPOINTS_SIGMA = 0.1
DEFAULT_CAMERA_STEP_SIZE = 0.0001
# The terms of the guidance loss, each weighed by the GuidanceConfig field of its name (the keys of the terms dict
# guidance_loss returns).
TERMS = ("contact", "penetration", "floor", "mask", "mask_coverage", "keypoints_2d", "pose_prior")


@dataclass
class GuidanceConfig:
    """Weights and settings of the guidance loss.

    Args:
        scale: the guidance scale ``s_g`` of the guided DDIM step,
            ``eps_hat = eps + sqrt(1 - alpha_bar_t) * s_g * grad_{x_t} L``. It is *not* applied by
            :func:`guidance_loss` (which returns ``L``, the weighted sum of the terms); the scheduler applies
            it. ``0`` turns guidance off.
        contact, penetration, floor, mask, mask_coverage, keypoints_2d, pose_prior: non-negative weights of the
            terms in ``L``; a term with weight 0 is not computed. ``keypoints_2d`` only acts when keypoints are
            given, so its non-zero default leaves a run without keypoints unchanged; ``mask_coverage`` (in image
            diagonals, like ``mask``) only acts with a person mask; ``pose_prior`` weighs the shipped Gaussian pose
            prior's negative log-likelihood of the body pose (the conventional prior the optimisation-only baseline
            adds to its loss), 0 by default.
        keypoints_2d_sigma: the Geman-McClure scale of the keypoint term, in units of the person's box size:
            residuals well under it count quadratically, residuals well over it saturate (outliers).
        camera_step_size: step of the camera-translation refinement that runs with keypoints
            (:mod:`~scorehoi_diffusers.camera_refinement`), in metres per unit of loss gradient; 0 keeps the
            camera translation fixed.
        contact_threshold: distance in metres under which a contact point counts as touching (no loss).
        contact_decision: when set, a probability in (0, 1): the contact and floor terms weigh each point by the
            estimator's decision (probability > ``contact_decision``: 1, else 0) instead of by its probability.
            With probabilities, a point the estimator gives 0.3 is still pulled at 0.3 of the weight, and over many
            cycles the body creeps into contact around the true contacts (contact precision fell as the cycles
            went on); a decision pulls only the points the estimator calls in contact. ``None`` weighs by the
            probabilities.
        add_contacts: whether the contact refresh after each cycle may raise a label (add a contact). ``False``
            keeps each label at most at its previous value, so a refresh only releases contacts
            (``Contacts.released_by``) and the labels keep the initial estimate's precision. The pipeline's
            ``add_contacts`` argument overrides it.
        inversion_iterations: fixed-point iterations per DDIM inversion step (an integer >= 0; one denoiser pass
            each). ``0`` is the paper's plain DDIM inversion; ``k > 0`` makes inversion the exact inverse of unguided
            denoising, so a cycle without guidance returns to its start (``ddim_inversion.invert``; needs an
            ``epsilon``-predicting scheduler). The pipeline's ``inversion_iterations`` argument overrides it.
        direct_inversion: whether each denoising step adds direct inversion's correction (Ju et al., ICLR 2024):
            the gap between the inversion's recorded path and the unguided step back along it
            (``ddim_inversion.inversion_offsets``), so that a cycle without guidance (η = 0, the object denoised by
            the prior) returns exactly to its start whatever ``inversion_iterations`` is. No extra denoiser pass.
        up_axis: the "up" direction in the points' frame (camera axes); the default ``(0, -1, 0)`` is up for
            an upright OpenCV camera (y down). Normalised internally.
        floor_plane: optional user floor ``(nx, ny, nz, d)`` in camera space, ``n . p + d = 0`` with ``n``
            pointing up (need not be unit length). When ``None`` the floor is found from the points.
        max_grad_norm: optional per-sample bound on the norm of the guidance gradient, applied by the
            pipeline with :func:`clip_gradient_norm`.
    """

    scale: float = 1.0
    contact: float = 0.5
    penetration: float = 0.1
    floor: float = 0.5
    mask: float = 0.0
    mask_coverage: float = 0.0
    keypoints_2d: float = DEFAULT_KEYPOINTS_WEIGHT
    pose_prior: float = 0.0
    keypoints_2d_sigma: float = DEFAULT_KEYPOINTS_SIGMA
    camera_step_size: float = DEFAULT_CAMERA_STEP_SIZE
    contact_threshold: float = 0.02
    contact_decision: float | None = None
    add_contacts: bool = True
    inversion_iterations: int = 0
    direct_inversion: bool = False
    up_axis: tuple[float, float, float] = (0.0, -1.0, 0.0)
    floor_plane: tuple[float, float, float, float] | None = None
    max_grad_norm: float | None = None

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = "`guidance_config`") -> GuidanceConfig:
        """A config from a dict of its fields; unknown keys are a ``ValueError`` naming ``source`` and the keys."""
        known = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"{source} has unknown keys {unknown}; GuidanceConfig fields are {sorted(known)}.")
        return cls(**values)

    @classmethod
    def release(cls) -> GuidanceConfig:
        """The paper release's weights: contact 0.5, floor 0.5, penetration 0.1, mask 0, scale 1.

        The release has no keypoint input; the keypoint term keeps its default weight, which acts only when
        keypoints are given.
        """
        return cls(scale=1.0, contact=0.5, penetration=0.1, floor=0.5, mask=0.0)

    def __post_init__(self):
        for name in ("scale", *TERMS, "camera_step_size", "contact_threshold"):
            value = getattr(self, name)
            if not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
                raise ValueError(f"GuidanceConfig.{name} must be a finite number >= 0, got {value!r}.")
            setattr(self, name, float(value))
        sigma = self.keypoints_2d_sigma
        if not isinstance(sigma, numbers.Real) or not math.isfinite(sigma) or sigma <= 0:
            raise ValueError(f"GuidanceConfig.keypoints_2d_sigma must be a finite number > 0, got {sigma!r}.")
        self.keypoints_2d_sigma = float(sigma)
        decision = self.contact_decision
        if decision is not None:
            if isinstance(decision, bool) or not isinstance(decision, numbers.Real) or not 0 < decision < 1:
                raise ValueError(f"GuidanceConfig.contact_decision must be a probability in (0, 1) or None, got "
                                 f"{decision!r}.")
            self.contact_decision = float(decision)
        if not isinstance(self.add_contacts, bool):
            raise ValueError(f"GuidanceConfig.add_contacts must be True or False, got {self.add_contacts!r}.")
        iterations = self.inversion_iterations
        if isinstance(iterations, bool) or not isinstance(iterations, numbers.Integral) or iterations < 0:
            raise ValueError(f"GuidanceConfig.inversion_iterations must be an integer >= 0, got {iterations!r}.")
        self.inversion_iterations = int(iterations)
        if not isinstance(self.direct_inversion, bool):
            raise ValueError(f"GuidanceConfig.direct_inversion must be True or False, got {self.direct_inversion!r}.")
        # Tuples (not lists) so that configs loaded from JSON compare equal to the defaults.
        self.up_axis = _float_tuple(self.up_axis, 3, "up_axis")
        if math.hypot(*self.up_axis) == 0:
            raise ValueError("GuidanceConfig.up_axis must be a non-zero vector, got (0, 0, 0).")
        if self.floor_plane is not None:
            self.floor_plane = _float_tuple(self.floor_plane, 4, "floor_plane")
            if math.hypot(*self.floor_plane[:3]) == 0:
                raise ValueError("GuidanceConfig.floor_plane normal (nx, ny, nz) must be non-zero.")
        if self.max_grad_norm is not None:
            if not math.isfinite(self.max_grad_norm) or self.max_grad_norm <= 0:
                raise ValueError(
                f"GuidanceConfig.max_grad_norm must be > 0 or None, got {self.max_grad_norm!r}."
            )
            self.max_grad_norm = float(self.max_grad_norm)


def _float_tuple(values: Sequence[float], length: int, name: str) -> tuple:
    values = tuple(float(v) for v in values)
    if len(values) != length or not all(math.isfinite(v) for v in values):
        raise ValueError(f"GuidanceConfig.{name} must be {length} finite numbers, got {values!r}.")
    return values


# ----------------------------------------------------------------------------------------------------------
# Validation


def _check_probability(name: str, tensor: torch.Tensor) -> None:
    """Raise if any value is outside [0, 1] (NaN is let through, see the module docstring).

    Skipped while ``torch.compile`` traces the loss (``compile_guidance``): reading a tensor's values would split
    the graph at every term. The pipeline's eager end-of-cycle loss still checks the same tensors.
    """
    if torch.compiler.is_compiling():
        return
    if bool(((tensor < 0) | (tensor > 1)).any()):
        raise ValueError(
            f"`{name}` must hold probabilities in [0, 1], got values in "
            f"[{tensor.min().item():.4g}, {tensor.max().item():.4g}]; pass sigmoid outputs, not logits."
        )


# ----------------------------------------------------------------------------------------------------------
# Distances and the physical terms


def points_to_points_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Distance from each point of ``a`` to its nearest point of ``b``.

    The nearest neighbour is chosen without gradient (a ``(B, M, N)`` squared-distance matrix, computed with
    a matrix product after centring for precision), then the distance to it is recomputed exactly and
    differentiably; this is the gradient of the min, without an ``(B, M, N, 3)`` intermediate. The distance
    is exactly 0 with a finite (zero) gradient when two points coincide.

    Args:
        a: ``(B, M, 3)`` query points.
        b: ``(B, N, 3)`` target points, same frame.

    Returns:
        ``(B, M)`` distances, same units as the points.
    """
    check_tensor("a", a, (None, None, 3), "(B, M, 3)")
    check_tensor("b", b, (a.shape[0], None, 3), "(B, N, 3)")
    if b.shape[1] == 0:
        raise ValueError("`b` must hold at least one point per sample, got shape (B, 0, 3).")
    with torch.no_grad():
        # Centring on b's mean keeps |a|^2 + |b|^2 - 2 a.b from cancelling badly for points far from the
        # origin (a camera frame puts the scene metres away).
        centre = b.mean(dim=1, keepdim=True)
        a_c, b_c = a - centre, b - centre
        squared = (
            (a_c * a_c).sum(-1, keepdim=True) + (b_c * b_c).sum(-1).unsqueeze(1) - 2 * a_c @ b_c.transpose(1, 2)
        )
        nearest = squared.argmin(dim=2)  # (B, M)
    closest = torch.gather(b, 1, nearest.unsqueeze(-1).expand(-1, -1, 3))  # (B, M, 3)
    # vector_norm's gradient at a zero vector is 0 (a subgradient), not NaN.
    return torch.linalg.vector_norm(a - closest, dim=-1)


def contact_term(
    body_object_sdf: torch.Tensor,
    human_contact: torch.Tensor,
    object_to_body_distance: torch.Tensor,
    object_contact: torch.Tensor,
    threshold: float = 0.02,
) -> torch.Tensor:
    """Pull body and object points labelled "in contact" to within ``threshold`` of the other surface.

    ``sum_i c_i^h relu(sdf_i - thr)^2 + sum_j c_j^o relu(d_j - thr)^2``. Points inside the object
    (negative SDF) have no contact loss; the penetration term handles them.

    Args:
        body_object_sdf: ``(B, N)`` signed distance of each body point to the object surface (m).
        human_contact: ``(B, N)`` contact probability of each body point, in [0, 1].
        object_to_body_distance: ``(B, M)`` distance of each object point to the body (m), e.g. from
            :func:`points_to_points_distance`.
        object_contact: ``(B, M)`` contact probability of each object point, in [0, 1].
        threshold: contact distance in metres.

    Returns:
        ``(B,)`` loss in m^2.
    """
    check_tensor("body_object_sdf", body_object_sdf, (None, None), "(B, N)")
    batch, num_body = body_object_sdf.shape
    check_tensor("human_contact", human_contact, (batch, num_body), "(B, N)")
    check_tensor("object_to_body_distance", object_to_body_distance, (batch, None), "(B, M)")
    check_tensor("object_contact", object_contact, tuple(object_to_body_distance.shape), "(B, M)")
    _check_probability("human_contact", human_contact)
    _check_probability("object_contact", object_contact)
    human = (human_contact * F.relu(body_object_sdf - threshold).square()).sum(-1)
    obj = (object_contact * F.relu(object_to_body_distance - threshold).square()).sum(-1)
    return human + obj


def penetration_term(
    body_object_sdf: torch.Tensor, object_body_sdf: torch.Tensor | None = None
) -> torch.Tensor:
    """Squared penetration depth of body points inside the object (and object points inside the body).

    ``sum_i relu(-sdf_i)^2``: zero, with zero gradient, outside; inside, its gradient ``-2 * depth`` pushes
    each point out along the SDF gradient (a count of inside points, as in the paper's release, has none).

    Args:
        body_object_sdf: ``(B, N)`` signed distance of body points to the object, negative inside (m).
        object_body_sdf: optional ``(B, M)`` signed distance of object points to a closed body mesh.

    Returns:
        ``(B,)`` loss in m^2.
    """
    check_tensor("body_object_sdf", body_object_sdf, (None, None), "(B, N)")
    loss = F.relu(-body_object_sdf).square().sum(-1)
    if object_body_sdf is not None:
        check_tensor("object_body_sdf", object_body_sdf, (body_object_sdf.shape[0], None), "(B, M)")
        loss = loss + F.relu(-object_body_sdf).square().sum(-1)
    return loss


def floor_term(
    object_points: torch.Tensor,
    body_points: torch.Tensor | None,
    floor_contact: torch.Tensor,
    up_axis: Sequence[float] = (0.0, -1.0, 0.0),
    floor_plane: Sequence[float] | None = None,
) -> torch.Tensor:
    """Pull an object that touches the floor down onto it: ``c^floor * (h_obj - h_floor)^2``.

    Heights are along ``up_axis``. Without ``floor_plane`` the floor is the lowest body or object point,
    **detached**: the term moves the object toward the floor and never moves the floor (so it cannot lift
    the body's feet up to a floating object). It can therefore pull an object down to the feet but never
    push it up; it is exactly zero when the object's lowest point is the lowest point of the scene. With
    ``floor_plane`` the height is the signed distance to that plane, and ``body_points`` is not used.

    The object's height is a hard min over its points, not a soft-min: a soft-min lies up to
    ``tau * log M`` below the true lowest point, so an object resting on the floor would still be pulled
    into it. The hard min is exactly zero there, and its gradient (through the lowest point) moves a rigid
    object as a whole, which is all a rigid object can do.

    Args:
        object_points: ``(B, M, 3)`` object points.
        body_points: ``(B, N, 3)`` body points, same frame (camera space when ``floor_plane`` is given).
        floor_contact: ``(B,)`` probability that the object touches the floor, in [0, 1].
        up_axis: 3 numbers, the up direction in the points' frame (normalised here).
        floor_plane: optional ``(nx, ny, nz, d)``, ``n . p + d = 0`` with ``n`` pointing up.

    Returns:
        ``(B,)`` loss in m^2.
    """
    check_tensor("object_points", object_points, (None, None, 3), "(B, M, 3)")
    batch = object_points.shape[0]
    check_tensor("floor_contact", floor_contact, (batch,), "(B,)")
    _check_probability("floor_contact", floor_contact)
    dtype, device = object_points.dtype, object_points.device
    if floor_plane is not None:
        plane = torch.as_tensor(floor_plane, dtype=dtype, device=device)
        if plane.shape != (4,):
            raise ValueError(f"`floor_plane` must be 4 numbers (nx, ny, nz, d), got {tuple(plane.shape)}.")
        scale = plane[:3].norm()
        if scale == 0:
            raise ValueError("`floor_plane` normal (nx, ny, nz) must be non-zero.")
        heights = (object_points @ plane[:3] + plane[3]) / scale  # (B, M)
        floor = torch.zeros(batch, dtype=dtype, device=device)
    else:
        check_tensor("body_points", body_points, (batch, None, 3), "(B, N, 3)")
        up = torch.as_tensor(up_axis, dtype=dtype, device=device)
        if up.shape != (3,) or up.norm() == 0:
            raise ValueError(f"`up_axis` must be a non-zero 3-vector, got {up_axis!r}.")
        up = up / up.norm()
        heights = object_points @ up  # (B, M)
        floor = torch.minimum(heights.amin(-1), (body_points @ up).amin(-1)).detach()
    return floor_contact * (heights.amin(-1) - floor).square()


# ----------------------------------------------------------------------------------------------------------
# Image terms


def mask_distance_transform(mask: torch.Tensor, name: str = "mask") -> torch.Tensor:
    """Euclidean distance in pixels from every pixel to the nearest mask pixel (0 inside the mask).

    Preprocessing, run once per image before sampling: scipy's exact EDT on CPU, one call per image (a
    single 3D call would measure distances across images).

    Args:
        mask: ``(B, H, W)`` binary mask: bool, 0/1 or 0/255 integers, or floats where values >= 0.5 are inside
            (the rules of :func:`~scorehoi_diffusers.input_checks.mask_inside`).
        name: how errors refer to the mask, e.g. ``"object_mask"``.

    Returns:
        ``(B, H, W)`` float32 on ``mask``'s device.
    """
    check_tensor(name, mask, (None, None, None), "(B, H, W)")
    inside = mask_inside(mask, name)
    empty = np.flatnonzero(~inside.reshape(inside.shape[0], -1).any(axis=1))
    if empty.size:
        raise ValueError(
            f"`{name}` is empty (no pixel inside) for batch item(s) {empty.tolist()}; the mask term needs a "
            "non-empty mask: fix the mask or set the mask weight to 0."
        )
    distances = np.stack([distance_transform_edt(~image) for image in inside]).astype(np.float32)
    return torch.from_numpy(distances).to(mask.device)


def image_diagonal(height: int, width: int) -> float:
    """The diagonal in pixels of a ``height`` x ``width`` image: the unit of the mask and mask-coverage terms."""
    return math.hypot(height, width)


def mask_term(points_cam: torch.Tensor, intrinsics: torch.Tensor, distance_map: torch.Tensor) -> torch.Tensor:
    """Mean distance from projected points to a mask, in units of the image diagonal.

    The distance map (from :func:`mask_distance_transform`) is sampled bilinearly at the projected points
    (``grid_sample``, ``align_corners=True`` so pixel centres sit at integer coordinates), which makes the
    loss differentiable w.r.t. the points. A point projecting outside the image is sampled at the nearest
    border pixel and its distance to the image is added, so it is still pulled back in (border padding
    alone would give it zero gradient).

    Args:
        points_cam: ``(B, N, 3)`` camera-space points.
        intrinsics: ``(B, 3, 3)``.
        distance_map: ``(B, H, W)`` distance to the mask in pixels.

    Returns:
        ``(B,)`` loss, 0 when every point projects inside the mask.
    """
    check_tensor("points_cam", points_cam, (None, None, 3), "(B, N, 3)")
    check_tensor("distance_map", distance_map, (points_cam.shape[0], None, None), "(B, H, W)")
    height, width = distance_map.shape[1:]
    pixels = project_points(points_cam, intrinsics)  # (B, N, 2)
    limits = pixels.new_tensor([width - 1, height - 1])
    inside_image = torch.minimum(torch.maximum(pixels, torch.zeros_like(limits)), limits)
    outside_distance = torch.linalg.vector_norm(pixels - inside_image, dim=-1)  # (B, N), 0 inside
    grid = 2 * inside_image / limits.clamp(min=1) - 1
    # grid_sample must not see NaN coordinates; NaN is put back into the affected samples below.
    finite = torch.isfinite(grid).all(-1, keepdim=True)
    grid = torch.where(finite, grid, torch.zeros_like(grid))
    sampled = F.grid_sample(
        distance_map.to(points_cam.dtype).unsqueeze(1),  # (B, 1, H, W)
        grid.unsqueeze(1),  # (B, 1, N, 2)
        mode="bilinear",
        padding_mode="border",
        align_corners=True,
    )[:, 0, 0]  # (B, N)
    sampled = torch.where(finite[..., 0], sampled, torch.full_like(sampled, float("nan")))
    return (sampled + outside_distance).mean(-1) / image_diagonal(height, width)


def geman_mcclure(squared_residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """The Geman-McClure robust penalty ``rho(r) = sigma^2 r^2 / (sigma^2 + r^2)`` of residuals given as ``r^2``.

    ``r^2`` for ``r << sigma`` (least squares), tending to ``sigma^2`` for ``r >> sigma``: an outlier costs at
    most ``sigma^2`` and its gradient fades like ``1 / r^3``, so a wrong detection cannot drag the fit.

    Args:
        squared_residual: squared residual norms ``r^2`` (any shape, >= 0).
        sigma: the scale, > 0, in the residual's units.

    Returns:
        ``rho`` with the shape of ``squared_residual``.
    """
    sigma_squared = sigma * sigma
    return sigma_squared * squared_residual / (sigma_squared + squared_residual)


def keypoints_2d_term(
    points_cam: torch.Tensor,
    intrinsics: torch.Tensor,
    keypoints_2d: torch.Tensor,
    visibility: torch.Tensor,
    box_size: torch.Tensor,
    sigma: float,
) -> torch.Tensor:
    """Visibility-weighted robust reprojection error ``sum_k w_k rho(|pi(p_k) - k_k| / s) / max(sum_k w_k, 1)``.

    ``rho`` is :func:`geman_mcclure` with scale ``sigma``.

    Residuals are divided by the person's box size ``s`` (pixels), so the loss and ``sigma`` mean the same at any
    resolution and subject size. Zero-weight keypoints (missing, or with no body point) contribute nothing and
    get no gradient.

    Args:
        points_cam: ``(B, K, 3)`` camera-space body points matching the keypoints.
        intrinsics: ``(B, 3, 3)``.
        keypoints_2d: ``(B, K, 2)`` detected pixel coordinates ``(u, v)``.
        visibility: ``(B, K)`` weights in [0, 1] (the detector's visibility; 0 = ignore).
        box_size: ``(B,)`` the person's box size in pixels, > 0.
        sigma: Geman-McClure scale in box sizes, > 0.

    Returns:
        ``(B,)`` loss in squared box sizes, 0 at the exact keypoints and at most ``sigma^2``.
    """
    check_tensor("points_cam", points_cam, (None, None, 3), "(B, K, 3)")
    batch, num = points_cam.shape[:2]
    check_tensor("keypoints_2d", keypoints_2d, (batch, num, 2), "(B, K, 2)")
    check_tensor("visibility", visibility, (batch, num), "(B, K)")
    check_tensor("box_size", box_size, (batch,), "(B,)")
    _check_probability("visibility", visibility)
    if not torch.compiler.is_compiling() and bool((box_size <= 0).any()):  # see _check_probability
        raise ValueError("`box_size` must be > 0 pixels (the person's box size).")
    dtype = points_cam.dtype
    residual = project_points(points_cam, intrinsics) - keypoints_2d.to(dtype)  # (B, K, 2) pixels
    squared = (residual / box_size.to(dtype)[:, None, None]).square().sum(-1)  # (B, K) box sizes^2
    weight = visibility.to(dtype)
    return (weight * geman_mcclure(squared, sigma)).sum(-1) / weight.sum(-1).clamp(min=1.0)


# ----------------------------------------------------------------------------------------------------------
# The weighted sum


@dataclass
class GuidanceInputs:
    """What the guidance terms need for one batch; optional fields left ``None`` skip their terms.

    All points share one frame with camera axes: camera space, or pelvis-relative (then give
    ``camera_translation`` so that the image terms and a user ``floor_plane`` see camera-space points).

    Args:
        body_points: ``(B, N, 3)`` body points (e.g. the downsampled body surface).
        object_points: ``(B, M, 3)`` object points (keypoints or surface samples).
        body_object_sdf: ``(B, N)`` signed distance of ``body_points`` to the object (negative inside);
            needed by the contact and penetration terms.
        human_contact: ``(B, N)`` contact probabilities of the body points.
        object_contact: ``(B, M)`` contact probabilities of the object points.
        floor_contact: ``(B,)`` probability that the object touches the floor.
        object_body_sdf: ``(B, M)`` signed distance of object points to a closed body mesh (penetration).
        camera_translation: ``(B, 3)`` added to the points to get camera space (pelvis in camera space).
        intrinsics: ``(B, 3, 3)`` camera matrices, for the image terms.
        human_distance_map: ``(B, H, W)`` distance to the human mask (:func:`mask_distance_transform`).
        human_mask_pixels: ``(B, M, 2)`` a fixed sample of the human mask's pixels ``(u, v)``
            (:func:`~scorehoi_diffusers.mask_coverage.sample_mask_pixels` of ``human_distance_map``), for the
            mask-coverage term; needs ``human_distance_map`` (its size is the term's unit).
        object_distance_map: ``(B, H, W)`` distance to the object mask.
        keypoints_3d: ``(B, K, 3)`` body points matching ``keypoints_2d`` (same frame as ``body_points``).
        keypoints_2d: ``(B, K, 2)`` detected keypoints in the pixels of ``intrinsics``.
        keypoints_2d_visibility: ``(B, K)`` their weights in [0, 1]; all ones when ``None``.
        keypoints_box_size: ``(B,)`` the person's box size in the same pixels; needed with ``keypoints_2d``.
        pose_negative_log_likelihood: ``(B,)`` the body pose's negative log-likelihood under a pose prior, for the
            ``pose_prior`` term.
    """

    body_points: torch.Tensor
    object_points: torch.Tensor
    body_object_sdf: torch.Tensor | None = None
    human_contact: torch.Tensor | None = None
    object_contact: torch.Tensor | None = None
    floor_contact: torch.Tensor | None = None
    object_body_sdf: torch.Tensor | None = None
    camera_translation: torch.Tensor | None = None
    intrinsics: torch.Tensor | None = None
    human_distance_map: torch.Tensor | None = None
    human_mask_pixels: torch.Tensor | None = None
    object_distance_map: torch.Tensor | None = None
    keypoints_3d: torch.Tensor | None = None
    keypoints_2d: torch.Tensor | None = None
    keypoints_2d_visibility: torch.Tensor | None = None
    keypoints_box_size: torch.Tensor | None = None
    pose_negative_log_likelihood: torch.Tensor | None = None

    def __post_init__(self):
        check_tensor("body_points", self.body_points, (None, None, 3), "(B, N, 3)")
        check_tensor("object_points", self.object_points, (self.body_points.shape[0], None, 3), "(B, M, 3)")
        if self.camera_translation is not None:
            batch = self.body_points.shape[0]
            check_tensor("camera_translation", self.camera_translation, (batch, 3), "(B, 3)")
        if self.human_mask_pixels is not None:
            check_tensor("human_mask_pixels", self.human_mask_pixels, (self.body_points.shape[0], None, 2),
                         "(B, M, 2)")
        if self.pose_negative_log_likelihood is not None:
            check_tensor("pose_negative_log_likelihood", self.pose_negative_log_likelihood,
                         (self.body_points.shape[0],), "(B,)")

    def upcast(self) -> GuidanceInputs:
        """These inputs with every floating tensor in at least float32 (itself when all already are)."""
        changes = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != upcast(value).dtype:
                changes[field.name] = upcast(value)
        return replace(self, **changes) if changes else self

    def to_camera(self, points: torch.Tensor) -> torch.Tensor:
        """``(B, P, 3)`` points of the guidance frame to camera space."""
        if self.camera_translation is None:
            return points
        return points + self.camera_translation.to(points.dtype).unsqueeze(1)


def contact_weights(probabilities: torch.Tensor | None, decision: float | None, name: str) -> torch.Tensor | None:
    """The weights the contact and floor terms give their points: the contact ``probabilities`` (any shape, in
    [0, 1]; ``name`` in messages) themselves, or with a ``decision`` threshold the estimator's decisions
    (``probabilities > decision``) as 0/1 in their dtype (see ``GuidanceConfig.contact_decision``); a NaN stays
    NaN, so that its sample is still isolated. ``None`` stays ``None``."""
    if probabilities is None or decision is None:
        return probabilities
    _check_probability(name, probabilities)
    decided = (probabilities > decision).to(probabilities.dtype)
    return torch.where(torch.isnan(probabilities), probabilities, decided)


def guidance_loss(
    inputs: GuidanceInputs, config: GuidanceConfig
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The guidance loss ``L = sum_k w_k L_k`` per sample, before the guidance scale.

    ``config.scale`` is *not* applied here: the scheduler multiplies ``grad L`` by it. A term is skipped
    (and absent from ``terms``) when its weight is 0 or its inputs are ``None``.

    Args:
        inputs: the batch's points, signed distances, contacts and optional image evidence.
        config: the term weights and settings.

    Returns:
        ``(total, terms)``: ``total`` ``(B,)`` the weighted sum; ``terms`` maps each computed term's name
        (one of :data:`TERMS`) to its unweighted ``(B,)`` value.
        Computed in at least float32 (half-precision distances and their gradients lose millimetres) and
        returned in the dtype of ``inputs.body_points``.
    """
    dtype = inputs.body_points.dtype
    inputs = inputs.upcast()
    terms: dict[str, torch.Tensor] = {}
    human_contact, object_contact, floor_contact = (
        contact_weights(getattr(inputs, name), config.contact_decision, name)
        for name in ("human_contact", "object_contact", "floor_contact")
    )
    if config.contact > 0 and None not in (inputs.body_object_sdf, human_contact, object_contact):
        terms["contact"] = contact_term(
            inputs.body_object_sdf,
            human_contact,
            points_to_points_distance(inputs.object_points, inputs.body_points),
            object_contact,
            config.contact_threshold,
        )
    if config.penetration > 0 and inputs.body_object_sdf is not None:
        terms["penetration"] = penetration_term(inputs.body_object_sdf, inputs.object_body_sdf)
    if config.floor > 0 and floor_contact is not None:
        # A user plane lives in camera space; the lowest-point floor is translation-invariant.
        to_frame = inputs.to_camera if config.floor_plane is not None else (lambda points: points)
        terms["floor"] = floor_term(
            to_frame(inputs.object_points),
            to_frame(inputs.body_points),
            floor_contact,
            config.up_axis,
            config.floor_plane,
        )
    has_maps = inputs.human_distance_map is not None or inputs.object_distance_map is not None
    if config.mask > 0 and inputs.intrinsics is not None and has_maps:
        mask = 0
        if inputs.human_distance_map is not None:
            body_cam = inputs.to_camera(inputs.body_points)
            mask = mask + mask_term(body_cam, inputs.intrinsics, inputs.human_distance_map)
        if inputs.object_distance_map is not None:
            object_cam = inputs.to_camera(inputs.object_points)
            mask = mask + mask_term(object_cam, inputs.intrinsics, inputs.object_distance_map)
        terms["mask"] = mask
    if config.mask_coverage > 0 and None not in (inputs.intrinsics, inputs.human_mask_pixels):
        if inputs.human_distance_map is None:
            raise ValueError("The mask_coverage term needs `human_distance_map` (B, H, W) in GuidanceInputs next to "
                             "`human_mask_pixels`: its image diagonal is the term's unit.")
        terms["mask_coverage"] = mask_coverage_loss(
            inputs.to_camera(inputs.body_points), inputs.intrinsics, inputs.human_mask_pixels,
            image_diagonal(*inputs.human_distance_map.shape[1:]),
        )
    if config.keypoints_2d > 0 and None not in (inputs.intrinsics, inputs.keypoints_3d, inputs.keypoints_2d):
        if inputs.keypoints_box_size is None:
            raise ValueError("The keypoints_2d term needs `keypoints_box_size` (B,) in GuidanceInputs.")
        visibility = inputs.keypoints_2d_visibility
        if visibility is None:
            visibility = inputs.keypoints_3d.new_ones(inputs.keypoints_3d.shape[:2])
        terms["keypoints_2d"] = keypoints_2d_term(
            inputs.to_camera(inputs.keypoints_3d), inputs.intrinsics, inputs.keypoints_2d, visibility,
            inputs.keypoints_box_size, config.keypoints_2d_sigma,
        )
    if config.pose_prior > 0 and inputs.pose_negative_log_likelihood is not None:
        terms["pose_prior"] = inputs.pose_negative_log_likelihood
    total = inputs.body_points.new_zeros(inputs.body_points.shape[0])
    for name, value in terms.items():
        total = total + getattr(config, name) * value
    return total.to(dtype), {name: value.to(dtype) for name, value in terms.items()}


def clip_gradient_norm(grad: torch.Tensor, max_norm: float | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample gradient clipping that also removes non-finite gradients.

    A sample whose gradient holds NaN or inf gets a zero gradient (its refinement step falls back to the
    unguided one) and is reported; the others are rescaled to norm at most ``max_norm`` (no rescaling when
    ``max_norm`` is ``None``).

    Args:
        grad: ``(B, D)`` gradients (any ``(B, ...)`` shape works).
        max_norm: per-sample bound on the Euclidean norm, or ``None``.

    Returns:
        ``(clipped, non_finite)``: ``clipped`` like ``grad``; ``non_finite`` ``(B,)`` bool, True for the
        samples whose gradient was zeroed.
    """
    if not isinstance(grad, torch.Tensor) or grad.dim() < 1:
        raise ValueError("`grad` must be a tensor of shape (B, D).")
    if max_norm is not None and not max_norm > 0:
        raise ValueError(f"`max_norm` must be > 0 or None, got {max_norm!r}.")
    flat = grad.reshape(grad.shape[0], -1)
    non_finite = ~torch.isfinite(flat).all(dim=1)  # (B,)
    flat = torch.where(non_finite.unsqueeze(1), torch.zeros_like(flat), flat)
    if max_norm is not None:
        # Norm of the rescaled vector, so that large finite gradients do not overflow to inf when squared.
        largest = flat.abs().amax(dim=1, keepdim=True).clamp(min=torch.finfo(flat.dtype).tiny)
        norm = largest[:, 0] * (flat / largest).norm(dim=1)
        factor = (max_norm / norm.clamp(min=torch.finfo(flat.dtype).tiny)).clamp(max=1.0)
        flat = flat * factor.unsqueeze(1)
    return flat.reshape(grad.shape), non_finite
