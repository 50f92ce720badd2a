"""Reconstruction metrics (CONTHO's protocol, made reproducible) and physical-plausibility metrics.

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
* **Keypoint reprojection error** (% of the person box height): the body's BlazePose points
  (``skeleton.BLAZEPOSE_BODY_INDEX``) projected into the photo, their mean pixel distance to the detected
  landmarks that are visible (visibility > 0.5) and have a body point, over the height of the person's box.
* **Silhouette IoU**: intersection over union of the rendered body's pixels and the person mask.
* **MPJPE** and **PA-MPJPE** of the body joints: the mean distance between predicted and true joints after
  moving each skeleton's root (pelvis) to the origin (:func:`mpjpe`), or after the similarity transform that best
  aligns the predicted joints to the true ones (:func:`pa_mpjpe`).
* **Facing error** (degrees): the angle between the predicted and the true forward direction of the body, the
  root orientation applied to the rest pose's forward axis (+z); over 90 degrees the body faces the wrong way
  (:func:`facing_error_deg`).
* **Object-floor distance**: height of the object's lowest vertex above the floor along the up axis,
  absolute value, the floor being the body's lowest vertex; only samples whose ground truth says the object
  rests on the floor.

Sampling is seeded: the same seed gives the same surface samples for a mesh, and
:func:`scorehoi_diffusers.evaluation.evaluate` uses one
seed for prediction and ground truth ("common random numbers"), so identical meshes score exactly 0 cm.
"""
from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import cKDTree

from .contacts import CONTACT_THRESHOLD
from .objects import ObjectTemplate
from .person_detection import VISIBLE

__all__ = [
    "FSCORE_THRESHOLD",
    "procrustes_similarity",
    "apply_similarity",
    "align_reconstruction",
    "sample_surface",
    "chamfer_distance",
    "chamfer_and_f_score",
    "f_score",
    "reconstruction_contacts",
    "contact_precision_recall",
    "harmonic_f_score",
    "penetration_depth",
    "penetration_volume",
    "object_floor_distance",
    "keypoint_reprojection_error",
    "silhouette_iou",
    "mpjpe",
    "pa_mpjpe",
    "facing_error_deg",
]

FSCORE_THRESHOLD = 0.01  # metres: F-score@1cm
NUM_SURFACE_SAMPLES = 6000  # seeded area-weighted samples per mesh
CM = 100.0

ArrayLike = np.ndarray | torch.Tensor


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


def procrustes_similarity(source: ArrayLike, target: ArrayLike) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
) -> tuple[np.ndarray, np.ndarray]:
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


def _nearest_distances(a_points: ArrayLike, b_points: ArrayLike) -> tuple[list[np.ndarray], list[np.ndarray]]:
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


def chamfer_and_f_score(a_points, b_points, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    a_to_b, b_to_a = _nearest_distances(a_points, b_points)
    chamfer = np.array([d1.mean() + d2.mean() for d1, d2 in zip(a_to_b, b_to_a)]) * CM
    precision = np.array([(d < threshold).mean() for d in a_to_b])
    recall = np.array([(d < threshold).mean() for d in b_to_a])
    return chamfer, harmonic_f_score(precision, recall)


def chamfer_distance(a_points: ArrayLike, b_points: ArrayLike) -> float | np.ndarray:
    """Symmetric Chamfer distance in **cm**: mean nearest distance a→b plus mean nearest distance b→a.

    Args:
        a_points: ``(P, 3)`` or ``(B, P, 3)`` points in metres.
        b_points: ``(Q, 3)`` or ``(B, Q, 3)``.

    Returns:
        a float, or ``(B,)``.
    """
    chamfer, _ = chamfer_and_f_score(a_points, b_points, FSCORE_THRESHOLD)
    return float(chamfer[0]) if _points(a_points, "a_points").ndim == 2 else chamfer


def f_score(
    pred_points: ArrayLike, gt_points: ArrayLike, threshold: float = FSCORE_THRESHOLD
) -> float | np.ndarray:
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
    _, score = chamfer_and_f_score(pred_points, gt_points, threshold)
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


def contact_precision_recall(predicted: ArrayLike, ground_truth: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
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


def _object_sdf(
    points: ArrayLike, template: ObjectTemplate, rotation: ArrayLike, translation: ArrayLike
) -> np.ndarray:
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


def keypoint_reprojection_error(
    projected: ArrayLike, detected: ArrayLike, visibility: ArrayLike, box_height: float | ArrayLike,
) -> np.ndarray:
    """Mean pixel distance of the visible landmarks, in % of the person box height, per sample.

    Args:
        projected: ``(B, 33, 2)`` the body's BlazePose points in pixels (NaN where the body has none).
        detected: ``(B, 33, 2)`` detected landmarks in pixels.
        visibility: ``(B, 33)`` their visibilities; landmarks at or below ``VISIBLE`` (0.5) are skipped.
        box_height: the person box height(s) in pixels, ``()`` or ``(B,)``.

    Returns:
        ``(B,)`` float64 percentages; NaN for a sample with no visible landmark that has a body point.
    """
    # NaN marks landmarks without a body point in `projected`, so it is not refused as in `_numpy`.
    projected = np.asarray(projected.detach().cpu() if isinstance(projected, torch.Tensor) else projected, np.float64)
    detected, visibility = _numpy(detected, "detected"), _numpy(visibility, "visibility")
    if projected.shape != detected.shape or projected.shape[-1] != 2 or visibility.shape != projected.shape[:-1]:
        raise ValueError(f"`projected` {projected.shape}, `detected` {detected.shape} and `visibility` "
                         f"{visibility.shape} must be (B, N, 2), (B, N, 2) and (B, N).")
    height = np.broadcast_to(np.asarray(box_height, dtype=np.float64), projected.shape[:1])
    if not (np.isfinite(height) & (height > 0)).all():
        raise ValueError(f"`box_height` must be positive, got {box_height!r}.")
    used = (visibility > VISIBLE) & np.isfinite(projected).all(-1)
    distance = np.linalg.norm(np.nan_to_num(projected) - detected, axis=-1)
    count = used.sum(-1)
    mean = np.where(count > 0, (distance * used).sum(-1) / np.maximum(count, 1), np.nan)
    return 100.0 * mean / height


def silhouette_iou(rendered: ArrayLike, reference: ArrayLike) -> float:
    """Intersection over union of two ``(H, W)`` bool masks (0 when both are empty)."""
    rendered, reference = _numpy(rendered, "rendered").astype(bool), _numpy(reference, "reference").astype(bool)
    if rendered.shape != reference.shape:
        raise ValueError(f"`rendered` {rendered.shape} and `reference` {reference.shape} must have one shape.")
    union = np.logical_or(rendered, reference).sum()
    return float(np.logical_and(rendered, reference).sum() / union) if union else 0.0
# ----------------------------------------------------------------------------------------------------------
# Joints and facing direction


def _joint_pair(predicted: ArrayLike, ground_truth: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    predicted, ground_truth = _points(predicted, "predicted"), _points(ground_truth, "ground_truth")
    if predicted.shape != ground_truth.shape:
        raise ValueError(f"`predicted` {predicted.shape} and `ground_truth` {ground_truth.shape} must have the same "
                         "shape (the same joints, in the same order).")
    return predicted, ground_truth


def mpjpe(predicted: ArrayLike, ground_truth: ArrayLike, root: int = 0) -> float | np.ndarray:
    """Mean per-joint position error (cm) after moving each skeleton's ``root`` joint to the origin.

    Args:
        predicted: ``(J, 3)`` or ``(B, J, 3)`` joints (metres).
        ground_truth: same shape, the same joints in the same order.
        root: the joint put at the origin (0: SMPL-H's pelvis).

    Returns:
        A float, or ``(B,)`` per sample.
    """
    predicted, ground_truth = _joint_pair(predicted, ground_truth)
    if not 0 <= root < predicted.shape[-2]:
        raise ValueError(f"`root` must index one of the {predicted.shape[-2]} joints, got {root}.")
    predicted = predicted - predicted[..., root: root + 1, :]
    ground_truth = ground_truth - ground_truth[..., root: root + 1, :]
    error = CM * np.linalg.norm(predicted - ground_truth, axis=-1).mean(-1)
    return float(error) if error.ndim == 0 else error


def pa_mpjpe(predicted: ArrayLike, ground_truth: ArrayLike) -> float | np.ndarray:
    """Mean per-joint position error (cm) after aligning the prediction to the truth by the least-squares
    similarity transform (scale, rotation, translation; :func:`procrustes_similarity`).

    Args:
        predicted: ``(J, 3)`` or ``(B, J, 3)`` joints (metres), at least 3 not all on one point.
        ground_truth: same shape.

    Returns:
        A float, or ``(B,)`` per sample.
    """
    predicted, ground_truth = _joint_pair(predicted, ground_truth)
    aligned = apply_similarity(predicted, *procrustes_similarity(predicted, ground_truth))
    error = CM * np.linalg.norm(aligned - ground_truth, axis=-1).mean(-1)
    return float(error) if error.ndim == 0 else error


def facing_error_deg(predicted_orient: ArrayLike, ground_truth_orient: ArrayLike) -> float | np.ndarray:
    """Angle (degrees) between the forward directions of two body root orientations.

    The body faces +z in its rest pose, so its forward direction is the root rotation's third column.

    Args:
        predicted_orient: ``(3, 3)`` or ``(B, 3, 3)`` root rotations (``HOIParams.global_orient``).
        ground_truth_orient: same shape.

    Returns:
        A float in [0, 180], or ``(B,)`` per sample.
    """
    predicted, truth = _numpy(predicted_orient, "predicted_orient"), _numpy(ground_truth_orient, "ground_truth_orient")
    if predicted.shape[-2:] != (3, 3) or predicted.shape != truth.shape or predicted.ndim not in (2, 3):
        raise ValueError(f"`predicted_orient` {predicted.shape} and `ground_truth_orient` {truth.shape} must both "
                         "have shape (3, 3) or (B, 3, 3).")
    forward, true_forward = predicted[..., :, 2], truth[..., :, 2]
    cosine = (forward * true_forward).sum(-1) / (
        np.linalg.norm(forward, axis=-1) * np.linalg.norm(true_forward, axis=-1))
    angle = np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0)))
    return float(angle) if angle.ndim == 0 else angle
