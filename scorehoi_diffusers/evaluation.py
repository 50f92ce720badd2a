"""Reconstruction metrics (CONTHO's protocol, made reproducible), physics metrics and the evaluation loop.

Metrics, all in centimetres unless stated:

* **Alignment** -- one similarity transform (scale, rotation, translation; Umeyama, never a reflection) is
  fitted on the concatenated ``[human; object]`` vertices of a prediction to those of the ground truth and
  applied to both predicted meshes (:func:`align_reconstruction`). Prediction and ground truth must share
  topology (same body model, same object template), so vertices correspond.
* **Chamfer distance** per mesh, ``CD_human`` and ``CD_object``: ``count`` (6000) area-weighted surface
  samples of each aligned prediction and of the ground truth; the mean distance from every predicted
  sample to its nearest ground-truth sample plus the mean distance the other way (:func:`chamfer_distance`).
* **F-score@1cm** per mesh on the same samples: precision = share of predicted samples within 1 cm of a
  ground-truth sample, recall = the reverse, ``F = 2PR / (P + R)`` (0 when both are 0).
* **Contact** from the reconstruction itself (not aligned): a downsampled body vertex is in contact when its
  signed distance to the predicted object is below 5 cm (inside counts), the rule the ground-truth labels
  use. Per sample, precision = TP / predicted contacts (skipped when nothing is predicted), recall =
  TP / ground-truth contacts (skipped when there is none); the reported F is ``2 P̄ R̄ / (P̄ + R̄)`` from the
  mean precision ``P̄`` and mean recall ``R̄`` over the samples that have them.
  When the dataset carries the annotation's own per-vertex labels (``annotated_contact``, CONTHO's BEHAVE /
  InterCap test splits, one label per SMPL-H vertex), they can be the ground truth instead, as in CONTHO's
  protocol: the predicted contacts are then those of every vertex of the full body mesh, by the same 5 cm rule.
* **Penetration depth**: the deepest body vertex inside the object (object SDF), per sample; 0 if none.
* **Penetration volume** (cm³): the depth below the object's surface integrated over the part of the body
  *surface* inside the object, ``∫ relu(-sdf) dA``, estimated with seeded area-weighted body surface
  samples. It equals the intersection volume when the body surface dips into the object roughly parallel
  to the object's surface (a palm pressed into a box), the usual case; it is 0 without penetration.
* **Object-floor distance**: height of the object's lowest vertex above the floor along the up axis,
  absolute value, the floor being the body's lowest vertex; only samples whose ground truth says the object
  rests on the floor.
* **Seconds per image**: wall time of the initial estimate plus refinement, divided by the batch size.

Sampling is seeded: the same seed gives the same surface samples for a mesh, and :func:`evaluate` uses one
seed for prediction and ground truth ("common random numbers"), so identical meshes score exactly 0 cm.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from diffusers.utils import logging
from scipy.spatial import cKDTree

from .contacts import CONTACT_THRESHOLD, Contacts
from .objects import ObjectTemplate, load_object
from .params import HOIParams, axis_angle_to_matrix
from .data.behave import ANNOTATED_CONTACT
from .data.schema import sample_to_params

logger = logging.get_logger(__name__)

__all__ = [
    "ABLATION_MODES",
    "METRICS",
    "NoisyGroundTruth",
    "procrustes_similarity",
    "apply_similarity",
    "align_reconstruction",
    "sample_surface",
    "chamfer_distance",
    "f_score",
    "reconstruction_contacts",
    "contact_precision_recall",
    "harmonic_f_score",
    "penetration_depth",
    "penetration_volume",
    "object_floor_distance",
    "evaluate",
    "evaluate_ablation",
    "format_table",
]

FSCORE_THRESHOLD = 0.01  # metres: F-score@1cm
NUM_SURFACE_SAMPLES = 6000
CM = 100.0
ABLATION_MODES = ("regressor", "prior", "frozen_contacts", "full")
CONTACT_LABELS = ("auto", "annotated", "recomputed")
IMAGE_COLUMNS = ("image", "human_mask", "object_mask")

# (result key, table header) in table order.
METRICS = (
    ("cd_human", "CD_h (cm)"),
    ("cd_object", "CD_o (cm)"),
    ("fscore_human", "F@1cm_h"),
    ("fscore_object", "F@1cm_o"),
    ("contact_precision", "contact P"),
    ("contact_recall", "contact R"),
    ("contact_f", "contact F"),
    ("penetration_depth", "pen. depth (cm)"),
    ("penetration_volume", "pen. vol. (cm³)"),
    ("floor_distance", "floor dist. (cm)"),
    ("seconds_per_image", "s / image"),
)

ArrayLike = Union[np.ndarray, torch.Tensor]
# (params, contacts, image tokens, contact estimator), optionally followed by a dict of further pipeline arguments
# (e.g. the batch's `image`, masks, `bbox` and `intrinsics`, with `params` None: the pipeline then starts from the
# pictures, exactly as `pipeline(image=...)`).
InitialEstimate = Union[
    Tuple[Optional[HOIParams], Optional[Contacts], Optional[torch.Tensor], Optional[Callable]],
    Tuple[Optional[HOIParams], Optional[Contacts], Optional[torch.Tensor], Optional[Callable], Dict[str, Any]],
]


def _numpy(array: ArrayLike, name: str) -> np.ndarray:
    """``array`` as float64 numpy, refusing NaN/Inf."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    array = np.asarray(array, dtype=np.float64)
    if not np.isfinite(array).all():
        raise ValueError(f"`{name}` contains NaN or Inf values.")
    return array


def _points(array: ArrayLike, name: str) -> np.ndarray:
    array = _numpy(array, name)
    if array.ndim not in (2, 3) or array.shape[-1] != 3:
        raise ValueError(f"`{name}` must have shape (N, 3) or (B, N, 3), got {array.shape}.")
    return array


# ----------------------------------------------------------------------------------------------------------
# Alignment


def procrustes_similarity(source: ArrayLike, target: ArrayLike) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Least-squares similarity ``target ≈ scale * R @ source + t`` (Umeyama 1991), never a reflection.

    Args:
        source: ``(N, 3)`` or ``(B, N, 3)`` points.
        target: same shape; row ``i`` corresponds to row ``i`` of ``source``.

    Returns:
        ``(scale, R, t)``: ``scale`` ``()`` or ``(B,)``, ``R`` ``(3, 3)`` or ``(B, 3, 3)`` with ``det R = +1``,
        ``t`` ``(3,)`` or ``(B, 3)``; float64 numpy.
    """
    source, target = _points(source, "source"), _points(target, "target")
    if source.shape != target.shape:
        raise ValueError(f"`source` {source.shape} and `target` {target.shape} must have the same shape.")
    source_mean, target_mean = source.mean(-2), target.mean(-2)
    centred_source = source - source_mean[..., None, :]
    centred_target = target - target_mean[..., None, :]
    variance = (centred_source**2).sum(-1).mean(-1)
    if np.any(variance <= 0):
        raise ValueError("`source` points all coincide; a similarity transform is undefined.")
    covariance = np.einsum("...ni,...nj->...ij", centred_target, centred_source) / source.shape[-2]
    u, singular, vt = np.linalg.svd(covariance)
    # Flip the weakest axis when the best orthogonal map is a reflection.
    sign = np.where(np.linalg.det(u) * np.linalg.det(vt) < 0, -1.0, 1.0)
    correction = np.ones(singular.shape)
    correction[..., 2] = sign
    rotation = (u * correction[..., None, :]) @ vt
    scale = (singular * correction).sum(-1) / variance
    translation = target_mean - scale[..., None] * np.einsum("...ij,...j->...i", rotation, source_mean)
    return scale, rotation, translation


def apply_similarity(points: ArrayLike, scale: ArrayLike, rotation: ArrayLike, translation: ArrayLike) -> np.ndarray:
    """``scale * R @ p + t`` for points ``(N, 3)`` / ``(B, N, 3)`` and the matching outputs of
    :func:`procrustes_similarity`."""
    points = _points(points, "points")
    scale, rotation, translation = (np.asarray(v, dtype=np.float64) for v in (scale, rotation, translation))
    return scale[..., None, None] * points @ np.swapaxes(rotation, -1, -2) + translation[..., None, :]


def align_reconstruction(
    pred_human: ArrayLike, pred_object: ArrayLike, gt_human: ArrayLike, gt_object: ArrayLike
) -> Tuple[np.ndarray, np.ndarray]:
    """Align a predicted human and object to the ground truth with ONE similarity transform.

    The transform is fitted on the concatenated ``[human; object]`` vertices (CONTHO's protocol), so the
    relative placement of human and object is kept. Prediction and ground truth must share topology.

    Args:
        pred_human: ``(Vh, 3)`` or ``(B, Vh, 3)`` predicted body vertices.
        pred_object: ``(Vo, 3)`` or ``(B, Vo, 3)`` predicted object vertices.
        gt_human, gt_object: the ground truth, same shapes.

    Returns:
        ``(aligned_human, aligned_object)`` with the shapes of the predictions, float64.
    """
    pred_human, pred_object = _points(pred_human, "pred_human"), _points(pred_object, "pred_object")
    gt_human, gt_object = _points(gt_human, "gt_human"), _points(gt_object, "gt_object")
    if pred_human.shape != gt_human.shape or pred_object.shape != gt_object.shape:
        raise ValueError(
            "Prediction and ground truth must share topology (same vertex count): got human "
            f"{pred_human.shape} vs {gt_human.shape}, object {pred_object.shape} vs {gt_object.shape}."
        )
    num_human = pred_human.shape[-2]
    pred = np.concatenate([pred_human, pred_object], axis=-2)
    similarity = procrustes_similarity(pred, np.concatenate([gt_human, gt_object], axis=-2))
    aligned = apply_similarity(pred, *similarity)
    return aligned[..., :num_human, :], aligned[..., num_human:, :]


# ----------------------------------------------------------------------------------------------------------
# Surface samples, Chamfer and F-score


def _triangle_areas(corners: np.ndarray) -> np.ndarray:
    """``(..., F, 3 corners, 3)`` triangles to their areas ``(..., F)``."""
    edges = np.cross(corners[..., 1, :] - corners[..., 0, :], corners[..., 2, :] - corners[..., 0, :])
    return 0.5 * np.linalg.norm(edges, axis=-1)


def sample_surface(
    vertices: ArrayLike, faces: ArrayLike, count: int = NUM_SURFACE_SAMPLES, seed: int = 0
) -> np.ndarray:
    """Seeded area-weighted samples of triangle-mesh surfaces.

    The random numbers depend only on ``(count, seed)`` and are shared by every mesh of the batch, so a
    sample's points never depend on the rest of the batch, and two meshes of one topology and similar
    shape get nearby points (identical meshes get identical points).

    Args:
        vertices: ``(V, 3)`` or ``(B, V, 3)``.
        faces: ``(F, 3)`` vertex indices, shared by the batch.
        count: samples per mesh.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        ``(count, 3)`` or ``(B, count, 3)`` float64.
    """
    vertices = _points(vertices, "vertices")
    faces = np.asarray(faces.detach().cpu() if isinstance(faces, torch.Tensor) else faces)
    if faces.ndim != 2 or faces.shape[1] != 3 or not np.issubdtype(faces.dtype, np.integer):
        raise ValueError(f"`faces` must be an integer array of shape (F, 3), got {faces.dtype} {faces.shape}.")
    if faces.size == 0 or faces.min() < 0 or faces.max() >= vertices.shape[-2]:
        raise ValueError(f"`faces` must be non-empty and index vertices 0..{vertices.shape[-2] - 1}.")
    if int(count) < 1:
        raise ValueError(f"`count` must be >= 1, got {count}.")
    single = vertices.ndim == 2
    batch = vertices[None] if single else vertices
    rng = np.random.default_rng(seed)
    pick, r1, r2 = rng.random((3, int(count)))

    corners = batch[:, faces]  # (B, F, 3 corners, 3)
    areas = _triangle_areas(corners)
    totals = areas.sum(-1)
    if np.any(totals <= 0):
        raise ValueError("A mesh in `vertices` has zero surface area; it cannot be sampled.")
    # One searchsorted for the whole batch: row b's cumulative areas live in [b, b + 1].
    num_meshes, num_faces = areas.shape
    cumulative = np.cumsum(areas, axis=-1) / totals[:, None] + np.arange(num_meshes)[:, None]
    flat = np.searchsorted(cumulative.reshape(-1), pick[None] + np.arange(num_meshes)[:, None], side="right")
    face = np.minimum(flat - np.arange(num_meshes)[:, None] * num_faces, num_faces - 1)  # (B, count)

    root = np.sqrt(r1)
    weights = np.stack([1 - root, root * (1 - r2), root * r2], axis=-1)  # (count, 3), uniform on a triangle
    chosen = np.take_along_axis(corners, face[:, :, None, None], axis=1)  # (B, count, 3, 3)
    samples = np.einsum("bnkc,nk->bnc", chosen, weights)
    return samples[0] if single else samples


def _nearest_distances(a_points: ArrayLike, b_points: ArrayLike) -> Tuple[List[np.ndarray], List[np.ndarray]]:
    """Per sample: distance from every point of ``a`` to ``b`` and from every point of ``b`` to ``a``."""
    a_points, b_points = _points(a_points, "a_points"), _points(b_points, "b_points")
    if a_points.ndim != b_points.ndim or (a_points.ndim == 3 and a_points.shape[0] != b_points.shape[0]):
        raise ValueError(f"`a_points` {a_points.shape} and `b_points` {b_points.shape} must have the same batch.")
    if a_points.ndim == 2:
        a_points, b_points = a_points[None], b_points[None]
    a_to_b, b_to_a = [], []
    # KD-trees are built per point cloud; this is the evaluation, not the sampling loop.
    for a, b in zip(a_points, b_points):
        a_to_b.append(cKDTree(b).query(a)[0])
        b_to_a.append(cKDTree(a).query(b)[0])
    return a_to_b, b_to_a


def _chamfer_and_fscore(a_points, b_points, threshold: float) -> Tuple[np.ndarray, np.ndarray]:
    a_to_b, b_to_a = _nearest_distances(a_points, b_points)
    chamfer = np.array([d1.mean() + d2.mean() for d1, d2 in zip(a_to_b, b_to_a)]) * CM
    precision = np.array([(d < threshold).mean() for d in a_to_b])
    recall = np.array([(d < threshold).mean() for d in b_to_a])
    return chamfer, harmonic_f_score(precision, recall)


def chamfer_distance(a_points: ArrayLike, b_points: ArrayLike) -> Union[float, np.ndarray]:
    """Symmetric Chamfer distance in **cm**: mean nearest distance a→b plus mean nearest distance b→a.

    Args:
        a_points: ``(P, 3)`` or ``(B, P, 3)`` points in metres.
        b_points: ``(Q, 3)`` or ``(B, Q, 3)``.

    Returns:
        a float, or ``(B,)``.
    """
    chamfer, _ = _chamfer_and_fscore(a_points, b_points, FSCORE_THRESHOLD)
    return float(chamfer[0]) if _points(a_points, "a_points").ndim == 2 else chamfer


def f_score(
    pred_points: ArrayLike, gt_points: ArrayLike, threshold: float = FSCORE_THRESHOLD
) -> Union[float, np.ndarray]:
    """F-score at ``threshold`` metres: harmonic mean of the share of predicted points within ``threshold`` of
    the ground truth (precision) and the share of ground-truth points within it of the prediction (recall).

    Args:
        pred_points: ``(P, 3)`` or ``(B, P, 3)``.
        gt_points: ``(Q, 3)`` or ``(B, Q, 3)``.
        threshold: metres (1 cm by default).

    Returns:
        a float in [0, 1], or ``(B,)``.
    """
    if not threshold > 0:
        raise ValueError(f"`threshold` must be > 0, got {threshold}.")
    _, score = _chamfer_and_fscore(pred_points, gt_points, threshold)
    return float(score[0]) if _points(pred_points, "pred_points").ndim == 2 else score


def harmonic_f_score(precision: ArrayLike, recall: ArrayLike) -> np.ndarray:
    """``2PR / (P + R)``, 0 where ``P + R = 0``; NaN where either is NaN. Any matching shapes."""
    precision, recall = np.asarray(precision, dtype=np.float64), np.asarray(recall, dtype=np.float64)
    total = precision + recall
    with np.errstate(invalid="ignore", divide="ignore"):
        score = 2 * precision * recall / total
    return np.where(total == 0, 0.0, score)


# ----------------------------------------------------------------------------------------------------------
# Contact


def reconstruction_contacts(
    body_points: torch.Tensor,
    template: ObjectTemplate,
    object_rotation: torch.Tensor,
    object_translation: torch.Tensor,
    threshold: float = CONTACT_THRESHOLD,
) -> np.ndarray:
    """Body points in contact with the posed object: signed distance below ``threshold`` (inside counts).

    Args:
        body_points: ``(B, S, 3)`` e.g. the downsampled body vertices, in the frame of the object pose.
        template: the object.
        object_rotation: ``(B, 3, 3)``.
        object_translation: ``(B, 3)`` in the same frame as ``body_points``.
        threshold: metres (5 cm, as the ground-truth labels).

    Returns:
        ``(B, S)`` bool.
    """
    with torch.no_grad():
        points = body_points.to(template.device, template.dtype)
        sdf = template.signed_distance_posed(
            points, object_rotation.to(points), object_translation.to(points)
        )
    return sdf.cpu().numpy() < threshold


def contact_precision_recall(predicted: ArrayLike, ground_truth: ArrayLike) -> Tuple[np.ndarray, np.ndarray]:
    """Per-sample contact precision and recall.

    Args:
        predicted: ``(B, S)`` bool (or 0/1) predicted contact per body point.
        ground_truth: ``(B, S)`` labels; values > 0.5 are contacts.

    Returns:
        ``(precision (B,), recall (B,))``; precision is NaN for a sample with no predicted contact and
        recall NaN for one with no ground-truth contact (those samples are skipped in the means).
    """
    predicted, ground_truth = _numpy(predicted, "predicted") > 0.5, _numpy(ground_truth, "ground_truth") > 0.5
    if predicted.shape != ground_truth.shape or predicted.ndim != 2:
        raise ValueError(
            f"`predicted` {predicted.shape} and `ground_truth` {ground_truth.shape} must both be (B, S); the "
            "ground truth must label the same downsampled body vertices as the body model that predicts."
        )
    true_positive = (predicted & ground_truth).sum(-1).astype(np.float64)
    num_predicted, num_true = predicted.sum(-1), ground_truth.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(num_predicted > 0, true_positive / np.maximum(num_predicted, 1), np.nan)
        recall = np.where(num_true > 0, true_positive / np.maximum(num_true, 1), np.nan)
    return precision, recall


# ----------------------------------------------------------------------------------------------------------
# Physical plausibility


def _object_sdf(points: ArrayLike, template: ObjectTemplate, rotation: ArrayLike, translation: ArrayLike) -> np.ndarray:
    """``(B, N)`` signed distance (m) of camera-space points to the posed object."""
    def tensor(value: ArrayLike, name: str) -> torch.Tensor:
        return torch.as_tensor(_numpy(value, name)).to(device=template.device, dtype=template.dtype)

    with torch.no_grad():
        sdf = template.signed_distance_posed(
            tensor(_points(points, "points"), "points"), tensor(rotation, "object_rotation"),
            tensor(translation, "object_translation"),
        )
    return sdf.cpu().numpy().astype(np.float64)


def penetration_depth(
    body_vertices: ArrayLike, template: ObjectTemplate, object_rotation: ArrayLike, object_translation: ArrayLike
) -> np.ndarray:
    """Depth in **cm** of the deepest body vertex inside the object (0 when none is inside).

    Args:
        body_vertices: ``(B, V, 3)`` camera space.
        template: the object, whose signed-distance grid is used.
        object_rotation: ``(B, 3, 3)``.
        object_translation: ``(B, 3)`` camera space (pelvis-relative translation + camera translation).

    Returns:
        ``(B,)``.
    """
    sdf = _object_sdf(body_vertices, template, object_rotation, object_translation)
    return np.maximum(-sdf, 0.0).max(-1) * CM


def penetration_volume(
    body_vertices: ArrayLike,
    body_faces: ArrayLike,
    template: ObjectTemplate,
    object_rotation: ArrayLike,
    object_translation: ArrayLike,
    count: int = NUM_SURFACE_SAMPLES,
    seed: int = 0,
) -> np.ndarray:
    """Penetration volume in **cm³**: ``∫ relu(-sdf_object) dA`` over the body surface.

    The depth below the object's surface integrated over the body surface inside the object; estimated as
    ``body area / count * Σ depth`` over ``count`` seeded area-weighted body surface samples. It is the
    intersection volume when the body surface enters the object roughly parallel to the object's surface.

    Args:
        body_vertices: ``(B, V, 3)`` camera space.
        body_faces: ``(F, 3)``.
        template, object_rotation, object_translation: as in :func:`penetration_depth`.
        count: body surface samples.
        seed: sampling seed.

    Returns:
        ``(B,)``.
    """
    vertices = _points(body_vertices, "body_vertices")
    if vertices.ndim != 3:
        raise ValueError(f"`body_vertices` must have shape (B, V, 3), got {vertices.shape}.")
    faces = np.asarray(body_faces.detach().cpu() if isinstance(body_faces, torch.Tensor) else body_faces)
    samples = sample_surface(vertices, faces, count, seed)
    area = _triangle_areas(vertices[:, faces]).sum(-1)
    depth = np.maximum(-_object_sdf(samples, template, object_rotation, object_translation), 0.0)
    return depth.mean(-1) * area * CM**3


def object_floor_distance(
    body_vertices: ArrayLike, object_vertices: ArrayLike, up_axis: ArrayLike = (0.0, -1.0, 0.0)
) -> np.ndarray:
    """|height of the object's lowest vertex − height of the body's lowest vertex| along ``up_axis``, in **cm**.

    The floor is taken to be the lowest body point (the feet), so this measures how far an object that
    should rest on the floor floats above (or sinks below) it.

    Args:
        body_vertices: ``(B, V, 3)``.
        object_vertices: ``(B, Vo, 3)`` same frame.
        up_axis: ``(3,)`` or ``(B, 3)`` up direction (normalised here); camera −y by default.

    Returns:
        ``(B,)``.
    """
    body, obj = _points(body_vertices, "body_vertices"), _points(object_vertices, "object_vertices")
    if body.ndim != 3 or obj.ndim != 3 or body.shape[0] != obj.shape[0]:
        raise ValueError(f"`body_vertices` {body.shape} and `object_vertices` {obj.shape} must be (B, V, 3).")
    up = np.broadcast_to(_numpy(up_axis, "up_axis"), (body.shape[0], 3))
    norm = np.linalg.norm(up, axis=-1, keepdims=True)
    if np.any(norm == 0):
        raise ValueError("`up_axis` must be non-zero.")
    up = up / norm
    body_low = np.einsum("bvc,bc->bv", body, up).min(-1)
    object_low = np.einsum("bvc,bc->bv", obj, up).min(-1)
    return np.abs(object_low - body_low) * CM


# ----------------------------------------------------------------------------------------------------------
# Initial estimates


@dataclass
class NoisyGroundTruth:
    """The "noisy-GT" protocol: ground-truth parameters perturbed by seeded noise, to test refinement alone.

    Every rotation ``R`` becomes ``R @ exp(n)`` with ``n ~ N(0, σ²I)`` in axis-angle; the object translation
    and betas get additive Gaussian noise. Sample ``i`` (its dataset row) draws from
    ``numpy.random.default_rng([seed, i])``, so its estimate does not depend on batching.

    Returns ``(params, None, None, None)``: contacts are then estimated by the pipeline from the estimate, and
    the denoiser runs without image tokens.

    Args:
        seed: noise seed.
        joint_rotation_noise: σ (radians) of the 21 body and 30 hand joints.
        global_rotation_noise: σ (radians) of the body's root rotation.
        object_rotation_noise: σ (radians) of the object rotation.
        object_translation_noise: σ (metres) of the pelvis-relative object translation.
        betas_noise: σ of the betas.
    """

    seed: int = 0
    joint_rotation_noise: float = 0.05
    global_rotation_noise: float = 0.05
    object_rotation_noise: float = 0.1
    object_translation_noise: float = 0.03
    betas_noise: float = 0.2

    def __call__(self, batch: Mapping[str, Any]) -> InitialEstimate:
        params = sample_to_params(batch)
        index = np.asarray(batch["index"]).reshape(-1)
        if len(index) != params.batch_size:
            raise ValueError(f"batch['index'] has {len(index)} entries for {params.batch_size} samples.")
        # Per sample: 53 axis-angle rotations (root, 51 joints, object), 3 translation and 10 betas numbers.
        draws = np.stack([np.random.default_rng([self.seed, int(i)]).standard_normal(53 * 3 + 3 + 10) for i in index])
        draws = torch.as_tensor(draws, dtype=params.dtype)
        rotation_noise = draws[:, : 53 * 3].reshape(-1, 53, 3)
        translation_noise, betas_noise = draws[:, 53 * 3: 53 * 3 + 3], draws[:, 53 * 3 + 3:]
        sigma = torch.tensor(
            [self.global_rotation_noise] + [self.joint_rotation_noise] * 51 + [self.object_rotation_noise],
            dtype=params.dtype,
        )
        perturb = axis_angle_to_matrix(rotation_noise * sigma[None, :, None])  # (B, 53, 3, 3)
        return (
            HOIParams(
                global_orient=params.global_orient @ perturb[:, 0],
                body_pose=params.body_pose @ perturb[:, 1:22],
                left_hand_pose=params.left_hand_pose @ perturb[:, 22:37],
                right_hand_pose=params.right_hand_pose @ perturb[:, 37:52],
                betas=params.betas + self.betas_noise * betas_noise,
                object_rotation=params.object_rotation @ perturb[:, 52],
                object_translation=params.object_translation + self.object_translation_noise * translation_noise,
                camera_translation=params.camera_translation,
            ),
            None,
            None,
            None,
        )


# ----------------------------------------------------------------------------------------------------------
# Evaluation loop


def _mode_arguments(mode: str, num_cycles: int) -> Dict[str, Any]:
    """Pipeline arguments of an ablation mode."""
    if mode == "regressor":
        return {"num_cycles": 0}
    if mode == "prior":
        return {"num_cycles": num_cycles, "guidance_scale": 0.0}
    if mode == "frozen_contacts":
        return {"num_cycles": num_cycles, "refresh_contacts": False}
    if mode == "full":
        return {"num_cycles": num_cycles}
    raise ValueError(f"`mode` must be one of {list(ABLATION_MODES)}, got {mode!r}.")


def _select_split(dataset, split: Optional[str]):
    if isinstance(dataset, Mapping):
        if split not in dataset:
            raise ValueError(f"`split` {split!r} is not in the dataset; it has {sorted(dataset)}.")
        return dataset[split]
    return dataset


def _resolve_contact_labels(contact_labels: str, data, num_vertices: int) -> str:
    """``"annotated"`` or ``"recomputed"``: the contact ground truth :func:`evaluate` uses (see its docstring)."""
    if contact_labels not in CONTACT_LABELS:
        raise ValueError(f"`contact_labels` must be one of {CONTACT_LABELS}, got {contact_labels!r}.")
    if contact_labels == "recomputed":
        return contact_labels
    if ANNOTATED_CONTACT not in data.column_names:
        if contact_labels == "annotated":
            raise ValueError(
                f"`contact_labels='annotated'` needs the dataset column {ANNOTATED_CONTACT!r} (CONTHO's test "
                "splits carry it); use 'recomputed' for this dataset."
            )
        return "recomputed"
    num_labels = len(data.select_columns([ANNOTATED_CONTACT])[0][ANNOTATED_CONTACT])
    if num_labels == num_vertices:
        return "annotated"
    message = (
        f"The dataset's {ANNOTATED_CONTACT!r} labels {num_labels} body vertices but the body model has "
        f"{num_vertices}: evaluate with the SMPL-H body the annotations were made with"
    )
    if contact_labels == "annotated":
        raise ValueError(message + ", or with `contact_labels='recomputed'`.")
    logger.warning(message + "; contact precision and recall use the recomputed labels instead.")
    return "recomputed"


def _finite(values: np.ndarray) -> np.ndarray:
    """The finite entries as float64: samples a metric does not apply to are stored as NaN."""
    values = np.asarray(values, dtype=np.float64)
    return values[np.isfinite(values)]


def _mean(values: np.ndarray) -> Optional[float]:
    """Mean of the finite entries, ``None`` (JSON null) when there is none."""
    values = _finite(values)
    return float(values.mean()) if values.size else None


def _standard_error(values: np.ndarray) -> Optional[float]:
    """Standard error of :func:`_mean` (sample standard deviation / sqrt(n)), ``None`` below two entries."""
    values = _finite(values)
    return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else None


def evaluate(
    pipeline,
    dataset,
    split: Optional[str] = "test",
    num_samples: Optional[int] = None,
    mode: str = "full",
    num_cycles: int = 10,
    seed: int = 0,
    batch_size: int = 8,
    initial_estimate_fn: Optional[Callable[[Dict[str, Any]], InitialEstimate]] = None,
    guidance_config=None,
    object_root=None,
    gt_body_model=None,
    up_axis: Sequence[float] = (0.0, -1.0, 0.0),
    num_surface_samples: int = NUM_SURFACE_SAMPLES,
    object_templates: Optional[Mapping[str, ObjectTemplate]] = None,
    contact_labels: str = "auto",
) -> Dict[str, Any]:
    """Run the pipeline on a dataset and average the metrics of the module docstring.

    Args:
        pipeline: a :class:`~scorehoi_diffusers.ScoreHOIPipeline`.
        dataset: a ``datasets.Dataset`` in the sample schema (:mod:`scorehoi_diffusers.data.schema`), or a
            mapping of split name to such datasets (``DatasetDict``).
        split: the split to take from a mapping; recorded in the results.
        num_samples: evaluate the first ``num_samples`` rows (all when ``None``).
        mode: ``"regressor"`` (the initial estimate, no refinement), ``"prior"`` (refinement with guidance
            scale 0), ``"frozen_contacts"`` (guidance with the initial contacts throughout) or ``"full"``.
        num_cycles: refinement cycles N (ignored by ``"regressor"``).
        seed: seeds the default noisy-GT estimate, the pipeline's generator and the surface sampling.
        batch_size: samples per pipeline call (samples of one object are batched together).
        initial_estimate_fn: ``fn(batch) -> (HOIParams | None, Contacts | None, image_tokens | None,
            contact_estimator | None[, pipeline_kwargs])``, where the optional ``pipeline_kwargs`` (e.g. the
            pictures, see :class:`RegressorEstimate`) go to the pipeline call. ``batch`` holds the dataset columns of the rows (lists, one entry per
            sample), ``"index"`` (their row numbers) and ``"object"`` (the :class:`ObjectTemplate`). Default:
            :class:`NoisyGroundTruth` with ``seed`` (the "noisy-GT" protocol, which tests refinement alone).
        guidance_config: :class:`~scorehoi_diffusers.guidance.GuidanceConfig` for the pipeline.
        object_root: folder of user-supplied dataset object meshes (BEHAVE / InterCap names).
        gt_body_model: body model that builds the ground-truth meshes (default: the pipeline's).
        up_axis: camera-space up direction for the floor distance, used when the dataset has no
            ``floor_plane`` column ``(4,)`` (whose normal is then taken per sample).
        num_surface_samples: surface samples per mesh for Chamfer and F-score.
        object_templates: templates by object name, used instead of loading the names under ``object_root``
            (e.g. :func:`~scorehoi_diffusers.data.dataset_objects.load_dataset_objects`, whose frames match the
            BEHAVE / InterCap pose annotations).
        contact_labels: ground truth of contact precision and recall: ``"recomputed"`` (the schema's
            ``human_contact`` on the downsampled vertices), ``"annotated"`` (the dataset's ``annotated_contact``
            column on every body vertex, CONTHO's protocol) or ``"auto"`` (annotated when the column is there
            and labels as many vertices as the body model has).

    Returns:
        A JSON-serialisable dict: ``mode``, ``protocol`` (``"noisy_gt"`` or ``"custom"``), ``seed``, ``split``,
        ``num_samples``, ``num_cycles``, ``batch_size``, one mean per metric of :data:`METRICS` (``None`` when
        no sample qualifies), ``standard_errors`` (of each per-sample mean, to judge differences between runs)
        and ``counts`` (samples behind the contact precision, recall and floor means); ``contact_labels``: the
        labels used, ``"annotated"`` or ``"recomputed"``.
        Everything but ``seconds_per_image`` is identical for the same arguments.
    """
    mode_arguments = _mode_arguments(mode, num_cycles)
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}.")
    data = _select_split(dataset, split)
    total = len(data) if num_samples is None else int(num_samples)
    if not 0 < total <= len(data):
        raise ValueError(f"`num_samples` must be in 1..{len(data)} (the dataset's size), got {num_samples!r}.")
    protocol = "custom" if initial_estimate_fn is not None else "noisy_gt"
    if initial_estimate_fn is None:
        initial_estimate_fn = NoisyGroundTruth(seed=seed)
        # The noisy-GT estimate never looks at the pictures: skip decoding them.
        unused = [c for c in IMAGE_COLUMNS if c in data.column_names]
        if unused:
            data = data.remove_columns(unused)
    body_model = pipeline.body_model
    gt_body_model = body_model if gt_body_model is None else gt_body_model
    contact_labels = _resolve_contact_labels(contact_labels, data, body_model.num_vertices)
    body_faces = body_model.faces.cpu().numpy()

    names = np.asarray(list(data.select(range(total))["object_name"]))
    # Metrics averaged over samples; contact F and seconds per image are computed from totals instead.
    per_sample: Dict[str, List[np.ndarray]] = {
        key: [] for key, _ in METRICS if key not in ("contact_f", "seconds_per_image")
    }
    elapsed = 0.0
    for name in sorted(set(names.tolist())):
        if object_templates is not None and name in object_templates:
            template = object_templates[name]
        else:
            template = load_object(name, object_root=object_root)
        object_faces = template.faces.cpu().numpy()
        rows = np.flatnonzero(names == name)
        for start in range(0, len(rows), batch_size):
            index = rows[start: start + batch_size]
            batch = dict(data[index.tolist()])
            batch["index"], batch["object"] = index, template

            begin = time.perf_counter()
            params, contacts, image_tokens, estimator, *extra = initial_estimate_fn(batch)
            output = pipeline(
                initial_params=params, object=template, contacts=contacts, image_tokens=image_tokens,
                contact_estimator=estimator, guidance_config=guidance_config,
                generator=torch.Generator().manual_seed(seed), output_type="pt", **mode_arguments,
                **(extra[0] if extra else {}),
            )
            elapsed += time.perf_counter() - begin

            metrics = _batch_metrics(
                output, batch, template, body_model, gt_body_model, body_faces, object_faces,
                up_axis, num_surface_samples, seed, contact_labels,
            )
            for key, value in metrics.items():
                per_sample[key].append(value)

    values = {key: np.concatenate(parts) for key, parts in per_sample.items()}
    precision, recall = _mean(values["contact_precision"]), _mean(values["contact_recall"])
    results: Dict[str, Any] = {
        "mode": mode,
        "protocol": protocol,
        "seed": int(seed),
        "split": split,
        "num_samples": total,
        "num_cycles": int(mode_arguments["num_cycles"]),
        "batch_size": batch_size,
        "contact_labels": contact_labels,
    }
    for key, _ in METRICS:
        if key == "contact_f":
            results[key] = None if None in (precision, recall) else float(harmonic_f_score(precision, recall))
        elif key == "seconds_per_image":
            results[key] = elapsed / total
        else:
            results[key] = _mean(values[key])
    results["standard_errors"] = {key: _standard_error(value) for key, value in values.items()}
    results["counts"] = {
        key: int(_finite(values[key]).size) for key in ("contact_precision", "contact_recall", "floor_distance")
    }
    return results


def _batch_metrics(
    output, batch, template: ObjectTemplate, body_model, gt_body_model, body_faces, object_faces,
    up_axis, num_surface_samples: int, seed: int, contact_labels: str = "recomputed",
) -> Dict[str, np.ndarray]:
    """Per-sample metrics ``(B,)`` of one pipeline output against its batch's ground truth."""
    predicted = output.params
    pred_human = output.body_vertices
    pred_object = output.object_vertices
    gt = sample_to_params(batch).to(device=pred_human.device, dtype=pred_human.dtype)
    with torch.no_grad():
        gt_human = gt_body_model(gt, frame="camera").vertices
    template = template.to(device=pred_human.device, dtype=pred_human.dtype)
    gt_object = template.pose(template.vertices, gt.object_rotation, gt.object_translation + gt.camera_translation)

    aligned_human, aligned_object = align_reconstruction(pred_human, pred_object, gt_human, gt_object)
    samples = {}
    for key, vertices, faces in (
        ("pred_human", aligned_human, body_faces), ("gt_human", gt_human, body_faces),
        ("pred_object", aligned_object, object_faces), ("gt_object", gt_object, object_faces),
    ):
        samples[key] = sample_surface(vertices, faces, num_surface_samples, seed)
    cd_human, fscore_human = _chamfer_and_fscore(samples["pred_human"], samples["gt_human"], FSCORE_THRESHOLD)
    cd_object, fscore_object = _chamfer_and_fscore(samples["pred_object"], samples["gt_object"], FSCORE_THRESHOLD)

    object_translation = predicted.object_translation + predicted.camera_translation
    if contact_labels == "annotated":
        contact_points, gt_contacts = pred_human, np.asarray(batch[ANNOTATED_CONTACT], dtype=np.float64)
    else:
        contact_points = body_model.downsample(pred_human)
        gt_contacts = np.asarray(batch["human_contact"], dtype=np.float64)
    predicted_contacts = reconstruction_contacts(
        contact_points, template, predicted.object_rotation, object_translation
    )
    precision, recall = contact_precision_recall(predicted_contacts, gt_contacts)

    if "floor_plane" in batch:
        up = np.asarray(batch["floor_plane"], dtype=np.float64)[:, :3]
    else:
        up = np.asarray(up_axis, dtype=np.float64)
    floor = object_floor_distance(pred_human, pred_object, up)
    on_floor = np.asarray(batch["floor_contact"], dtype=np.float64) > 0.5

    return {
        "cd_human": cd_human,
        "cd_object": cd_object,
        "fscore_human": fscore_human,
        "fscore_object": fscore_object,
        "contact_precision": precision,
        "contact_recall": recall,
        "penetration_depth": penetration_depth(pred_human, template, predicted.object_rotation, object_translation),
        "penetration_volume": penetration_volume(
            pred_human, body_faces, template, predicted.object_rotation, object_translation, num_surface_samples, seed
        ),
        "floor_distance": np.where(on_floor, floor, np.nan),
    }


def evaluate_ablation(pipeline, dataset, modes: Sequence[str] = ABLATION_MODES, **kwargs) -> List[Dict[str, Any]]:
    """:func:`evaluate` once per mode (same samples, same seed); one result dict per mode, in order."""
    return [evaluate(pipeline, dataset, mode=mode, **kwargs) for mode in modes]


def format_table(results: Union[Mapping[str, Any], Sequence[Mapping[str, Any]]]) -> str:
    """A markdown table, one row per result of :func:`evaluate` (a single dict or a list of them).

    Missing values (no qualifying sample) print as ``–``; the footer names the protocol, seed and split.
    """
    rows = [results] if isinstance(results, Mapping) else list(results)
    if not rows:
        raise ValueError("`results` is empty.")
    header = ["mode", "N"] + [title for _, title in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        cells = [str(row.get("mode", "")), str(row.get("num_cycles", ""))]
        for key, _ in METRICS:
            value = row.get(key)
            cells.append("–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    notes = sorted({
        f"protocol {row.get('protocol')}, seed {row.get('seed')}, split {row.get('split')}, "
        f"{row.get('num_samples')} samples" for row in rows
    })
    return "\n".join(lines + [""] + [f"_{note}_" for note in notes]) + "\n"


class RegressorEstimate:
    """``initial_estimate_fn`` that makes the pipeline start from the batch's pictures: ``pipeline(image=...)``.

    This is the real protocol (pictures in, everything estimated). It hands the pipeline the batch's images,
    masks, boxes and camera matrices and nothing else, so each evaluated call is exactly a ``pipeline(image=...)``
    call: the initial estimate, the denoiser's image tokens and the learned contact estimator come from
    :meth:`~scorehoi_diffusers.ScoreHOIPipeline.prepare_initial_estimate` on the crop around each sample's bbox,
    and the crop's camera and masks feed the image guidance terms. Mode ``"regressor"`` (no cycles) thus
    measures the regressor's estimate.
    """

    def __init__(self, pipeline):
        if pipeline.regressor is None:
            raise ValueError("The pipeline has no regressor; evaluate it with the noisy-GT protocol instead.")
        self.pipeline = pipeline

    def __call__(self, batch: Dict[str, Any]) -> InitialEstimate:
        pictures = {
            "image": batch["image"], "human_mask": batch["human_mask"], "object_mask": batch["object_mask"],
            "bbox": [list(box) for box in batch["bbox"]],
            "intrinsics": np.asarray(batch["intrinsics"], dtype=np.float32),
        }
        return None, None, None, None, pictures
