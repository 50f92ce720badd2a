"""CPU rendering of body and object meshes: overlays, extra viewpoints, figures and scene export.

One camera ray per pixel is cast into a single scene holding every layer (trimesh ray casting, through
Embree when ``embreex`` is installed: a 256² frame of a 10k-face mesh takes a few tens of milliseconds on
one core). The nearest hit decides the pixel's layer and depth; it is shaded with per-vertex normals
interpolated by barycentric coordinates (flat across sharp creases), a key light, a fill light, a sky/ground
ambient term, a little specular and a rim light, in linear light, then alpha-blended over the background.

Cameras follow OpenCV: the camera sits at the origin looking along +z, x right, y down; pixel ``(u, v)``
has its centre at integer coordinates, so the ray of pixel ``(u, v)`` is ``K⁻¹ [u, v, 1]``. All meshes are
given in that camera space, in metres. "Up" is camera -y unless said otherwise.

Arrays are NumPy; torch tensors are accepted anywhere an array is and are converted.
"""
from __future__ import annotations

import io
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import trimesh
from diffusers.utils import logging
from PIL import Image, ImageDraw, ImageFont

from .atomic_files import atomic_write_bytes
from .camera import CAMERA_UP, look_at_camera, resized_intrinsics
from .input_checks import check_image_size, check_intrinsics, check_unit_vector, to_numpy

logger = logging.get_logger(__name__)

__all__ = [
    "BODY_COLOR",
    "OBJECT_COLOR",
    "OBJECT_COLOR_ALT",
    "BACKGROUND_COLOR",
    "DEFAULT_LIGHT_DIRECTION",
    "MeshLayer",
    "Floor",
    "RenderResult",
    "render",
    "overlay",
    "render_view",
    "multi_view_figure",
    "export_scene",
    "save_png",
]

# sRGB colours, floats in [0, 1].
BODY_COLOR = (0.64, 0.72, 0.84)
OBJECT_COLOR = (0.96, 0.58, 0.24)
OBJECT_COLOR_ALT = (0.16, 0.64, 0.62)
BACKGROUND_COLOR = (250, 250, 250)  # uint8, used when no background image is given

# Direction from the surface towards the key light, camera space: above (-y), left (-x), in front (-z).
DEFAULT_LIGHT_DIRECTION = (-0.4, -0.7, -1.0)

# Corners whose smooth normal is further than this from their face's normal are shaded flat, so a box
# keeps its edges while a sphere or a body stays smooth.
_CREASE_COS = math.cos(math.radians(50.0))
_GAMMA = 2.2
# Most camera rays cast and shaded at once (see `render`).
RAY_CHUNK = 1 << 18

# NumPy arrays, nested sequences or torch tensors (converted with `.detach().cpu().numpy()`).
ArrayLike = np.ndarray | Sequence


# --------------------------------------------------------------------------------------------------
# Scene description
# --------------------------------------------------------------------------------------------------


@dataclass
class MeshLayer:
    """One coloured triangle mesh to render, in camera space.

    Args:
        vertices: `(V, 3)` float vertex positions in metres (NumPy or torch).
        faces: `(F, 3)` integer vertex indices, `F > 0`.
        color: sRGB colour as three floats in [0, 1].
        name: name of the layer; used in error messages and as the geometry name in exported scenes.
        alpha: opacity in [0, 1] when blended over the background.
    """

    vertices: np.ndarray
    faces: np.ndarray
    color: tuple[float, float, float] = BODY_COLOR
    name: str = "mesh"
    alpha: float = 1.0

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"MeshLayer `name` must be a non-empty string, got {self.name!r}.")
        where = f"MeshLayer {self.name!r}"
        vertices = to_numpy(self.vertices)
        if vertices.ndim != 2 or vertices.shape[1] != 3 or len(vertices) == 0:
            raise ValueError(f"{where}: `vertices` must have shape (V, 3) with V > 0, got {vertices.shape}.")
        vertices = vertices.astype(np.float64)
        if not np.isfinite(vertices).all():
            bad = int((~np.isfinite(vertices).all(axis=1)).sum())
            raise ValueError(f"{where}: `vertices` hold NaN or inf in {bad} of {len(vertices)} vertices.")
        faces = to_numpy(self.faces)
        if faces.ndim != 2 or faces.shape[1] != 3:
            raise ValueError(f"{where}: `faces` must have shape (F, 3), got {faces.shape}.")
        if len(faces) == 0:
            raise ValueError(f"{where}: `faces` is empty; a layer needs at least one triangle.")
        if faces.dtype.kind not in "iu":
            raise TypeError(f"{where}: `faces` must hold integers, got dtype {faces.dtype}.")
        if faces.min() < 0 or faces.max() >= len(vertices):
            raise ValueError(
                f"{where}: `faces` index vertices in [{faces.min()}, {faces.max()}] but there are only "
                f"{len(vertices)} vertices."
            )
        color = to_numpy(self.color, np.float64).reshape(-1)
        if color.shape != (3,) or not np.isfinite(color).all() or color.min() < 0 or color.max() > 1:
            raise ValueError(f"{where}: `color` must be three floats in [0, 1], got {self.color!r}.")
        if not 0.0 <= float(self.alpha) <= 1.0:
            raise ValueError(f"{where}: `alpha` must lie in [0, 1], got {self.alpha!r}.")
        self.vertices = vertices
        self.faces = faces.astype(np.int64)
        self.color = tuple(float(c) for c in color)
        self.alpha = float(self.alpha)


@dataclass
class Floor:
    """A square checkerboard ground plane, in camera space, that fades into the background at its rim.

    Args:
        point: `(3,)` centre of the floor square.
        normal: `(3,)` floor normal, pointing to the side the scene stands on (up).
        size: side length of the square in metres.
        tile: side length of one checker tile in metres.
        colors: the two tile colours, sRGB floats in [0, 1].
        axis: `(3,)` direction of the tile rows in the plane; by default the coordinate axis least
            aligned with `normal`, so that the pattern is the same in every view of one scene.
    """

    point: np.ndarray
    normal: np.ndarray = field(default_factory=lambda: CAMERA_UP.copy())
    size: float = 4.0
    tile: float = 0.25
    colors: tuple[tuple[float, float, float], tuple[float, float, float]] = (
        (0.88, 0.88, 0.88),
        (0.74, 0.75, 0.78),
    )
    axis: np.ndarray | None = None

    def __post_init__(self):
        self.point = to_numpy(self.point, np.float64).reshape(-1)
        if self.point.shape != (3,) or not np.isfinite(self.point).all():
            raise ValueError(f"Floor `point` must be a finite 3-vector, got {self.point!r}.")
        self.normal = check_unit_vector(self.normal, "Floor.normal")
        if not (self.size > 0 and self.tile > 0):
            raise ValueError(f"Floor `size` and `tile` must be > 0, got {self.size} and {self.tile}.")
        if self.axis is None:
            axis = np.eye(3)[np.argmin(np.abs(self.normal))]
        else:
            axis = check_unit_vector(self.axis, "Floor.axis")
        axis = axis - axis.dot(self.normal) * self.normal
        self.axis = check_unit_vector(axis, "Floor.axis (it must not be parallel to the normal)")

    @classmethod
    def below(cls, layers: Sequence[MeshLayer], up=CAMERA_UP, **kwargs) -> Floor:
        """A floor under the lowest vertex of `layers` (along `up`), centred below them, sized to them."""
        up = check_unit_vector(up, "up")
        vertices = np.concatenate([layer.vertices for layer in layers])
        center = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
        radius = float(np.linalg.norm(vertices - center, axis=1).max())
        lowest = float((vertices @ up).min())
        size = kwargs.pop("size", max(3.0, 4.0 * radius))
        tile = kwargs.pop("tile", size / 16.0)
        point = center + (lowest - center.dot(up)) * up
        return cls(point=point, normal=up, size=size, tile=tile, **kwargs)

    def transformed(self, rotation, translation) -> Floor:
        """The same floor seen from another camera: `p' = rotation @ p + translation`."""
        rotation = to_numpy(rotation, np.float64)
        translation = to_numpy(translation, np.float64)
        return replace(
            self,
            point=rotation @ self.point + translation,
            normal=rotation @ self.normal,
            axis=rotation @ self.axis,
        )

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """The floor square as two triangles: vertices `(4, 3)`, faces `(2, 3)`."""
        other = np.cross(self.normal, self.axis)
        half = 0.5 * self.size
        corners = [(-1, -1), (1, -1), (1, 1), (-1, 1)]
        vertices = np.array([self.point + half * (a * self.axis + b * other) for a, b in corners])
        return vertices, np.array([[0, 1, 2], [0, 2, 3]], dtype=np.int64)

    def shade_color(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Checker colour `(N, 3)` (sRGB) and opacity `(N,)` of floor points `(N, 3)`."""
        offset = points - self.point
        u = offset @ self.axis
        v = offset @ np.cross(self.normal, self.axis)
        parity = (np.floor(u / self.tile) + np.floor(v / self.tile)).astype(np.int64) % 2
        color = np.asarray(self.colors, dtype=np.float64)[parity]
        # Fade out towards the rim so the square's edge does not cut across the picture.
        radius = np.sqrt(u**2 + v**2) / (0.5 * self.size)
        opacity = 1.0 - _smoothstep(0.55, 1.0, radius)
        return color, opacity


@dataclass
class RenderResult:
    """What `render` returns.

    Attributes:
        image: `(H, W, 3)` uint8 picture.
        depth: `(H, W)` float32 camera-space z (metres) of the nearest mesh surface, inf where no layer is hit.
        layer_index: `(H, W)` int64 index into `layers` of the nearest surface, -1 where none (or the floor)
            is nearest.
        masks: `(L, H, W)` bool, `masks[i] == (layer_index == i)`.
        floor_mask: `(H, W)` bool, where the floor is the nearest surface.
    """

    image: np.ndarray
    depth: np.ndarray
    layer_index: np.ndarray
    masks: np.ndarray
    floor_mask: np.ndarray


# --------------------------------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------------------------------


def _smoothstep(edge0: float, edge1: float, x: np.ndarray) -> np.ndarray:
    x = np.clip((x - edge0) / (edge1 - edge0), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


def _check_image(image, name: str, size: tuple[int, int] | None = None) -> np.ndarray:
    image = to_numpy(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"`{name}` must have shape (H, W, 3), got {image.shape}.")
    if image.dtype != np.uint8:
        raise TypeError(f"`{name}` must be uint8 (0..255), got {image.dtype}; convert it first.")
    if size is not None and image.shape[:2] != tuple(size):
        raise ValueError(f"`{name}` has size {image.shape[:2]} but `image_size` is {tuple(size)}.")
    return image


def _check_layers(layers) -> list:
    layers = list(layers)
    for i, layer in enumerate(layers):
        if not isinstance(layer, MeshLayer):
            raise TypeError(f"`layers[{i}]` must be a MeshLayer, got {type(layer).__name__}.")
    return layers


def _corner_normals(vertices: np.ndarray, faces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Unit face normals `(F, 3)` and per-corner shading normals `(F, 3, 3)` (smooth, flat at creases)."""
    triangles = vertices[faces]
    # Area-weighted face normals, summed onto vertices with one bincount per axis (no Python loop).
    face_normals = np.cross(triangles[:, 1] - triangles[:, 0], triangles[:, 2] - triangles[:, 0])
    vertex_normals = np.stack(
        [
            np.bincount(faces.reshape(-1), weights=np.repeat(face_normals[:, k], 3), minlength=len(vertices))
            for k in range(3)
        ],
        axis=1,
    )
    face_normals = face_normals / np.maximum(np.linalg.norm(face_normals, axis=1, keepdims=True), 1e-20)
    vertex_normals /= np.maximum(np.linalg.norm(vertex_normals, axis=1, keepdims=True), 1e-20)
    corners = vertex_normals[faces]
    smooth = np.einsum("fck,fk->fc", corners, face_normals) > _CREASE_COS
    corners = np.where(smooth[..., None], corners, face_normals[:, None, :])
    return face_normals, corners


def _intersector(mesh: trimesh.Trimesh):
    if trimesh.ray.has_embree:
        from trimesh.ray.ray_pyembree import RayMeshIntersector

        return RayMeshIntersector(mesh)
    logger.warning(
        "embreex is not available: rendering falls back to trimesh's pure-NumPy ray caster, which is "
        "about 100x slower. Install it with `pip install embreex`."
    )
    from trimesh.ray.ray_triangle import RayMeshIntersector

    return RayMeshIntersector(mesh)


def _pixel_window(vertices: np.ndarray, K: np.ndarray, height: int, width: int) -> tuple[int, int, int, int]:
    """Pixel box `(u0, u1, v0, v1)` (inclusive) that can see `vertices`; the whole frame if any is behind."""
    if (vertices[:, 2] <= 1e-6).any():
        return 0, width - 1, 0, height - 1
    projected = (vertices / vertices[:, 2:3]) @ K.T
    low = np.floor(projected[:, :2].min(axis=0)) - 1
    high = np.ceil(projected[:, :2].max(axis=0)) + 1
    u0, v0 = np.maximum(low, 0).astype(int)
    u1, v1 = np.minimum(high, [width - 1, height - 1]).astype(int)
    return u0, u1, v0, v1


def _shade(points, normals, base_srgb, light) -> np.ndarray:
    """Linear-light shading of surface points `(N, 3)` with unit normals facing the camera; sRGB out."""
    base = np.asarray(base_srgb) ** _GAMMA
    view = -points / np.linalg.norm(points, axis=1, keepdims=True)
    n_dot_l = np.clip(normals @ light, 0.0, None)
    # A weak fill from the opposite side and below keeps the shadow side from going flat black.
    fill_dir = np.array([-light[0], 0.3, -0.6])
    fill = np.clip(normals @ (fill_dir / np.linalg.norm(fill_dir)), 0.0, None)
    sky = 0.5 + 0.5 * (normals @ CAMERA_UP)  # 1 facing up, 0 facing down
    ambient = 0.10 + 0.12 * sky
    half = light + view
    half /= np.maximum(np.linalg.norm(half, axis=1, keepdims=True), 1e-12)
    specular = 0.22 * np.clip(np.sum(normals * half, axis=1), 0.0, None) ** 40
    rim = 0.28 * (1.0 - np.clip(np.sum(normals * view, axis=1), 0.0, 1.0)) ** 3
    diffuse = ambient + 0.85 * n_dot_l + 0.22 * fill
    linear = base * diffuse[:, None] + (specular + rim)[:, None] * (0.6 + 0.4 * base)
    return np.clip(linear, 0.0, 1.0) ** (1.0 / _GAMMA)


def render(
    layers: Sequence[MeshLayer],
    intrinsics: ArrayLike,
    image_size: tuple[int, int],
    background: ArrayLike | None = None,
    light_direction: ArrayLike = DEFAULT_LIGHT_DIRECTION,
    floor: Floor | None = None,
) -> RenderResult:
    """Render mesh layers with one camera ray per pixel.

    All layers (and the floor) form one ray-casting scene, so each pixel shows the nearest surface of any
    layer. The surface is blended over `background` with its layer's `alpha` (what lies behind a
    translucent surface is the background, not a farther layer).

    Args:
        layers: meshes in camera space.
        intrinsics: `(3, 3)` pinhole matrix `K`.
        image_size: `(H, W)` in pixels.
        background: `(H, W, 3)` uint8 picture to draw over, or None for a plain light background.
        light_direction: `(3,)` direction from the surface towards the key light, camera space.
        floor: optional checkerboard ground plane (camera space). Meshes cast a shadow on it.

    Returns:
        A `RenderResult` with the picture, depth, nearest-layer index and per-layer masks.
    """
    layers = _check_layers(layers)
    K = check_intrinsics(intrinsics)
    height, width = check_image_size(image_size)
    if background is None:
        image = np.empty((height, width, 3), dtype=np.float64)
        image[:] = np.asarray(BACKGROUND_COLOR, dtype=np.float64) / 255.0
    else:
        image = _check_image(background, "background", (height, width)) / 255.0
    light = check_unit_vector(light_direction, "light_direction")
    if floor is not None and not isinstance(floor, Floor):
        raise TypeError(f"`floor` must be a Floor or None, got {type(floor).__name__}.")

    depth = np.full((height, width), np.inf, dtype=np.float32)
    layer_index = np.full((height, width), -1, dtype=np.int64)
    floor_mask = np.zeros((height, width), dtype=bool)

    # One scene: every layer's faces plus the floor's, each face tagged with its layer (floor = len(layers)).
    parts = [(layer.vertices, layer.faces) for layer in layers]
    if floor is not None:
        parts.append(floor.mesh())
    if parts:
        offsets = np.cumsum([0] + [len(v) for v, _ in parts[:-1]])
        vertices = np.concatenate([v for v, _ in parts])
        faces = np.concatenate([f + o for (_, f), o in zip(parts, offsets)])
        face_layer = np.repeat(np.arange(len(parts)), [len(f) for _, f in parts])

        # Cast rays only through the pixels that can see the scene (a big saving for small overlays), at most
        # RAY_CHUNK at a time: each ray's pixel is computed alone, and a 2048-pixel overlay's arrays for all its
        # rays at once would take most of a gigabyte.
        u0, u1, v0, v1 = _pixel_window(vertices, K, height, width)
        mesh = trimesh.Trimesh(vertices=vertices, faces=faces, process=False, validate=False)
        intersector = _intersector(mesh)
        face_normals, corner_normals = _corner_normals(vertices, faces)
        inverse_K = np.linalg.inv(K)
        rows_per_chunk = max(1, RAY_CHUNK // (u1 - u0 + 1))
        for chunk_v0 in range(v0, v1 + 1, rows_per_chunk):
            chunk_v1 = min(chunk_v0 + rows_per_chunk - 1, v1)
            us, vs = np.meshgrid(np.arange(u0, u1 + 1), np.arange(chunk_v0, chunk_v1 + 1))
            pixels = np.stack([us.ravel(), vs.ravel(), np.ones(us.size)], axis=1)
            # Third row of K is (0, 0, 1), so every direction has z == 1 and the ray parameter is the depth.
            directions = pixels @ inverse_K.T
            hit_face = intersector.intersects_first(np.zeros_like(directions), directions)

            hit = np.flatnonzero(hit_face >= 0)
            hit_face = hit_face[hit]
            # Exact hit point on the triangle's plane (the ray caster works in float32 on a rescaled copy).
            normal = face_normals[hit_face]
            with np.errstate(divide="ignore", invalid="ignore"):
                t = np.sum(normal * vertices[faces[hit_face, 0]], axis=1) / np.sum(normal * directions[hit], axis=1)
            valid = np.isfinite(t) & (t > 0)
            hit, hit_face, normal, t = hit[valid], hit_face[valid], normal[valid], t[valid]
            points = t[:, None] * directions[hit]
            rows, cols = vs.ravel()[hit], us.ravel()[hit]

            # Two-sided lighting: turn every surface towards the viewer.
            facing = np.where(np.sum(normal * points, axis=1) > 0, -1.0, 1.0)[:, None]
            barycentric = trimesh.triangles.points_to_barycentric(vertices[faces[hit_face]], points)
            shading_normal = np.einsum("nc,nck->nk", barycentric, corner_normals[hit_face]) * facing
            shading_normal /= np.maximum(np.linalg.norm(shading_normal, axis=1, keepdims=True), 1e-12)

            owner = face_layer[hit_face]
            on_floor = owner == len(layers)
            colors = np.zeros((len(hit), 3))
            opacity = np.zeros(len(hit))
            if layers:
                layer_colors = np.array([layer.color for layer in layers] + [(0.0, 0.0, 0.0)])
                layer_alpha = np.array([layer.alpha for layer in layers] + [0.0])
                colors = _shade(points, shading_normal, layer_colors[owner], light)
                opacity = layer_alpha[owner]
            if floor is not None and on_floor.any():
                floor_color, floor_opacity = floor.shade_color(points[on_floor])
                floor_normal = normal[on_floor] * facing[on_floor]
                lit = 0.55 + 0.45 * np.clip(floor_normal @ light, 0.0, None)
                # Shadows fall mostly straight down (a light overhead, leaning towards the key light), which
                # shows best where a body or object touches the floor.
                shadow_dir = check_unit_vector(2.0 * floor.normal + light, "shadow direction")
                origins = points[on_floor] + 1e-4 * max(floor.size, 1.0) * floor.normal
                blocked = intersector.intersects_any(origins, np.broadcast_to(shadow_dir, origins.shape))
                lit = lit * np.where(blocked, 0.6, 1.0)
                colors[on_floor] = np.clip(floor_color**_GAMMA * lit[:, None], 0.0, 1.0) ** (1.0 / _GAMMA)
                opacity[on_floor] = floor_opacity

            on_mesh = ~on_floor
            depth[rows[on_mesh], cols[on_mesh]] = t[on_mesh]
            layer_index[rows[on_mesh], cols[on_mesh]] = owner[on_mesh]
            floor_mask[rows[on_floor], cols[on_floor]] = True
            under = image[rows, cols]
            image[rows, cols] = opacity[:, None] * colors + (1.0 - opacity[:, None]) * under

    masks = layer_index[None] == np.arange(len(layers))[:, None, None]
    return RenderResult(
        image=np.round(image * 255.0).astype(np.uint8),
        depth=depth,
        layer_index=layer_index,
        masks=masks,
        floor_mask=floor_mask,
    )


def overlay(image: ArrayLike, layers: Sequence[MeshLayer], intrinsics: ArrayLike, alpha: float = 0.7) -> np.ndarray:
    """Draw `layers` over a photo taken with `intrinsics`; pixels that see no mesh are left unchanged.

    Args:
        image: `(H, W, 3)` uint8 photo.
        layers: meshes in the photo's camera space.
        intrinsics: `(3, 3)` pinhole matrix of the photo.
        alpha: opacity of the meshes over the photo, multiplied by each layer's own `alpha`.

    Returns:
        `(H, W, 3)` uint8.
    """
    image = _check_image(image, "image")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"`alpha` must lie in [0, 1], got {alpha!r}.")
    layers = [replace(layer, alpha=layer.alpha * alpha) for layer in _check_layers(layers)]
    return render(layers, intrinsics, image.shape[:2], background=image).image


def render_view(
    layers: Sequence[MeshLayer],
    center: ArrayLike,
    distance: float,
    azimuth_deg: float,
    elevation_deg: float,
    image_size: tuple[int, int],
    fov_deg: float = 40.0,
    floor: bool | Floor | None = True,
    up: ArrayLike = CAMERA_UP,
    background: ArrayLike | None = None,
    light_direction: ArrayLike = DEFAULT_LIGHT_DIRECTION,
) -> RenderResult:
    """Render camera-space `layers` from a viewpoint orbiting `center` (see `look_at_camera`).

    Args:
        layers, center, distance, azimuth_deg, elevation_deg, image_size, fov_deg, up: as in
            `look_at_camera`.
        floor: True for a checkerboard floor under the lowest vertex (`Floor.below`), a `Floor` in the
            original camera space, or False/None for none.
        background, light_direction: as in `render` (the light is fixed to the new camera).

    Returns:
        The `RenderResult` of the new view.
    """
    layers = _check_layers(layers)
    R, t, K = look_at_camera(center, distance, azimuth_deg, elevation_deg, image_size, fov_deg, up)
    if floor is True:
        floor = Floor.below(layers, up=up) if layers else None
    elif floor is False:
        floor = None
    elif floor is not None and not isinstance(floor, Floor):
        raise TypeError(f"`floor` must be a bool, a Floor or None, got {type(floor).__name__}.")
    moved = [replace(layer, vertices=layer.vertices @ R.T + t) for layer in layers]
    moved_floor = floor.transformed(R, t) if floor is not None else None
    return render(moved, K, image_size, background=background, light_direction=light_direction, floor=moved_floor)


# --------------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------------


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed-size bitmap font
        return ImageFont.load_default()


def _downsample(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Box-filter `image` down to `size = (W, H)`: the anti-aliasing step of supersampled renders."""
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BOX))


def _wrap(draw: ImageDraw.ImageDraw, text: str, font, width: int) -> str:
    lines, line = [], ""
    for word in text.split():
        candidate = f"{line} {word}".strip()
        if line and draw.textlength(candidate, font=font) > width:
            lines.append(line)
            line = word
        else:
            line = candidate
    return "\n".join(lines + [line])


def multi_view_figure(
    rows: Sequence[tuple[str, Sequence[MeshLayer]]],
    image: ArrayLike | None = None,
    intrinsics: ArrayLike | None = None,
    views: Sequence[tuple[float, float]] = ((0.0, 10.0), (90.0, 10.0)),
    size: int = 256,
    floor: bool = True,
    supersample: int = 2,
) -> np.ndarray:
    """A labelled grid: one row per mesh set, columns = overlay on the photo (if given) + extra views.

    All rows share the same viewpoints (centred on the union of every row's meshes), so e.g. "before
    refinement" and "after refinement" can be compared column by column.

    Args:
        rows: `(label, layers)` pairs, layers in the photo's camera space.
        image: optional `(H, W, 3)` uint8 photo; its column is `size` pixels tall.
        intrinsics: `(3, 3)` pinhole matrix of the photo; required with `image`.
        views: `(azimuth_deg, elevation_deg)` of each extra view (see `look_at_camera`).
        size: height of every tile and width of every view tile, in pixels.
        floor: draw a checkerboard floor under the meshes in the extra views.
        supersample: render at this many times the resolution and box-filter down (anti-aliasing).

    Returns:
        `(H, W, 3)` uint8 figure.
    """
    rows = [(str(label), _check_layers(layers)) for label, layers in rows]
    if not rows:
        raise ValueError("`rows` is empty; give at least one (label, layers) pair.")
    if int(size) <= 0 or int(supersample) < 1:
        raise ValueError(f"`size` must be > 0 and `supersample` >= 1, got {size!r} and {supersample!r}.")
    size, supersample = int(size), int(supersample)
    all_layers = [layer for _, layers in rows for layer in layers]
    if not all_layers:
        raise ValueError("every row of `rows` is empty; give at least one MeshLayer.")

    tiles_per_row = [[] for _ in rows]
    titles = []
    if image is not None:
        if intrinsics is None:
            raise ValueError("`intrinsics` is required to overlay meshes on `image`.")
        photo = _check_image(image, "image")
        K = check_intrinsics(intrinsics)
        tile_w = max(1, round(photo.shape[1] * size / photo.shape[0]))
        big_w, big_h = tile_w * supersample, size * supersample
        K_big = resized_intrinsics(K, big_w / photo.shape[1], big_h / photo.shape[0])
        big_photo = np.asarray(Image.fromarray(photo).resize((big_w, big_h), Image.Resampling.BILINEAR))
        for tiles, (_, layers) in zip(tiles_per_row, rows):
            tiles.append(_downsample(overlay(big_photo, layers, K_big), (tile_w, size)))
        titles.append("input + overlay")

    vertices = np.concatenate([layer.vertices for layer in all_layers])
    center = 0.5 * (vertices.min(axis=0) + vertices.max(axis=0))
    radius = max(float(np.linalg.norm(vertices - center, axis=1).max()), 1e-3)
    fov = 40.0
    distance = 1.1 * radius / math.sin(math.radians(0.5 * fov))
    shared_floor = Floor.below(all_layers) if floor else None
    for azimuth, elevation in views:
        for tiles, (_, layers) in zip(tiles_per_row, rows):
            view = render_view(
                layers, center, distance, azimuth, elevation, (size * supersample,) * 2, fov, floor=shared_floor
            )
            tiles.append(_downsample(view.image, (size, size)))
        titles.append(f"azimuth {azimuth:g}°, elevation {elevation:g}°")

    font = _font(max(10, size // 16))
    gap = max(2, size // 64)
    label_w = max(60, size // 2)
    header_h = max(16, size // 10)
    widths = [tile.shape[1] for tile in tiles_per_row[0]]
    canvas_w = label_w + sum(widths) + gap * len(widths)
    canvas_h = header_h + len(rows) * (size + gap)
    canvas = Image.new("RGB", (canvas_w, canvas_h), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    x = label_w
    for width, title in zip(widths, titles):
        draw.text((x + width // 2, header_h // 2), title, fill=(40, 40, 40), font=font, anchor="mm")
        x += width + gap
    for r, ((label, _), tiles) in enumerate(zip(rows, tiles_per_row)):
        y = header_h + r * (size + gap)
        text = _wrap(draw, label, font, label_w - 2 * gap)
        draw.multiline_text(
            (label_w // 2, y + size // 2), text, fill=(40, 40, 40), font=font, anchor="mm", align="center"
        )
        x = label_w
        for tile in tiles:
            canvas.paste(Image.fromarray(tile), (x, y))
            x += tile.shape[1] + gap
    return np.asarray(canvas)


# --------------------------------------------------------------------------------------------------
# Files
# --------------------------------------------------------------------------------------------------


def export_scene(path: str | os.PathLike, layers: Sequence[MeshLayer]) -> Path:
    """Write the layers as one scene, one named, vertex-coloured geometry per layer.

    `.glb` keeps the names (`trimesh.load(path)` gives a Scene whose `geometry` is keyed by them) and
    `.obj` writes one `o <name>` group per layer; `.ply` holds a single mesh, so the layers are merged
    (colours kept, names lost). The file is written atomically.

    Args:
        path: output file ending in `.glb`, `.ply` or `.obj`; missing parent folders are created.
        layers: meshes to export, with distinct names.

    Returns:
        The written path.
    """
    path = Path(path)
    file_type = path.suffix.lower().lstrip(".")
    if file_type not in ("glb", "ply", "obj"):
        raise ValueError(f"`path` must end in .glb, .ply or .obj, got {path.name!r}.")
    layers = _check_layers(layers)
    if not layers:
        raise ValueError("`layers` is empty; there is nothing to export.")
    names = [layer.name for layer in layers]
    if len(set(names)) != len(names):
        raise ValueError(f"layer names must be distinct to export a scene, got {names}.")

    meshes = []
    for layer in layers:
        rgba = np.round(np.array([*layer.color, layer.alpha]) * 255).astype(np.uint8)
        meshes.append(
            trimesh.Trimesh(
                vertices=layer.vertices,
                faces=layer.faces,
                vertex_colors=np.tile(rgba, (len(layer.vertices), 1)),
                process=False,
            )
        )
    if file_type == "ply":
        data = trimesh.util.concatenate(meshes).export(file_type="ply")
    else:
        scene = trimesh.Scene()
        for name, mesh in zip(names, meshes):
            scene.add_geometry(mesh, geom_name=name, node_name=name)
        data = scene.export(file_type=file_type)
    return atomic_write_bytes(path, data.encode("utf-8") if isinstance(data, str) else data)


def save_png(path: str | os.PathLike, image: ArrayLike) -> Path:
    """Save a `(H, W, 3)` uint8 picture as PNG, atomically; missing parent folders are created."""
    image = _check_image(image, "image")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return atomic_write_bytes(Path(path), buffer.getvalue())
