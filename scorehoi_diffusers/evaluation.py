"""The evaluation loop: a pipeline on a dataset split, scored with :mod:`scorehoi_diffusers.metrics`.

:func:`evaluate` runs one ablation mode (:data:`ABLATION_MODES`) on a split and reports the mean of each metric,
its standard error and the seconds per image (wall time of the initial estimate plus refinement, divided by the
batch size). Sampling is seeded: :func:`evaluate` uses one seed for the surface samples of prediction and ground
truth ("common random numbers"), so identical meshes score exactly 0 cm.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from diffusers.utils import logging
from PIL import Image

from .body import blazepose_points
from .contacts import Contacts
from .data.behave import ANNOTATED_CONTACT
from .data.schema import sample_to_params
from .data.simulated_detections import DetectionNoise, simulate_detections
from .metrics import (
    FSCORE_THRESHOLD,
    NUM_SURFACE_SAMPLES,
    align_reconstruction,
    chamfer_and_f_score,
    contact_precision_recall,
    facing_error_deg,
    harmonic_f_score,
    mpjpe,
    object_floor_distance,
    pa_mpjpe,
    penetration_depth,
    penetration_volume,
    reconstruction_contacts,
    sample_surface,
)
from .objects import ObjectTemplate, load_object
from .optimization_baseline import GuidanceOptimization
from .params import HOIParams, axis_angle_to_matrix
from .person_detection import default_person_detector
from .skeleton import BODY_JOINTS, LEFT_HAND_JOINTS, NUM_BLAZEPOSE, RIGHT_HAND_JOINTS

logger = logging.get_logger(__name__)

__all__ = [
    "ABLATION_MODES",
    "CONTACT_LABELS",
    "DetectedPictures",
    "FLIPPED_DEGREES",
    "KEYPOINT_SOURCES",
    "METRICS",
    "MODE_LABELS",
    "NoisyGroundTruth",
    "RegressorEstimate",
    "evaluate",
    "format_table",
    "paired_differences",
]

ABLATION_MODES = ("regressor", "optimization", "prior", "frozen_contacts", "full")
# Table labels of the modes whose name alone does not say what they are.
MODE_LABELS = {"optimization": "w/o diffusion (optimisation only)"}
CONTACT_LABELS = ("auto", "annotated", "recomputed")
# Where RegressorEstimate's keypoints come from: none, simulated detections of the ground truth, or the bundled
# person detector run on each picture (which also replaces the person mask).
KEYPOINT_SOURCES = (None, "simulated", "detected")
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
    ("mpjpe", "MPJPE (cm)"),
    ("pa_mpjpe", "PA-MPJPE (cm)"),
    ("facing_error", "facing err. (°)"),
    ("facing_flipped", "flipped"),
    ("seconds_per_image", "s / image"),
)
# The body joints of MPJPE and PA-MPJPE: SMPL-H's root and 21 body joints (hands excluded, as usual).
_MPJPE_JOINTS = slice(0, BODY_JOINTS.stop)
# Facing errors above this many degrees count as flipped (the body faces away from where it should).
FLIPPED_DEGREES = 90.0

# (params, contacts, image tokens, contact estimator), optionally followed by a dict of further pipeline arguments
# (e.g. the batch's `image`, masks, `bbox` and `intrinsics`, with `params` None: the pipeline then starts from the
# pictures, exactly as `pipeline(image=...)`).
InitialEstimate = (
    tuple[HOIParams | None, Contacts | None, torch.Tensor | None, Callable | None]
    | tuple[HOIParams | None, Contacts | None, torch.Tensor | None, Callable | None, dict[str, Any]]
)


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
                body_pose=params.body_pose @ perturb[:, BODY_JOINTS],
                left_hand_pose=params.left_hand_pose @ perturb[:, LEFT_HAND_JOINTS],
                right_hand_pose=params.right_hand_pose @ perturb[:, RIGHT_HAND_JOINTS],
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


def _mode_arguments(mode: str, num_cycles: int) -> dict[str, Any]:
    """Pipeline arguments of an ablation mode."""
    if mode == "regressor":
        return {"num_cycles": 0}
    if mode == "optimization":
        return {"num_cycles": num_cycles}
    if mode == "prior":
        return {"num_cycles": num_cycles, "guidance_scale": 0.0}
    if mode == "frozen_contacts":
        return {"num_cycles": num_cycles, "refresh_contacts": False}
    if mode == "full":
        return {"num_cycles": num_cycles}
    raise ValueError(f"`mode` must be one of {list(ABLATION_MODES)}, got {mode!r}.")


def _select_split(dataset, split: str | None):
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


def _mean(values: np.ndarray) -> float | None:
    """Mean of the finite entries, ``None`` (JSON null) when there is none."""
    values = _finite(values)
    return float(values.mean()) if values.size else None


def _standard_error(values: np.ndarray) -> float | None:
    """Standard error of :func:`_mean` (sample standard deviation / sqrt(n)), ``None`` below two entries."""
    values = _finite(values)
    return float(values.std(ddof=1) / np.sqrt(values.size)) if values.size > 1 else None


def evaluate(
    pipeline,
    dataset,
    split: str | None = "test",
    num_samples: int | None = None,
    mode: str = "full",
    num_cycles: int = 10,
    seed: int = 0,
    batch_size: int = 8,
    initial_estimate_fn: Callable[[dict[str, Any]], InitialEstimate] | None = None,
    guidance_config=None,
    object_root=None,
    gt_body_model=None,
    up_axis: Sequence[float] = (0.0, -1.0, 0.0),
    num_surface_samples: int = NUM_SURFACE_SAMPLES,
    object_templates: Mapping[str, ObjectTemplate] | None = None,
    contact_labels: str = "auto",
    step_size: float | None = None,
    pose_prior_weight: float | None = None,
) -> dict[str, Any]:
    """Run the pipeline on a dataset and average the metrics of the module docstring.

    Args:
        pipeline: a :class:`~scorehoi_diffusers.ScoreHOIPipeline`.
        dataset: a ``datasets.Dataset`` in the sample schema (:mod:`scorehoi_diffusers.data.schema`), or a
            mapping of split name to such datasets (``DatasetDict``).
        split: the split to take from a mapping; recorded in the results.
        num_samples: evaluate the first ``num_samples`` rows (all when ``None``).
        mode: ``"regressor"`` (the initial estimate, no refinement), ``"optimization"`` (the "w/o diffusion"
            row: :class:`~scorehoi_diffusers.optimization_baseline.GuidanceOptimization`, gradient descent on the
            same guidance loss with the same step budget), ``"prior"`` (refinement with guidance scale 0),
            ``"frozen_contacts"`` (guidance with the initial contacts throughout) or ``"full"``.
        num_cycles: refinement cycles N (ignored by ``"regressor"``).
        seed: seeds the default noisy-GT estimate, the pipeline's generator and the surface sampling.
        batch_size: samples per pipeline call (samples of one object are batched together).
        initial_estimate_fn: ``fn(batch) -> (HOIParams | None, Contacts | None, image_tokens | None,
            contact_estimator | None[, pipeline_kwargs])``, where the optional ``pipeline_kwargs`` (e.g. the
            pictures, see :class:`RegressorEstimate`) go to the pipeline call. ``batch`` holds the dataset columns
            of the rows (lists, one entry per sample), ``"index"`` (their row numbers) and ``"object"`` (the
            :class:`ObjectTemplate`). Default:
            :class:`NoisyGroundTruth` with ``seed`` (the "noisy-GT" protocol, which tests refinement alone).
        guidance_config: :class:`~scorehoi_diffusers.guidance.GuidanceConfig` for the pipeline.
        object_root: folder of user-supplied dataset object meshes (BEHAVE / InterCap names).
        gt_body_model: body model that builds the ground-truth meshes (default: the pipeline's), or a mapping
            ``{gender: BodyModel}`` that poses each sample with the body of its ``gender`` column (BEHAVE and
            InterCap were fitted with gendered SMPL-H).
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
        step_size: the gradient-descent step of mode ``"optimization"`` (ignored by the others; default: the one
            chosen on the validation slice, with or without keypoints).
        pose_prior_weight: the pose prior's weight in mode ``"optimization"`` (ignored by the others; default: the
            one chosen on the validation slice, with or without keypoints).

    Returns:
        A JSON-serialisable dict: ``mode``, ``protocol`` (``"noisy_gt"`` or ``"custom"``), ``seed``, ``split``,
        ``num_samples``, ``num_cycles``, ``batch_size``, one mean per metric of :data:`METRICS` (``None`` when
        no sample qualifies), ``standard_errors`` (of each per-sample mean, to judge differences between runs)
        and ``counts`` (samples behind the contact precision, recall and floor means); ``contact_labels``: the
        labels used, ``"annotated"`` or ``"recomputed"``.
        Everything but ``seconds_per_image`` is identical for the same arguments.
    """
    mode_arguments = _mode_arguments(mode, num_cycles)
    refine = GuidanceOptimization(pipeline, step_size, pose_prior_weight) if mode == "optimization" else pipeline
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
    per_sample: dict[str, list[np.ndarray]] = {
        key: [] for key, _ in METRICS if key not in ("contact_f", "seconds_per_image")
    }
    order: list[np.ndarray] = []  # dataset rows in the order their metrics were computed
    elapsed = 0.0
    with_keypoints = False  # whether the refinement got keypoints (the optimisation's defaults depend on it)
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
            with_keypoints = with_keypoints or (extra[0] if extra else {}).get("keypoints") is not None
            output = refine(
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
            order.append(index)

    values = {key: np.concatenate(parts) for key, parts in per_sample.items()}
    precision, recall = _mean(values["contact_precision"]), _mean(values["contact_recall"])
    results: dict[str, Any] = {
        "mode": mode,
        "protocol": protocol,
        "seed": int(seed),
        "split": split,
        "num_samples": total,
        "num_cycles": int(mode_arguments["num_cycles"]),
        "batch_size": batch_size,
        "contact_labels": contact_labels,
    }
    if mode == "optimization":
        results["step_size"], results["pose_prior_weight"] = refine.settings(keypoints=with_keypoints)
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
    # Per-sample values (None where a metric is undefined), so two runs can be compared pair by pair.
    rows = np.concatenate(order)
    results["per_sample"] = {
        "index": rows.tolist(),
        **{key: [float(v) if np.isfinite(v) else None for v in value] for key, value in values.items()},
    }
    return results


def paired_differences(result: Mapping[str, Any], reference: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """Per-metric mean and standard error of ``result - reference`` over the samples both scored.

    Rows are matched by dataset index, so two :func:`evaluate` runs on the same split (e.g. two ablation modes)
    are compared sample by sample: the standard error of a paired difference is far smaller than either run's.

    Each sample's contact F (``2PR / (P + R)`` of its contact precision and recall; undefined where either is) is
    paired too, as ``contact_f``, so that the headline contact metric gets a paired standard error like the rest.

    Returns:
        ``{metric: {"mean": ..., "standard_error": ..., "count": ...}}`` for every per-sample metric.
    """
    mine, theirs = _with_contact_f(result["per_sample"]), _with_contact_f(reference["per_sample"])
    position = {int(row): i for i, row in enumerate(theirs["index"])}
    pairs = [(i, position[int(row)]) for i, row in enumerate(mine["index"]) if int(row) in position]
    if not pairs:
        raise ValueError("The two results share no samples: evaluate both on the same split and samples.")
    out = {}
    for key in mine:
        if key == "index":
            continue
        diff = np.array([
            np.nan if mine[key][i] is None or theirs[key][j] is None else mine[key][i] - theirs[key][j]
            for i, j in pairs
        ])
        out[key] = {"mean": _mean(diff), "standard_error": _standard_error(diff), "count": int(_finite(diff).size)}
    return out


def _with_contact_f(per_sample: Mapping[str, list]) -> dict[str, list]:
    """``per_sample`` with each sample's contact F added (None where its precision or recall is None)."""
    if "contact_precision" not in per_sample or "contact_recall" not in per_sample:
        return dict(per_sample)
    scores = [None if p is None or r is None else float(harmonic_f_score(p, r))
              for p, r in zip(per_sample["contact_precision"], per_sample["contact_recall"])]
    return {**per_sample, "contact_f": scores}


def _ground_truth_body(gt_body_model, gt: HOIParams, genders) -> tuple[torch.Tensor, torch.Tensor]:
    """``(B, V, 3)`` camera-space ground-truth bodies and their ``(B, 52, 3)`` joints; a mapping
    ``{gender: BodyModel}`` poses each sample with the body of its ``gender`` (datasets fitted with gendered
    SMPL-H), falling back to ``"neutral"``."""
    if not isinstance(gt_body_model, Mapping):
        output = gt_body_model(gt, frame="camera")
        return output.vertices, output.joints
    genders = ["neutral"] * gt.batch_size if genders is None else [str(g).lower() for g in genders]
    unknown = sorted({g for g in genders if g not in gt_body_model and "neutral" not in gt_body_model})
    if unknown:
        raise ValueError(f"`gt_body_model` has no body for genders {unknown} and no 'neutral' one to fall back to.")
    vertices = joints = None
    for gender in sorted(set(genders)):
        rows = torch.tensor([i for i, g in enumerate(genders) if g == gender], device=gt.device)
        model = gt_body_model.get(gender, gt_body_model.get("neutral"))
        posed = model(gt[rows], frame="camera")
        if vertices is None:
            vertices = posed.vertices.new_empty(gt.batch_size, *posed.vertices.shape[1:])
            joints = posed.joints.new_empty(gt.batch_size, *posed.joints.shape[1:])
        vertices[rows], joints[rows] = posed.vertices, posed.joints
    return vertices, joints


def _batch_metrics(
    output, batch, template: ObjectTemplate, body_model, gt_body_model, body_faces, object_faces,
    up_axis, num_surface_samples: int, seed: int, contact_labels: str = "recomputed",
) -> dict[str, np.ndarray]:
    """Per-sample metrics ``(B,)`` of one pipeline output against its batch's ground truth."""
    predicted = output.params
    pred_human = output.body_vertices
    pred_object = output.object_vertices
    gt = sample_to_params(batch).to(device=pred_human.device, dtype=pred_human.dtype)
    with torch.no_grad():
        gt_human, gt_joints = _ground_truth_body(gt_body_model, gt, batch.get("gender"))
        pred_joints = body_model(predicted.to(device=pred_human.device, dtype=pred_human.dtype)).joints
    template = template.to(device=pred_human.device, dtype=pred_human.dtype)
    gt_object = template.pose(template.vertices, gt.object_rotation, gt.object_translation + gt.camera_translation)

    aligned_human, aligned_object = align_reconstruction(pred_human, pred_object, gt_human, gt_object)
    samples = {}
    for key, vertices, faces in (
        ("pred_human", aligned_human, body_faces), ("gt_human", gt_human, body_faces),
        ("pred_object", aligned_object, object_faces), ("gt_object", gt_object, object_faces),
    ):
        samples[key] = sample_surface(vertices, faces, num_surface_samples, seed)
    cd_human, fscore_human = chamfer_and_f_score(samples["pred_human"], samples["gt_human"], FSCORE_THRESHOLD)
    cd_object, fscore_object = chamfer_and_f_score(samples["pred_object"], samples["gt_object"], FSCORE_THRESHOLD)

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
    facing = facing_error_deg(predicted.global_orient, gt.global_orient)
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
        "mpjpe": mpjpe(pred_joints[:, _MPJPE_JOINTS], gt_joints[:, _MPJPE_JOINTS]),
        "pa_mpjpe": pa_mpjpe(pred_joints[:, _MPJPE_JOINTS], gt_joints[:, _MPJPE_JOINTS]),
        "facing_error": facing,
        "facing_flipped": (facing > FLIPPED_DEGREES).astype(np.float64),
    }


def format_table(results: Mapping[str, Any] | Sequence[Mapping[str, Any]]) -> str:
    """A markdown table, one row per result of :func:`evaluate` (a single dict or a list of them).

    Missing values (no qualifying sample) print as ``–``; the footer names the protocol, seed and split.
    """
    rows = [results] if isinstance(results, Mapping) else list(results)
    if not rows:
        raise ValueError("`results` is empty.")
    header = ["mode", "N"] + [title for _, title in METRICS]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in rows:
        mode = str(row.get("mode", ""))
        cells = [MODE_LABELS.get(mode, mode), str(row.get("num_cycles", ""))]
        for key, _ in METRICS:
            value = row.get(key)
            cells.append("–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    notes = sorted({
        f"protocol {row.get('protocol')}, seed {row.get('seed')}, split {row.get('split')}, "
        f"{row.get('num_samples')} samples" for row in rows
    })
    return "\n".join(lines + [""] + [f"_{note}_" for note in notes]) + "\n"


class DetectedPictures:
    """The bundled person detector run on each dataset picture, as on a photo without a hand-drawn person mask.

    Calling it on a batch (with its ``index``, the dataset rows) gives the picture fields it replaces: ``keypoints``
    ``(B, 33, 3)`` (the detected landmarks ``(u, v, visibility)`` in picture pixels) and ``human_mask`` (the
    detector's person mask, a mode-"L" picture, instead of the dataset's). mediapipe's most prominent person is taken.
    A picture in which it finds nobody keeps its own mask and gets no keypoints (every visibility 0); :attr:`missed`
    holds those rows. Each row is detected once however many evaluations read it (:attr:`by_row`: its keypoints and
    mask, the own mask for a miss).

    Args:
        detector: a :class:`~scorehoi_diffusers.person_detection.PersonDetector` (default: the bundled one).
    """

    def __init__(self, detector=None):
        self.detector = default_person_detector() if detector is None else detector
        self.by_row: dict[int, tuple[np.ndarray, Any]] = {}
        self.missed: set[int] = set()

    def detect(self, image) -> tuple[np.ndarray, Image.Image] | None:
        """The most prominent person in the picture ``image``: ``(keypoints (33, 3), person mask)`` (the mask a
        mode-"L" picture), or ``None`` where the detector finds nobody. Not cached."""
        people = self.detector.detect(np.asarray(image.convert("RGB")))
        if not people:
            return None
        return (people[0].keypoints_with_visibility().astype(np.float64),
                Image.fromarray(people[0].mask.astype(np.uint8) * 255))

    def _detect(self, row: int, image, own_mask) -> tuple[np.ndarray, Any]:
        if row not in self.by_row:
            found = self.detect(image)
            if found is None:
                self.missed.add(row)
                found = (np.zeros((NUM_BLAZEPOSE, 3)), own_mask)
            self.by_row[row] = found
        return self.by_row[row]

    def __call__(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        keypoints, masks = zip(*(self._detect(int(row), image, mask) for row, image, mask in
                                 zip(np.asarray(batch["index"]).reshape(-1), batch["image"], batch["human_mask"])))
        return {"keypoints": np.stack(keypoints), "human_mask": list(masks)}


class RegressorEstimate:
    """``initial_estimate_fn`` that makes the pipeline start from the batch's pictures: ``pipeline(image=...)``.

    This is the real protocol (pictures in, everything estimated). It hands the pipeline the batch's images,
    masks, boxes and camera matrices and nothing else, so each evaluated call is exactly a ``pipeline(image=...)``
    call: the initial estimate, the denoiser's image tokens and the learned contact estimator come from
    :meth:`~scorehoi_diffusers.ScoreHOIPipeline.prepare_initial_estimate` on the crop around each sample's bbox,
    and the crop's camera and masks feed the image guidance terms. Mode ``"regressor"`` (no cycles) thus
    measures the regressor's estimate.

    Args:
        pipeline: the pipeline to evaluate.
        keypoints: ``None``, or ``"simulated"``: also hand it ``keypoints``, simulated detections of each sample's
            ground-truth body (:func:`~scorehoi_diffusers.data.simulated_detections.simulate_detections` at the
            measured detector rates), as a person detector would give them; or ``"detected"``: the bundled
            detector's own keypoints and person mask for each picture (:class:`DetectedPictures`).
        seed: seeds the simulated detections; sample ``i`` (its dataset row) draws from its own generator, so its
            detections do not depend on batching.
        noise: the detector's error rates (default: the measured ``DetectionNoise()``).
    """

    def __init__(self, pipeline, keypoints: str | None = None, seed: int = 0, noise: DetectionNoise | None = None):
        if pipeline.regressor is None:
            raise ValueError("The pipeline has no regressor; evaluate it with the noisy-GT protocol instead.")
        if keypoints not in KEYPOINT_SOURCES:
            raise ValueError(f"`keypoints` must be one of {list(KEYPOINT_SOURCES)}, got {keypoints!r}.")
        self.pipeline, self.keypoints, self.seed, self.noise = pipeline, keypoints, int(seed), noise
        self.detected = DetectedPictures() if keypoints == "detected" else None

    def __call__(self, batch: dict[str, Any]) -> InitialEstimate:
        pictures = {
            "image": batch["image"], "human_mask": batch["human_mask"], "object_mask": batch["object_mask"],
            "bbox": [list(box) for box in batch["bbox"]],
            "intrinsics": np.asarray(batch["intrinsics"], dtype=np.float32),
        }
        if self.keypoints == "simulated":
            pictures["keypoints"] = self._simulated_keypoints(batch, pictures["intrinsics"])
        elif self.keypoints == "detected":
            pictures.update(self.detected(batch))
        return None, None, None, None, pictures

    def _simulated_keypoints(self, batch: dict[str, Any], intrinsics: np.ndarray) -> torch.Tensor:
        """``(B, 33, 3)`` simulated detections of the batch's true bodies, in picture pixels."""
        with torch.no_grad():
            body = self.pipeline.body_model
            output = body(sample_to_params(batch).to(device=body.device), frame="camera")
            points = blazepose_points(output.joints, output.landmarks).float().cpu()
        detections = []
        for row, index in enumerate(np.asarray(batch["index"]).reshape(-1)):
            height, width = np.asarray(batch["image"][row]).shape[:2]
            seed = int(np.random.default_rng([self.seed, int(index)]).integers(2**62))
            detections.append(simulate_detections(points[row: row + 1], torch.as_tensor(intrinsics[row: row + 1]),
                                                  (int(height), int(width)), self.noise,
                                                  torch.Generator().manual_seed(seed)))
        return torch.cat(detections)
