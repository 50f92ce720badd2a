"""BEHAVE and InterCap in CONTHO's COCO-style annotation layout, converted to the sample schema.

The data are licensed with the datasets and never shipped: the user points the loader at their copy.

Folders, as CONTHO keeps them (``{dataset}`` is ``behave`` or ``intercap``, ``{split}`` ``train`` or ``test``)::

    data/base_data/annotations/{dataset}_{split}.json      -> ``root``
    data/base_data/object_models/{dataset}/_info.json     -> ``object_root`` (with the meshes it names)
    data/BEHAVE/sequences/Date01_Sub01_backpack_back/...  -> ``image_root`` (``data/InterCap/sequences``)

Annotation file::

    images:      id, file_name (relative to ``image_root``), width, height,
                 cam_param {focal [fx, fy], princpt [cx, cy], optional R (3x3), optional t (3)}
    annotations: id, image_id, bbox [x, y, w, h] (person + object),
                 smpl_param {pose (156 axis-angle: root, 21 body, 15 left-hand, 15 right-hand joints),
                             shape (10 or more; the first 10 are kept), trans (3), gender},
                 obj_param {pose (3 axis-angle), trans (3), name},
                 h3d_keypoints (optional, (J, 3) camera space, joint 0 the pelvis),
                 h_contacts (optional; kept when it labels every SMPL-H vertex), o_contacts (not used)

Masks lie next to the pictures and are found by :class:`MaskLayout`:

* BEHAVE (:data:`BEHAVE_MASKS`): ``X.color.jpg`` -> ``X.person_mask.jpg``, ``X.obj_rend_mask.jpg``;
* InterCap (:data:`INTERCAP_MASKS`): ``.../color/X.jpg`` -> ``.../mask/X_human.png``, ``.../mask/X_object.png``.

Object meshes: CONTHO's object models or BEHAVE's raw ``objects/`` folder, each in the frame the poses refer
to (:mod:`scorehoi_diffusers.data.dataset_objects`); InterCap's objects are ``"01"`` .. ``"10"`` (a number in
the file is read as that name).

Conversion to the schema (:mod:`scorehoi_diffusers.data.schema`):

* Camera extrinsics: when ``cam_param`` holds ``R`` (and/or ``t``), the annotation's body and object are in a
  world frame and ``x_cam = R @ x + t``. The root orientation becomes ``R @ root`` and the object pose
  ``(R @ R_o, R @ t_o + t)``; the body is posed in the world frame and moved rigidly the same way.
* ``pose``: the file's 156 values (the root as above). With ``flat_hand_mean=False`` (default, CONTHO's
  convention: its SMPL-H layer is smplx's with ``use_pca=False`` and the default ``flat_hand_mean=False``)
  the file's hand values are relative to the SMPL-H mean hand, as the schema's, and are kept. With
  ``flat_hand_mean=True`` they are read as absolute joint rotations and stored as ``file_hand - hands_mean``
  (axis-angle subtraction, exact: smplx adds the mean hand in axis-angle).
* ``betas``: the first 10 values of ``shape``.
* ``camera_translation``: the pelvis in camera space, ``R @ (J_0(betas) + trans) + t``: smplx's ``transl``
  moves vertices and joints alike, so the pelvis is joint 0 of an SMPL-H forward. It depends on the body
  model, which is why the loader needs the user's SMPL-H (:class:`BodyModel`). When ``h3d_keypoints`` is
  present its joint 0 must agree with it within ``pelvis_tolerance`` (1 cm), else the loader raises an error
  naming the sample: a disagreement means a wrong body model, hand convention or extrinsic.
* ``object_rotation`` = the matrix of the object pose; ``object_translation = t_o - camera_translation``
  (pelvis-relative, camera axes).
* ``intrinsics`` from ``cam_param``; ``bbox`` as in the file; ``gender`` from the file (``"neutral"`` when
  absent); ``source`` = ``dataset``; ``sample_id`` = the picture's ``file_name`` (with ``#<annotation id>``
  appended when one picture has several annotations).
* ``image``, ``human_mask``, ``object_mask`` hold the file paths (Arrow stores the path; the picture is
  read when a row is accessed). The masks are the datasets' own files (JPEG for BEHAVE, so grey values
  near 0 and 255): binarise at 128, as :func:`~scorehoi_diffusers.data.crop.crop_sample` does.
* ``annotated_contact`` (extra column, :data:`ANNOTATED_CONTACT`): the file's ``h_contacts`` when every
  annotation labels all 6890 SMPL-H vertices (CONTHO's test splits), for contact precision and recall
  against the dataset's own labels (:func:`scorehoi_diffusers.evaluation.evaluate`). Labels of another
  length (CONTHO's train splits index its own 431-vertex downsampling) are not kept.

The schema's contacts are recomputed from the ground-truth geometry, because the files' labels index CONTHO's
vertex sets, not ours (our downsampled vertices are :attr:`BodyModel.downsample_index`, our object points the
template's ``keypoints``). With ``d = contact_threshold`` (5 cm):

* ``human_contact``: a downsampled body vertex whose signed distance to the posed object is below ``d``
  (:meth:`ObjectTemplate.signed_distance_posed`; inside counts as contact);
* ``object_contact``: an object keypoint within ``d`` of a vertex of the full body mesh;
* ``floor_contact``: the lowest object vertex is within ``floor_threshold`` (2 cm) of the lowest body-or-
  object vertex, heights measured along ``up_axis`` (camera -y by default). The datasets' cameras are
  tilted by up to a few tens of degrees, so along camera -y this label is only approximate; pass the
  gravity direction in camera space as ``up_axis`` when known.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np
import torch
from diffusers.utils import logging

from ..body import SMPLH_NUM_VERTICES, BodyModel, resolve_body_file
from ..contacts import CONTACT_THRESHOLD, FLOOR_CONTACT_THRESHOLD
from ..objects import INTERCAP_OBJECTS, ObjectTemplate, load_object
from ..params import NUM_BETAS, axis_angle_to_matrix, matrix_to_axis_angle
from ..skeleton import BODY_JOINTS, HAND_JOINTS, LEFT_HAND_JOINTS, NUM_JOINTS, RIGHT_HAND_JOINTS
from .dataset_objects import load_dataset_object
from .mask_layout import BEHAVE_MASKS, INTERCAP_MASKS, MaskLayout
from .schema import FEATURES, NUM_POSE_VALUES

logger = logging.get_logger(__name__)

DATASETS = ("behave", "intercap")
SPLITS = ("train", "test")
GENDERS = ("neutral", "male", "female")

# Extra column: the annotation's own per-vertex human contact labels over the full SMPL-H mesh.
ANNOTATED_CONTACT = "annotated_contact"
PELVIS_TOLERANCE = 0.01  # metres: trans-implied pelvis vs the annotation's h3d_keypoints[0]
_ROTATION_TOLERANCE = 1e-3  # an extrinsic R must be orthonormal with det +1 to this accuracy

PathLike = str | os.PathLike
BodySpec = BodyModel | Mapping[str, BodyModel] | None
_DEFAULT_MASKS = {"behave": BEHAVE_MASKS, "intercap": INTERCAP_MASKS}


@dataclass
class _Record:
    """One annotation, parsed and checked, before any geometry is computed."""

    sample_id: str
    where: str  # the JSON file and annotation id, for error messages
    image_path: Path
    human_mask_path: Path
    object_mask_path: Path
    intrinsics: np.ndarray  # (3, 3)
    extrinsic_rotation: np.ndarray | None  # (3, 3) cam_param.R
    extrinsic_translation: np.ndarray  # (3,), zero without cam_param.t
    bbox: np.ndarray  # (4,)
    pose: np.ndarray  # (156,) as in the file
    betas: np.ndarray  # (10,)
    trans: np.ndarray  # (3,)
    gender: str
    object_name: str
    object_pose: np.ndarray  # (3,)
    object_trans: np.ndarray  # (3,)
    pelvis_keypoint: np.ndarray | None  # (3,) h3d_keypoints[0], camera space
    annotated_contact: np.ndarray | None  # (6890,) h_contacts, when it labels every SMPL-H vertex


def annotation_path(root: PathLike, dataset: str, split: str) -> Path:
    """``{root}/{dataset}_{split}.json``, after checking ``dataset`` and ``split``."""
    if dataset not in DATASETS:
        raise ValueError(f"`dataset` must be one of {DATASETS}, got {dataset!r}.")
    if split not in SPLITS:
        raise ValueError(f"`split` must be one of {SPLITS}, got {split!r}.")
    return Path(root).expanduser() / f"{dataset}_{split}.json"


def iter_contho_samples(
    root: PathLike,
    dataset: str = "behave",
    split: str = "train",
    body: BodySpec = None,
    object_root: PathLike | None = None,
    *,
    image_root: PathLike | None = None,
    max_samples: int | None = None,
    flat_hand_mean: bool = False,
    mask_layout: MaskLayout | None = None,
    object_names: Mapping[str, str | PathLike | ObjectTemplate] | None = None,
    contact_threshold: float = CONTACT_THRESHOLD,
    floor_threshold: float = FLOOR_CONTACT_THRESHOLD,
    up_axis: Sequence[float] = (0.0, -1.0, 0.0),
    pelvis_tolerance: float | None = PELVIS_TOLERANCE,
    batch_size: int = 32,
    progress: bool = False,
) -> Iterator[dict]:
    """Yield the samples of a CONTHO-layout annotation file one by one, in file order (lazy).

    The file is read and every annotation checked when this function is called, so errors are raised
    here, before any sample is produced; the geometry (body forward, contacts) is then computed
    ``batch_size`` samples at a time as the iterator is consumed.

    Args:
        root: folder holding ``{dataset}_{split}.json`` (CONTHO's ``data/base_data/annotations``).
        dataset: ``"behave"`` or ``"intercap"``.
        split: ``"train"`` or ``"test"``.
        body: the SMPL-H :class:`BodyModel` the annotations were fitted with, or a mapping
            ``{"male": ..., "female": ..., "neutral": ...}`` picked by each annotation's gender (a missing
            gender falls back to ``"neutral"``). ``None`` uses the licence-free stand-in body with a warning:
            its pelvis and surface differ from SMPL-H's, so positions and contacts are then approximate, and
            the pelvis check against ``h3d_keypoints`` is skipped.
        object_root: CONTHO's ``data/base_data/object_models`` (or its ``{dataset}`` folder), or BEHAVE's raw
            ``objects/`` folder; see :func:`~scorehoi_diffusers.data.dataset_objects.load_dataset_object`.
        image_root: folder that ``file_name`` is relative to (CONTHO's ``data/BEHAVE/sequences`` or
            ``data/InterCap/sequences``); defaults to ``root``.
        max_samples: stop after this many annotations.
        flat_hand_mean: ``False`` (CONTHO's convention): the file's hand pose is relative to the mean hand;
            ``True``: it is absolute (see the module docstring).
        mask_layout: mask naming; defaults to :data:`BEHAVE_MASKS` or :data:`INTERCAP_MASKS`.
        object_names: optional map from an annotation's object name to what to load instead (a name looked up
            under ``object_root``, a mesh path or an :class:`ObjectTemplate`); the sample keeps the
            annotation's name.
        contact_threshold: metres, for human and object contacts.
        floor_threshold: metres, for the object-floor contact.
        up_axis: ``(3,)`` up direction in camera space for the floor contact.
        pelvis_tolerance: metres; the largest distance allowed between the pelvis implied by ``trans`` and
            ``h3d_keypoints[0]``. ``None`` skips the check.
        batch_size: samples per body forward.
        progress: show a progress bar.

    Yields:
        Schema dicts (:data:`~scorehoi_diffusers.data.schema.FEATURES`) whose ``image``, ``human_mask`` and
        ``object_mask`` are file paths (strings), plus :data:`ANNOTATED_CONTACT` when the file has such labels.
    """
    json_path = annotation_path(root, dataset, split)
    image_root = Path(root if image_root is None else image_root).expanduser()
    mask_layout = _DEFAULT_MASKS[dataset] if mask_layout is None else mask_layout
    if not isinstance(mask_layout, MaskLayout):
        raise TypeError(f"`mask_layout` must be a MaskLayout, got {type(mask_layout).__name__}.")
    if max_samples is not None and max_samples < 0:
        raise ValueError(f"`max_samples` must be >= 0, got {max_samples}.")
    if batch_size < 1:
        raise ValueError(f"`batch_size` must be >= 1, got {batch_size}.")
    if not (contact_threshold > 0 and floor_threshold > 0):
        raise ValueError(
            f"`contact_threshold` and `floor_threshold` must be > 0, got {contact_threshold} and {floor_threshold}."
        )
    if pelvis_tolerance is not None and not pelvis_tolerance > 0:
        raise ValueError(f"`pelvis_tolerance` must be > 0 (metres) or None, got {pelvis_tolerance}.")
    up = torch.as_tensor(up_axis, dtype=torch.float32)
    if up.shape != (3,) or not torch.isfinite(up).all() or up.norm() == 0:
        raise ValueError(f"`up_axis` must be a non-zero 3-vector, got {up_axis!r}.")
    up = up / up.norm()
    if body is None:
        pelvis_tolerance = None  # the stand-in's pelvis is not SMPL-H's: the check would only flag that
    bodies = _resolve_bodies(body)

    records = _read_records(json_path, dataset, image_root, mask_layout, max_samples)
    if any(record.annotated_contact is None for record in records):
        for record in records:
            record.annotated_contact = None
    templates = _load_templates(records, object_root, dataset, object_names)

    def generate() -> Iterator[dict]:
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(records), desc=f"{dataset} {split}", unit="sample")
        try:
            for start in range(0, len(records), batch_size):
                chunk = records[start : start + batch_size]
                yield from _convert(
                    chunk, dataset, bodies, templates, flat_hand_mean, contact_threshold, floor_threshold, up,
                    pelvis_tolerance,
                )
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()

    return generate()


def load_contho_dataset(
    root: PathLike,
    dataset: str = "behave",
    split: str = "train",
    body: BodySpec = None,
    object_root: PathLike | None = None,
    max_samples: int | None = None,
    progress: bool = True,
    *,
    image_root: PathLike | None = None,
    flat_hand_mean: bool = False,
    mask_layout: MaskLayout | None = None,
    object_names: Mapping[str, str | PathLike | ObjectTemplate] | None = None,
    contact_threshold: float = CONTACT_THRESHOLD,
    floor_threshold: float = FLOOR_CONTACT_THRESHOLD,
    up_axis: Sequence[float] = (0.0, -1.0, 0.0),
    pelvis_tolerance: float | None = PELVIS_TOLERANCE,
    batch_size: int = 32,
) -> datasets.Dataset:
    """BEHAVE or InterCap (CONTHO layout) as a ``datasets.Dataset`` with the schema's features.

    Arguments as in :func:`iter_contho_samples`. Pictures and masks are stored as paths and decoded to PIL
    images when a row is read, so the table stays small; ``save_to_disk`` keeps those paths (use
    ``dataset.cast_column`` / ``embed_table_storage`` from ``datasets`` to embed the bytes instead). The table
    has the extra column :data:`ANNOTATED_CONTACT` when the file labels every SMPL-H vertex.

    Raises:
        FileNotFoundError: the JSON file, a picture, a mask or an object mesh is missing (the message names the
            path and the annotation id).
        KeyError: a required key is missing (names the JSON file, the annotation id and the key).
        ValueError: a value has the wrong length or is not finite, an extrinsic ``R`` is not a rotation, or the
            pelvis disagrees with ``h3d_keypoints`` (same details).
    """
    samples = list(
        iter_contho_samples(
            root,
            dataset,
            split,
            body,
            object_root,
            image_root=image_root,
            max_samples=max_samples,
            flat_hand_mean=flat_hand_mean,
            mask_layout=mask_layout,
            object_names=object_names,
            contact_threshold=contact_threshold,
            floor_threshold=floor_threshold,
            up_axis=up_axis,
            pelvis_tolerance=pelvis_tolerance,
            batch_size=batch_size,
            progress=progress,
        )
    )
    features = FEATURES
    if samples and ANNOTATED_CONTACT in samples[0]:
        features = datasets.Features({**FEATURES, ANNOTATED_CONTACT: datasets.Sequence(datasets.Value("float32"))})
    if not samples:
        return datasets.Dataset.from_dict({name: [] for name in features}, features=features)
    return datasets.Dataset.from_list(samples, features=features)


def gendered_bodies(model_path: PathLike, **options) -> dict[str, BodyModel]:
    """The SMPL-H bodies, by gender, that a user's SMPL-H path holds, for the ``body`` argument of the loaders.

    BEHAVE and InterCap were fitted with gendered SMPL-H (CONTHO builds a male, a female and a neutral layer),
    so a folder's ``SMPLH_{GENDER}.npz`` / ``{gender}/model.npz`` files are all loaded; a single ``.npz`` file
    serves every gender as ``"neutral"``. ``options`` go to :class:`BodyModel`.

    Raises:
        FileNotFoundError: no SMPL-H file there.
    """
    path = Path(model_path).expanduser()
    if not path.is_dir():
        return {"neutral": BodyModel(model_path=str(path), **options)}
    bodies = {}
    for gender in GENDERS:
        try:
            resolve_body_file(path, gender)
        except FileNotFoundError:
            continue
        bodies[gender] = BodyModel(model_path=str(path), gender=gender, **options)
    if not bodies:
        resolve_body_file(path, "neutral")  # raises, naming the files looked for
    return bodies


# ---------------------------------------------------------------------- reading


def _resolve_bodies(body: BodySpec) -> dict[str, BodyModel]:
    if body is None:
        logger.warning(
            "No `body` given: using the licence-free stand-in body. BEHAVE/InterCap were fitted with SMPL-H, "
            "so the pelvis position and contacts are only approximate; pass your SMPL-H BodyModel."
        )
        return {"neutral": BodyModel()}
    if isinstance(body, BodyModel):
        return {gender: body for gender in GENDERS}
    if isinstance(body, Mapping):
        unknown = set(body) - set(GENDERS)
        if unknown or not body:
            raise ValueError(f"`body` mapping keys must be among {GENDERS}, got {sorted(body)}.")
        for gender, model in body.items():
            if not isinstance(model, BodyModel):
                raise TypeError(f"`body[{gender!r}]` must be a BodyModel, got {type(model).__name__}.")
        return dict(body)
    raise TypeError(f"`body` must be a BodyModel, a mapping gender -> BodyModel, or None; got {type(body).__name__}.")


def _load_templates(
    records: list[_Record],
    object_root: PathLike | None,
    dataset: str,
    object_names: Mapping[str, str | PathLike | ObjectTemplate] | None,
) -> dict[str, ObjectTemplate]:
    """The template of each object name in the records, in the frame the annotations' poses refer to."""
    templates: dict[str, ObjectTemplate] = {}
    object_names = {} if object_names is None else dict(object_names)
    for name in sorted({record.object_name for record in records}):
        spec = object_names.get(name, name)
        if isinstance(spec, str) and not (Path(spec).suffix or os.sep in spec or "/" in spec):
            templates[name] = load_dataset_object(spec, object_root, dataset)
        else:
            templates[name] = load_object(spec, object_root=object_root)
        if templates[name].num_keypoints != 64:
            raise ValueError(
                f"Object {name!r} has {templates[name].num_keypoints} keypoints; the schema's object_contact needs 64."
            )
    return templates


def _read_records(
    json_path: Path, dataset: str, image_root: Path, mask_layout: MaskLayout, max_samples: int | None
) -> list[_Record]:
    if not json_path.is_file():
        raise FileNotFoundError(
            f"Annotation file {str(json_path)!r} not found. Expected CONTHO's layout: "
            f"{{root}}/{json_path.name} with 'images' and 'annotations'."
        )
    try:
        with open(json_path, encoding="utf-8") as handle:
            content = json.load(handle)
    except json.JSONDecodeError as error:
        raise ValueError(f"Annotation file {str(json_path)!r} is not valid JSON: {error}") from error
    for key in ("images", "annotations"):
        if not isinstance(content, dict) or key not in content:
            raise KeyError(f"Annotation file {str(json_path)!r} lacks the top-level key {key!r}.")

    images = {}
    for index, image in enumerate(content["images"]):
        if "id" not in image:
            raise KeyError(f"{str(json_path)!r}: images[{index}] lacks the key 'id'.")
        images[image["id"]] = image
    annotations = content["annotations"]
    if max_samples is not None:
        annotations = annotations[:max_samples]
    per_image = Counter(annotation.get("image_id") for annotation in annotations)
    return [
        _parse(annotation, index, images, per_image, json_path, dataset, image_root, mask_layout)
        for index, annotation in enumerate(annotations)
    ]


def _parse(
    annotation: dict,
    index: int,
    images: dict,
    per_image: Counter,
    json_path: Path,
    dataset: str,
    image_root: Path,
    mask_layout: MaskLayout,
) -> _Record:
    ann_id = annotation.get("id", f"#{index}")
    where = f"{str(json_path)!r}, annotation id {ann_id}"

    def get(mapping, key, context):
        if not isinstance(mapping, dict) or key not in mapping:
            raise KeyError(f"{where}: {context} lacks the key {key!r}.")
        return mapping[key]

    def numbers(value, length, key, at_least=False):
        try:
            array = np.asarray(value, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{where}: {key!r} must hold numbers ({error}).") from error
        if array.size < length if at_least else array.shape != (length,):
            qualifier = "at least " if at_least else ""
            raise ValueError(f"{where}: {key!r} must have {qualifier}{length} values, got {array.size}.")
        if not np.isfinite(array).all():
            raise ValueError(f"{where}: {key!r} holds NaN or inf.")
        return array

    image_id = get(annotation, "image_id", "the annotation")
    if image_id not in images:
        raise KeyError(f"{where}: image_id {image_id!r} is not among the file's images.")
    image = images[image_id]
    file_name = get(image, "file_name", f"image {image_id}")
    cam = get(image, "cam_param", f"image {image_id}")
    focal = np.asarray(get(cam, "focal", "cam_param"), dtype=np.float64).reshape(-1)
    focal = numbers(np.repeat(focal, 2) if focal.size == 1 else focal, 2, "cam_param.focal")
    princpt = numbers(get(cam, "princpt", "cam_param"), 2, "cam_param.princpt")
    if (focal <= 0).any():
        raise ValueError(f"{where}: 'cam_param.focal' must be positive, got {focal.tolist()}.")
    intrinsics = np.array([[focal[0], 0.0, princpt[0]], [0.0, focal[1], princpt[1]], [0.0, 0.0, 1.0]])
    rotation = None
    if "R" in cam:
        rotation = numbers(cam["R"], 9, "cam_param.R").reshape(3, 3)
        error = np.abs(rotation @ rotation.T - np.eye(3)).max()
        if error > _ROTATION_TOLERANCE or np.linalg.det(rotation) < 0:
            raise ValueError(f"{where}: 'cam_param.R' must be a rotation matrix (orthonormal, det +1).")
    translation = numbers(cam["t"], 3, "cam_param.t") if "t" in cam else np.zeros(3)
    bbox = numbers(get(annotation, "bbox", "the annotation"), 4, "bbox")
    if bbox[2] <= 0 or bbox[3] <= 0:
        raise ValueError(f"{where}: 'bbox' must have positive width and height, got {bbox.tolist()}.")

    smpl = get(annotation, "smpl_param", "the annotation")
    pose = numbers(get(smpl, "pose", "smpl_param"), NUM_POSE_VALUES, "smpl_param.pose")
    betas = numbers(get(smpl, "shape", "smpl_param"), NUM_BETAS, "smpl_param.shape", at_least=True)[:NUM_BETAS]
    trans = numbers(get(smpl, "trans", "smpl_param"), 3, "smpl_param.trans")
    gender = str(smpl.get("gender", "neutral")).lower()
    if gender not in GENDERS:
        raise ValueError(f"{where}: 'smpl_param.gender' must be one of {GENDERS}, got {gender!r}.")

    obj = get(annotation, "obj_param", "the annotation")
    object_pose = numbers(get(obj, "pose", "obj_param"), 3, "obj_param.pose")
    object_trans = numbers(get(obj, "trans", "obj_param"), 3, "obj_param.trans")
    object_name = _object_name(get(obj, "name", "obj_param"), dataset)

    pelvis_keypoint = None
    if annotation.get("h3d_keypoints") is not None:
        pelvis_keypoint = numbers(annotation["h3d_keypoints"], 3, "h3d_keypoints", at_least=True)[:3]
    annotated_contact = None
    if annotation.get("h_contacts") is not None:
        labels = np.asarray(annotation["h_contacts"], dtype=np.float64).reshape(-1)
        if labels.size == SMPLH_NUM_VERTICES:
            annotated_contact = numbers(labels, SMPLH_NUM_VERTICES, "h_contacts")

    image_path = image_root / file_name
    human_mask_path, object_mask_path = mask_layout.mask_paths(image_path)
    for kind, path in (("picture", image_path), ("human mask", human_mask_path), ("object mask", object_mask_path)):
        if not path.is_file():
            raise FileNotFoundError(
                f"{where}: {kind} {str(path)!r} not found; `image_root` (the folder file_name is relative to) "
                f"is {str(image_root)!r}."
            )
    sample_id = str(file_name) if per_image[image_id] == 1 else f"{file_name}#{ann_id}"
    return _Record(
        sample_id=sample_id,
        where=where,
        image_path=image_path,
        human_mask_path=human_mask_path,
        object_mask_path=object_mask_path,
        intrinsics=intrinsics,
        extrinsic_rotation=rotation,
        extrinsic_translation=translation,
        bbox=bbox,
        pose=pose,
        betas=betas,
        trans=trans,
        gender=gender,
        object_name=object_name,
        object_pose=object_pose,
        object_trans=object_trans,
        pelvis_keypoint=pelvis_keypoint,
        annotated_contact=annotated_contact,
    )


def _object_name(name, dataset: str) -> str:
    """InterCap names its objects by number; normalise ``1`` / ``"1"`` to ``"01"``."""
    name = str(name)
    if dataset == "intercap" and name.isdigit() and f"{int(name):02d}" in INTERCAP_OBJECTS:
        return f"{int(name):02d}"
    return name


# ---------------------------------------------------------------------- geometry


def _convert(
    records: list[_Record],
    dataset: str,
    bodies: dict[str, BodyModel],
    templates: dict[str, ObjectTemplate],
    flat_hand_mean: bool,
    contact_threshold: float,
    floor_threshold: float,
    up: torch.Tensor,
    pelvis_tolerance: float | None,
) -> Iterator[dict]:
    """Samples for a chunk of records: one body forward per body model, contacts per object."""
    converted: dict[int, dict] = {}
    groups: dict[int, list[int]] = {}
    for i, record in enumerate(records):
        body = bodies.get(record.gender, bodies.get("neutral"))
        if body is None:
            raise KeyError(
                f"No body model for gender {record.gender!r} (sample {record.sample_id!r}) and no 'neutral' "
                f"fallback; `body` has {sorted(bodies)}."
            )
        groups.setdefault(id(body), []).append(i)
    for indices in groups.values():
        body = bodies.get(records[indices[0]].gender, bodies.get("neutral"))
        batch = [records[i] for i in indices]
        samples = _convert_group(
            batch, dataset, body, templates, flat_hand_mean, contact_threshold, floor_threshold, up, pelvis_tolerance
        )
        converted.update(zip(indices, samples))
    for i in range(len(records)):
        yield converted[i]


@torch.no_grad()
def _convert_group(
    records: list[_Record],
    dataset: str,
    body: BodyModel,
    templates: dict[str, ObjectTemplate],
    flat_hand_mean: bool,
    contact_threshold: float,
    floor_threshold: float,
    up: torch.Tensor,
    pelvis_tolerance: float | None,
) -> list[dict]:
    device = body.downsample_index.device
    dtype = body.smplh.v_template.dtype
    pose = np.stack([record.pose for record in records])
    if flat_hand_mean:
        # smplx (flat_hand_mean=False) adds the mean hand in axis-angle; remove it from the absolute values.
        hands_mean = torch.cat([body.smplh.left_hand_mean, body.smplh.right_hand_mean]).double().cpu().numpy()
        hands = slice(3 * HAND_JOINTS.start, 3 * HAND_JOINTS.stop)  # 3 axis-angle values per joint
        pose[:, hands] = pose[:, hands] - hands_mean
    betas = np.stack([record.betas for record in records])
    trans = np.stack([record.trans for record in records])
    rotated = [i for i, record in enumerate(records) if record.extrinsic_rotation is not None]
    identity = np.eye(3)
    extrinsic_rotation = torch.as_tensor(  # (B, 3, 3) float64
        np.stack([identity if r.extrinsic_rotation is None else r.extrinsic_rotation for r in records])
    )
    extrinsic_translation = torch.as_tensor(np.stack([r.extrinsic_translation for r in records]))  # (B, 3)

    def tensor(array):
        return torch.as_tensor(array, dtype=dtype, device=device)

    # The body is posed in the annotation's frame, then moved rigidly into the camera (x_cam = R x + t).
    pose_t = tensor(pose).reshape(len(records), NUM_JOINTS, 3)  # one axis-angle per SMPL-H joint
    output = body.smplh(
        betas=tensor(betas),
        global_orient=pose_t[:, 0],
        body_pose=pose_t[:, BODY_JOINTS].reshape(len(records), -1),
        left_hand_pose=pose_t[:, LEFT_HAND_JOINTS].reshape(len(records), -1),
        right_hand_pose=pose_t[:, RIGHT_HAND_JOINTS].reshape(len(records), -1),
        transl=tensor(trans),
    )
    rotation_t, translation_t = tensor(extrinsic_rotation), tensor(extrinsic_translation)
    # smplx's transl moves joints and vertices alike, so joint 0 is the pelvis.
    pelvis = torch.einsum("bij,bj->bi", rotation_t, output.joints[:, 0]) + translation_t
    vertices = output.vertices @ rotation_t.transpose(1, 2) + translation_t[:, None]  # (B, V, 3) camera space
    if rotated:  # only there: an axis-angle round trip would perturb the other roots
        root = axis_angle_to_matrix(torch.as_tensor(pose[rotated, :3]))
        pose[rotated, :3] = matrix_to_axis_angle(extrinsic_rotation[rotated] @ root).numpy()
    _check_pelvis(records, pelvis.double().cpu().numpy(), pelvis_tolerance)

    downsampled = vertices.index_select(1, body.downsample_index)
    object_pose = torch.as_tensor(np.stack([r.object_pose for r in records]))
    object_rotation = extrinsic_rotation @ axis_angle_to_matrix(object_pose)
    object_trans = torch.einsum(
        "bij,bj->bi", extrinsic_rotation, torch.as_tensor(np.stack([r.object_trans for r in records]))
    ) + extrinsic_translation
    object_translation = object_trans - pelvis.double().cpu()

    human_contact = torch.zeros(len(records), downsampled.shape[1], dtype=dtype, device=device)
    object_contact = torch.zeros(len(records), 64, dtype=dtype, device=device)
    floor_contact = torch.zeros(len(records), dtype=dtype, device=device)
    up = up.to(device=device, dtype=dtype)
    names = [record.object_name for record in records]
    for name in sorted(set(names)):
        rows = torch.as_tensor([i for i, n in enumerate(names) if n == name], device=device)
        template = templates[name].to(device=device, dtype=dtype)
        rotation = object_rotation[rows.cpu()].to(device=device, dtype=dtype)
        translation = object_trans[rows.cpu()].to(device=device, dtype=dtype)
        sdf = template.signed_distance_posed(downsampled[rows], rotation, translation)
        human_contact[rows] = (sdf < contact_threshold).to(dtype)
        keypoints = template.pose(template.keypoints, rotation, translation)
        nearest = torch.cdist(keypoints, vertices[rows]).amin(dim=-1)
        object_contact[rows] = (nearest < contact_threshold).to(dtype)
        object_low = (template.pose(template.vertices, rotation, translation) @ up).amin(dim=-1)
        lowest = torch.minimum((vertices[rows] @ up).amin(dim=-1), object_low)
        floor_contact[rows] = (object_low - lowest < floor_threshold).to(dtype)

    samples = []
    for i, record in enumerate(records):
        sample = {
            "image": str(record.image_path),
            "human_mask": str(record.human_mask_path),
            "object_mask": str(record.object_mask_path),
            "intrinsics": record.intrinsics.astype(np.float32),
            "bbox": record.bbox.astype(np.float32),
            "pose": pose[i].astype(np.float32),
            "betas": record.betas.astype(np.float32),
            "object_rotation": object_rotation[i].numpy().astype(np.float32),
            "object_translation": object_translation[i].numpy().astype(np.float32),
            "camera_translation": pelvis[i].cpu().numpy().astype(np.float32),
            "human_contact": human_contact[i].cpu().numpy().astype(np.float32),
            "object_contact": object_contact[i].cpu().numpy().astype(np.float32),
            "floor_contact": float(floor_contact[i]),
            "object_name": record.object_name,
            "gender": record.gender,
            "source": dataset,
            "sample_id": record.sample_id,
        }
        if record.annotated_contact is not None:
            sample[ANNOTATED_CONTACT] = record.annotated_contact.astype(np.float32)
        samples.append(sample)
    return samples


def _check_pelvis(records: list[_Record], pelvis: np.ndarray, tolerance: float | None) -> None:
    """Raise when the pelvis implied by ``trans`` is farther than ``tolerance`` from ``h3d_keypoints[0]``."""
    if tolerance is None:
        return
    for record, implied in zip(records, pelvis):
        if record.pelvis_keypoint is None:
            continue
        distance = float(np.linalg.norm(implied - record.pelvis_keypoint))
        if distance > tolerance:
            raise ValueError(
                f"{record.where} (sample {record.sample_id!r}): the pelvis implied by smpl_param.trans is "
                f"{100 * distance:.1f} cm from h3d_keypoints[0] (tolerance {100 * tolerance:.1f} cm); pass the "
                "SMPL-H body of the annotation's gender the data were fitted with, or `pelvis_tolerance=None`."
            )
