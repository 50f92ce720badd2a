"""Square crops around the person and object, with geometric augmentation that stays exact.

Every data source (synthetic scenes, BEHAVE, InterCap) and the pipeline's own input go through the same
crop, so the models always see the same kind of picture: a square around the sample's ``bbox``, side
``max(w, h) * scale_factor``, resized to ``out_size`` pixels.

The crop is modelled as a new pinhole camera, which keeps every projection exact:

* **Crop + resize** is an affine map of pixels, ``q = A p``; the cropped picture is what a camera with
  intrinsics ``K' = A K`` sees. Nothing in 3D changes.
* **In-plane rotation** by ``theta`` is a rotation ``R = R_z(theta)`` of the *camera* about its optical
  axis. The scene's camera-space points become ``X' = R X``, which for the parameters means
  ``global_orient <- R global_orient``, ``object_rotation <- R object_rotation``,
  ``camera_translation <- R camera_translation`` and ``object_translation <- R object_translation``
  (contacts do not change). The picture follows by the homography ``K R K^-1``; because ``R`` keeps ``z``,
  that homography is affine. The crop is then centred on the *rotated* bbox centre, so the picture turns
  about the crop centre and the subject stays centred.

Altogether an original pixel ``p`` goes to the crop pixel ``q = M p`` with ``M = K' R K^-1`` (``crop_matrix``
in the output), and a camera-space point ``X`` of the original scene projects in the crop to
``K' (R X) / z``. On screen, ``theta > 0`` turns the picture clockwise (image ``y`` points down).

Pixel convention (as :mod:`scorehoi_diffusers.rendering` and OpenCV): the centre of pixel ``(u, v)`` is at
integer coordinates ``(u, v)``, so pixel ``(0, 0)`` covers ``[-0.5, 0.5]^2``. ``K`` maps camera space to
these coordinates.

No horizontal flip: mirroring an image is not a rigid motion, so the flipped picture would show a mirrored
body (left and right joints swapped and their rotations reflected; SMPL-H shapes are not exactly
symmetric) holding a mirrored object, which a chiral object template cannot represent. Rather than an
approximate label, the augmentation leaves flipping out.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..camera import project_points
from ..input_checks import check_bbox, check_intrinsics, mask_inside
from ..params import axis_angle_to_matrix, matrix_to_axis_angle

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Random numbers drawn per sample, always all of them, so that the stream a generator yields does not
# depend on which augmentations are switched on: scale, rotation on/off, angle, three colour factors.
_NUM_DRAWS = 6


@dataclass(frozen=True)
class CropConfig:
    """How to crop and augment.

    Args:
        out_size: side of the square output picture, pixels.
        scale_factor: crop side = ``max(bbox w, bbox h) * scale_factor`` (margin around the subject).
        scale_range: random scale: the crop side is further multiplied by ``uniform(1 - r, 1 + r)``.
        rotation_range: random in-plane rotation ``theta ~ uniform(-r, r)`` in degrees (a camera roll,
            see the module docstring).
        rotation_prob: probability that a sample is rotated at all.
        color_jitter: each RGB channel is multiplied by ``uniform(1 - c, 1 + c)``; masks are untouched.

    The defaults do no augmentation; :meth:`training` gives the usual human-mesh-recovery ranges.
    Augmentation also needs a generator (see :func:`crop_sample`); without one the crop is deterministic.
    """

    out_size: int = 256
    scale_factor: float = 1.2
    scale_range: float = 0.0
    rotation_range: float = 0.0
    rotation_prob: float = 1.0
    color_jitter: float = 0.0

    def __post_init__(self) -> None:
        if not isinstance(self.out_size, int) or self.out_size < 1:
            raise ValueError(f"CropConfig.out_size must be a positive integer, got {self.out_size!r}.")
        if not (math.isfinite(self.scale_factor) and self.scale_factor > 0):
            raise ValueError(f"CropConfig.scale_factor must be > 0, got {self.scale_factor!r}.")
        if not 0.0 <= self.scale_range < 1.0:
            raise ValueError(f"CropConfig.scale_range must lie in [0, 1), got {self.scale_range!r}.")
        if not 0.0 <= self.rotation_range <= 180.0:
            raise ValueError(f"CropConfig.rotation_range must lie in [0, 180] degrees, got {self.rotation_range!r}.")
        if not 0.0 <= self.rotation_prob <= 1.0:
            raise ValueError(f"CropConfig.rotation_prob must lie in [0, 1], got {self.rotation_prob!r}.")
        if not 0.0 <= self.color_jitter < 1.0:
            raise ValueError(f"CropConfig.color_jitter must lie in [0, 1), got {self.color_jitter!r}.")

    @classmethod
    def training(cls, **overrides) -> CropConfig:
        """Training augmentation: scale +-25 %, rotation +-30 deg on 60 % of samples, colour +-20 %."""
        values = dict(scale_range=0.25, rotation_range=30.0, rotation_prob=0.6, color_jitter=0.2)
        values.update(overrides)
        return cls(**values)


@dataclass
class CropCamera:
    """The geometry of one crop.

    Attributes:
        crop_matrix: ``(3, 3)`` maps original pixels to crop pixels (homogeneous, affine).
        intrinsics: ``(3, 3)`` pinhole ``K'`` of the crop.
        rotation: ``(3, 3)`` camera rotation applied to the scene, ``X' = rotation @ X``.
    """

    crop_matrix: np.ndarray
    intrinsics: np.ndarray
    rotation: np.ndarray


def crop_camera(
    intrinsics: np.ndarray,
    bbox: Sequence[float],
    out_size: int = 256,
    scale_factor: float = 1.2,
    rotation_degrees: float = 0.0,
) -> CropCamera:
    """The crop camera for a bbox, optionally rolled by ``rotation_degrees`` about the optical axis.

    Args:
        intrinsics: ``(3, 3)`` pinhole ``K`` of the original picture (last row ``0, 0, 1``).
        bbox: ``(4,)`` ``x, y, w, h`` in original pixels; the crop is centred on ``(x + w/2, y + h/2)``.
        out_size: output side in pixels.
        scale_factor: crop side = ``max(w, h) * scale_factor`` original pixels.
        rotation_degrees: camera roll ``theta`` (clockwise on screen for ``theta > 0``).
    """
    K = check_intrinsics(intrinsics)
    x, y, w, h = (float(v) for v in check_bbox(bbox))
    theta = math.radians(float(rotation_degrees))
    cos, sin = math.cos(theta), math.sin(theta)
    rotation = np.array([[cos, -sin, 0.0], [sin, cos, 0.0], [0.0, 0.0, 1.0]])
    # Where the bbox centre moves when the camera rolls; the crop is centred there.
    roll = K @ rotation @ np.linalg.inv(K)
    center = roll @ np.array([x + 0.5 * w, y + 0.5 * h, 1.0])
    center = center[:2] / center[2]
    zoom, offset = crop_zoom_offset(center, np.float64(max(w, h) * scale_factor), out_size)
    affine = np.array([[zoom, 0.0, offset[0]], [0.0, zoom, offset[1]], [0.0, 0.0, 1.0]])
    new_intrinsics = affine @ K
    return CropCamera(crop_matrix=affine @ roll, intrinsics=new_intrinsics, rotation=rotation)


def crop_zoom_offset(center, side, out_size: int):
    """The crop-and-resize map ``q = zoom * p + offset`` of a square of ``side`` pixels centred at ``center``.

    Works on NumPy arrays and torch tensors alike: ``center (..., 2)``, ``side (...)``; returns ``zoom (...)`` and
    ``offset (..., 2)``. The continuous square ``[c - side/2, c + side/2]`` maps onto the output's pixel edges
    ``[-0.5, out_size - 0.5]``.
    """
    zoom = out_size / side
    return zoom, 0.5 * out_size - 0.5 - zoom[..., None] * center


def crop_intrinsics_around(points: torch.Tensor, intrinsics: torch.Tensor, out_size: int,
                           scale_factor: float = 1.2) -> torch.Tensor:
    """Batched crop cameras around camera-space points: what :func:`crop_camera` gives (no roll) for the bounding
    box of the points' projections, for samples that have no picture (and so no masks to take a box from).

    Args:
        points: ``(B, N, 3)`` camera-space points, e.g. the body's vertices and the object's keypoints.
        intrinsics: ``(B, 3, 3)`` pinhole ``K`` of the original camera.
        out_size: side of the crop in pixels.
        scale_factor: crop side = ``max(w, h) * scale_factor`` of the box.

    Returns:
        ``(B, 3, 3)`` intrinsics ``K'`` of the crops.
    """
    pixels = project_points(points, intrinsics)  # (B, N, 2)
    low, high = pixels.amin(dim=1), pixels.amax(dim=1)
    side = (high - low).amax(dim=-1).clamp(min=1e-6) * scale_factor  # (B,)
    zoom, offset = crop_zoom_offset(0.5 * (low + high), side, out_size)
    affine = torch.zeros_like(intrinsics)
    affine[:, 0, 0] = affine[:, 1, 1] = zoom.to(intrinsics.dtype)
    affine[:, :2, 2] = offset.to(intrinsics.dtype)
    affine[:, 2, 2] = 1.0
    return affine @ intrinsics


def rotate_scene(fields: Mapping[str, np.ndarray], rotation: np.ndarray) -> dict:
    """Apply a camera rotation ``X' = rotation @ X`` to the schema's parameter fields.

    Args:
        fields: any of ``pose (..., 156)`` (only the root's axis-angle, the first 3 values, changes),
            ``object_rotation (..., 3, 3)``, ``object_translation (..., 3)``, ``camera_translation (..., 3)``;
            the same leading (batch) dimensions for all. Other keys are ignored.
        rotation: ``(3, 3)`` or ``(..., 3, 3)`` rotation matrices.

    Returns:
        A dict with the given parameter fields rotated, float32. Use ``rotation.T`` to undo.
    """
    rotation = np.asarray(rotation, dtype=np.float64)
    if rotation.shape[-2:] != (3, 3):
        raise ValueError(f"`rotation` must have shape (..., 3, 3), got {rotation.shape}.")
    out = {}
    if "pose" in fields:
        pose = np.array(fields["pose"], dtype=np.float64)
        if pose.shape[-1] != 156:
            raise ValueError(f"Field 'pose' must have 156 values in its last dimension, got {pose.shape}.")
        root = axis_angle_to_matrix(torch.from_numpy(pose[..., :3])).numpy()
        pose[..., :3] = matrix_to_axis_angle(torch.from_numpy(rotation @ root)).numpy()
        out["pose"] = pose.astype(np.float32)
    if "object_rotation" in fields:
        object_rotation = np.asarray(fields["object_rotation"], dtype=np.float64)
        out["object_rotation"] = (rotation @ object_rotation).astype(np.float32)
    for name in ("object_translation", "camera_translation"):
        if name in fields:
            vector = np.asarray(fields[name], dtype=np.float64)
            out[name] = (rotation @ vector[..., None])[..., 0].astype(np.float32)
    return out


def crop_sample(
    sample: Mapping[str, object],
    config: CropConfig = CropConfig(),
    generator: np.random.Generator | None = None,
) -> dict:
    """Crop (and, with a generator, augment) one sample of the schema.

    Args:
        sample: needs ``image`` (PIL image or ``(H, W, 3)`` uint8 array), ``intrinsics (3, 3)`` and
            ``bbox (4,)``; ``human_mask`` / ``object_mask`` and the parameter fields (``pose``,
            ``object_rotation``, ``object_translation``, ``camera_translation``) are transformed when present.
            Masks may be PIL images (converted to grey and thresholded at 128 after the warp, like the datasets'
            JPEG masks) or arrays; 0/1 masks are binary as they are (see
            :func:`~scorehoi_diffusers.input_checks.mask_inside`).
        config: crop size and augmentation ranges.
        generator: draws the augmentation (6 numbers per sample, in a fixed order); ``None`` means no
            augmentation whatever ``config`` says (evaluation crop).

    Returns:
        A copy of ``sample`` with ``image (S, S, 3)`` uint8, ``human_mask`` / ``object_mask (S, S)`` bool,
        ``intrinsics (3, 3)`` the crop's ``K'``, ``bbox (4,)`` the box around the transformed original bbox
        (crop pixels), the parameter fields rotated (float32), and two new keys: ``crop_matrix (3, 3)``
        (original pixel -> crop pixel) and ``camera_rotation (3, 3)`` (the roll ``R`` applied to the scene;
        a prediction in the crop's camera goes back to the original camera with ``R.T``, see
        :func:`rotate_scene`). Other fields (contacts, names) are passed through.
    """
    for key in ("image", "intrinsics", "bbox"):
        if key not in sample:
            raise KeyError(f"crop_sample: the sample lacks the field {key!r}.")
    scale, angle, color = 1.0, 0.0, np.ones(3)
    if generator is not None:
        if not isinstance(generator, np.random.Generator):
            raise TypeError(f"`generator` must be a numpy.random.Generator or None, got {type(generator).__name__}.")
        draws = generator.random(_NUM_DRAWS)
        scale = 1.0 + config.scale_range * (2.0 * draws[0] - 1.0)
        if draws[1] < config.rotation_prob:
            angle = config.rotation_range * (2.0 * draws[2] - 1.0)
        color = 1.0 + config.color_jitter * (2.0 * draws[3:6] - 1.0)

    camera = crop_camera(
        sample["intrinsics"], sample["bbox"], config.out_size, config.scale_factor * scale, angle
    )
    out = dict(sample)
    image = _warp(_as_rgb(sample["image"]), camera.crop_matrix, config.out_size)
    if generator is not None and config.color_jitter > 0:
        image = np.clip(image.astype(np.float32) * color.astype(np.float32), 0, 255).round().astype(np.uint8)
    out["image"] = image
    for key in ("human_mask", "object_mask"):
        if sample.get(key) is not None:
            out[key] = _warp(_as_mask(sample[key], key), camera.crop_matrix, config.out_size) >= 128
    out["intrinsics"] = camera.intrinsics.astype(np.float32)
    out["bbox"] = _transform_bbox(sample["bbox"], camera.crop_matrix)
    out.update(rotate_scene(sample, camera.rotation))
    out["crop_matrix"] = camera.crop_matrix.astype(np.float32)
    out["camera_rotation"] = camera.rotation.astype(np.float32)
    return out


def crop_batch(
    batch: Mapping[str, Sequence],
    config: CropConfig = CropConfig(),
    generator: np.random.Generator | None = None,
) -> dict:
    """:func:`crop_sample` over a column batch (``{field: [value per sample]}``, as ``datasets`` gives).

    The pictures of a batch differ in size, so each one is warped on its own; the outputs, which all have
    the crop's size, are stacked into arrays with a leading batch dimension (strings stay lists). Samples
    draw from ``generator`` in batch order, so a batch equals the same samples cropped one by one.
    """
    keys = list(batch)
    if not keys:
        raise ValueError("`batch` is empty.")
    size = len(batch[keys[0]])
    if any(len(batch[key]) != size for key in keys):
        raise ValueError("Every column of `batch` must have the same length.")
    cropped = [crop_sample({key: batch[key][i] for key in keys}, config, generator) for i in range(size)]
    return {key: _stack([item[key] for item in cropped]) for key in cropped[0]}


def to_model_input(
    cropped: Mapping[str, object],
    mean: Sequence[float] = IMAGENET_MEAN,
    std: Sequence[float] = IMAGENET_STD,
) -> torch.Tensor:
    """The regressor's input: normalised RGB and the two masks as channels.

    Args:
        cropped: output of :func:`crop_sample` (``image (H, W, 3)`` uint8, masks ``(H, W)``) or of
            :func:`crop_batch` (leading batch dimension).
        mean, std: per-channel normalisation of RGB scaled to [0, 1] (ImageNet statistics by default).

    Returns:
        ``(5, H, W)`` float32 (or ``(B, 5, H, W)``): ``(rgb - mean) / std``, human mask, object mask (0 or 1).
    """
    for key in ("image", "human_mask", "object_mask"):
        if key not in cropped:
            raise KeyError(f"to_model_input: the cropped sample lacks {key!r}.")
    image = torch.tensor(np.asarray(cropped["image"]))
    if image.dtype != torch.uint8 or image.shape[-1] != 3 or image.dim() not in (3, 4):
        raise ValueError(f"`image` must be (H, W, 3) or (B, H, W, 3) uint8, got {tuple(image.shape)} {image.dtype}.")
    rgb = image.movedim(-1, -3).float() / 255.0
    mean_t = torch.as_tensor(mean, dtype=torch.float32).reshape(3, 1, 1)
    std_t = torch.as_tensor(std, dtype=torch.float32).reshape(3, 1, 1)
    rgb = (rgb - mean_t) / std_t
    masks = []
    for key in ("human_mask", "object_mask"):
        mask = torch.tensor(np.asarray(cropped[key]))
        if mask.shape != image.shape[:-1]:
            raise ValueError(f"`{key}` must have shape {tuple(image.shape[:-1])}, got {tuple(mask.shape)}.")
        masks.append(mask.float().unsqueeze(-3))
    return torch.cat([rgb] + masks, dim=-3)


def _warp(image: Image.Image | np.ndarray, matrix: np.ndarray, out_size: int) -> np.ndarray:
    """Resample ``image`` (PIL, or a ``(H, W, 3)`` / ``(H, W)`` uint8 array) so that output pixel ``q`` shows input
    point ``matrix^-1 q`` (bilinear, 0 outside).

    Before a strong downscale the needed region is cut out and box-filtered by an integer factor
    (``Image.reduce``), so the output is not aliased; both steps are folded into the matrix exactly. An array is
    cut before it becomes a PIL image, so a large photo is not copied whole.
    """
    width, height = (image.shape[1], image.shape[0]) if isinstance(image, np.ndarray) else image.size
    inverse = np.linalg.inv(matrix)
    corners = np.array([[-0.5, -0.5, 1], [out_size - 0.5, -0.5, 1], [-0.5, out_size - 0.5, 1],
                        [out_size - 0.5, out_size - 0.5, 1]])
    source = corners @ inverse.T
    left, top = np.floor(source[:, :2].min(axis=0)).astype(int) - 2
    right, bottom = np.ceil(source[:, :2].max(axis=0)).astype(int) + 2
    # Keep only the part of the picture the crop can see (the rest would be filled with 0 anyway).
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, width), min(bottom, height)
    if right <= left or bottom <= top:
        rgb = image.ndim == 3 if isinstance(image, np.ndarray) else image.mode == "RGB"
        return np.zeros((out_size, out_size) + ((3,) if rgb else ()), dtype=np.uint8)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(np.ascontiguousarray(image[top:bottom, left:right]))  # uint8: RGB or L
    else:
        image = image.crop((left, top, right, bottom))
    to_source = np.array([[1.0, 0.0, left], [0.0, 1.0, top], [0.0, 0.0, 1.0]])
    factor = int(1.0 / math.sqrt(abs(np.linalg.det(matrix[:2, :2]))))
    if factor >= 2:
        image = image.reduce(factor)
        # Reduced pixel i covers source pixels f*i .. f*i + f - 1; its centre is at f*i + (f - 1)/2.
        shift = 0.5 * (factor - 1)
        to_source = to_source @ np.array([[factor, 0.0, shift], [0.0, factor, shift], [0.0, 0.0, 1.0]])
    # Output pixel -> local input pixel, in PIL's coordinates where pixel centres sit at +0.5.
    half = np.array([[1.0, 0.0, 0.5], [0.0, 1.0, 0.5], [0.0, 0.0, 1.0]])
    pil = half @ np.linalg.inv(to_source) @ inverse @ np.linalg.inv(half)
    warped = image.transform(
        (out_size, out_size), Image.Transform.AFFINE, tuple(pil[:2].ravel()), resample=Image.Resampling.BILINEAR
    )
    return np.asarray(warped)


def _stack(values: list):
    """Stack equal-shaped numeric values into one array; keep anything else (strings, ragged) as a list."""
    if any(isinstance(v, (str, bytes, Image.Image)) or v is None for v in values):
        return values
    arrays = [np.asarray(v) for v in values]
    if arrays[0].dtype.kind not in "biuf" or any(a.shape != arrays[0].shape for a in arrays):
        return values
    return np.stack(arrays)


def _as_rgb(image) -> Image.Image | np.ndarray:
    """A PIL image in RGB, or an ``(H, W, 3)`` uint8 array as it is (:func:`_warp` takes both)."""
    if isinstance(image, Image.Image):
        return image.convert("RGB")
    array = np.asarray(image)
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
        raise ValueError(f"`image` must be a PIL image or an (H, W, 3) uint8 array, got {array.shape} {array.dtype}.")
    return array


def _as_mask(mask, name: str) -> Image.Image | np.ndarray:
    """A mask as a grey PIL image or ``(H, W)`` uint8 array, 255 inside (the rules of
    :func:`~scorehoi_diffusers.input_checks.mask_inside`).

    A grey PIL mask with levels other than 0/1 keeps them, so that the warp interpolates its anti-aliased edges
    before the result is thresholded at 128.
    """
    if isinstance(mask, Image.Image):
        grey = mask.convert("L")
        if grey.getextrema()[1] > 1:
            return grey
        mask = np.asarray(grey)
    array = np.asarray(mask)
    if array.ndim != 2:
        raise ValueError(f"`{name}` must be a PIL image or an (H, W) array, got shape {array.shape}.")
    return np.where(mask_inside(array, name), np.uint8(255), np.uint8(0))


def _transform_bbox(bbox, matrix: np.ndarray) -> np.ndarray:
    x, y, w, h = (float(v) for v in check_bbox(bbox))
    corners = np.array([[x, y, 1], [x + w, y, 1], [x, y + h, 1], [x + w, y + h, 1]]) @ matrix.T
    low, high = corners[:, :2].min(axis=0), corners[:, :2].max(axis=0)
    return np.concatenate([low, high - low]).astype(np.float32)
