"""Rendering a synthetic scene: clothing, object, wall, floor and background colours.

Two appearance styles: the default (plausible clothing colours, plain gradient backgrounds, a key light from
above) and a randomised one (``randomized=True``), meant for training models that must not lean on colour: any
hue for skin, clothes and object, screen-space textures on body and object, cluttered backgrounds, walls and
floors only sometimes, light from any side, and exposure, contrast and colour-cast changes with sensor noise.
The randomised style draws from a second per-sample stream, so the default renders stay as they were.
"""
from __future__ import annotations

import colorsys
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np

from ...objects import ObjectTemplate
from ...rendering import Floor, MeshLayer, render
from ...skeleton import (
    ANKLE,
    COLLAR,
    ELBOW,
    FOOT,
    HAND_JOINTS,
    HEAD,
    HIP,
    KNEE,
    NECK,
    PELVIS,
    SHOULDER,
    SPINE1,
    SPINE2,
    SPINE3,
    WRIST,
)

if TYPE_CHECKING:
    from .generator import SyntheticScenes

# Clothing regions: the body joints whose faces each region takes.
_BODY_PARTS = {
    "skin": [NECK, HEAD, *WRIST, *range(HAND_JOINTS.start, HAND_JOINTS.stop)],
    "shirt": [SPINE1, SPINE2, SPINE3, *COLLAR, *SHOULDER],
    "forearms": [*ELBOW],
    "trousers": [PELVIS, *HIP, *KNEE],
    "shoes": [*ANKLE, *FOOT],
}


def _hsv(h: float, s: float, v: float) -> tuple[float, float, float]:
    return tuple(float(c) for c in colorsys.hsv_to_rgb(h % 1.0, s, v))


def _muted_color(rng: np.random.Generator, low: float, high: float) -> tuple[float, float, float]:
    return _hsv(rng.random(), rng.uniform(0.0, 0.35), rng.uniform(low, high))


def _clothing_colors(rng: np.random.Generator) -> dict[str, tuple[float, float, float]]:
    tone = rng.random()
    skin = tuple(float(a + (b - a) * tone) for a, b in zip((0.95, 0.80, 0.68), (0.35, 0.22, 0.15)))
    shirt = _hsv(rng.random(), rng.uniform(0.15, 0.8), rng.uniform(0.3, 0.95))
    trousers = _hsv(rng.choice([0.6, 0.62, 0.08, 0.3, rng.random()]), rng.uniform(0.0, 0.6), rng.uniform(0.12, 0.6))
    shoes = _hsv(rng.random(), rng.uniform(0.0, 0.3), rng.choice([rng.uniform(0.08, 0.3), rng.uniform(0.75, 0.95)]))
    return {
        "skin": skin,
        "shirt": shirt,
        "forearms": shirt if rng.random() < 0.5 else skin,
        "trousers": trousers,
        "shoes": shoes,
    }


_OBJECT_HUES = {
    "box": [(0.08, 0.45, 0.75)],
    "ball": [(0.06, 0.85, 0.85), (0.0, 0.75, 0.8), (0.6, 0.7, 0.7), (0.15, 0.8, 0.9)],
    "stool": [(0.08, 0.55, 0.6), (0.0, 0.0, 0.25), (0.58, 0.5, 0.6)],
    "chair": [(0.08, 0.55, 0.55), (0.0, 0.0, 0.2), (0.0, 0.0, 0.85)],
    "table": [(0.09, 0.5, 0.65), (0.0, 0.0, 0.9), (0.07, 0.6, 0.4)],
    "stick": [(0.1, 0.45, 0.8), (0.0, 0.0, 0.2), (0.07, 0.6, 0.5)],
    "bag": [(0.6, 0.6, 0.45), (0.0, 0.7, 0.6), (0.3, 0.5, 0.4), (0.0, 0.0, 0.2)],
}


def _object_color(name: str, rng: np.random.Generator) -> tuple[float, float, float]:
    choices = _OBJECT_HUES.get(name, [(rng.random(), 0.6, 0.7)])
    h, s, v = choices[rng.integers(len(choices))]
    saturation = float(np.clip(s + rng.normal(0, 0.08), 0, 1))
    return _hsv(h + rng.normal(0, 0.02), saturation, float(np.clip(v + rng.normal(0, 0.08), 0.05, 1)))


def _floor_colors(rng: np.random.Generator):
    h, s, v = rng.random(), rng.uniform(0.0, 0.4), rng.uniform(0.3, 0.85)
    contrast = rng.uniform(0.03, 0.2)
    return _hsv(h, s, v), _hsv(h, s, float(np.clip(v * (1 - contrast), 0, 1)))


def _gradient(rng: np.random.Generator, size: int) -> np.ndarray:
    """A vertical two-colour gradient background ``(size, size, 3)`` uint8."""
    top = np.array(_muted_color(rng, 0.5, 1.0))
    bottom = np.array(_muted_color(rng, 0.3, 0.9))
    t = np.linspace(0.0, 1.0, size)[:, None, None]
    image = (1 - t) * top + t * bottom
    return np.round(np.broadcast_to(image, (size, size, 3)) * 255).astype(np.uint8)


def _any_color(rng: np.random.Generator) -> tuple[float, float, float]:
    return _hsv(rng.random(), rng.uniform(0.0, 1.0), rng.uniform(0.1, 1.0))


def _smooth_noise(rng: np.random.Generator, size: int, cells: int, channels: int) -> np.ndarray:
    """``(size, size, channels)`` float noise in [0, 1], smooth over ``size / cells`` pixels (bilinear upsampling
    of a ``(cells + 1)²`` random grid)."""
    grid = rng.random((cells + 1, cells + 1, channels))
    position = np.linspace(0.0, cells, size)
    low = np.minimum(position.astype(np.int64), cells - 1)
    frac = (position - low)[:, None]
    rows = grid[low] * (1 - frac[..., None]) + grid[low + 1] * frac[..., None]  # (size, cells + 1, C)
    return rows[:, low] * (1 - frac.T[..., None]) + rows[:, low + 1] * frac.T[..., None]


def _clutter(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random background ``(size, size, 3)`` uint8: coloured smooth noise with random boxes and stripes."""
    image = np.array(_any_color(rng)) * (0.5 + _smooth_noise(rng, size, int(rng.integers(2, 9)), 3))
    for _ in range(int(rng.integers(0, 12))):
        x0, y0 = rng.integers(0, size, 2)
        w, h = rng.integers(size // 16 + 1, size // 2 + 2, 2)
        image[y0: y0 + h, x0: x0 + w] = np.array(_any_color(rng))
    if rng.random() < 0.3:
        period = rng.uniform(4.0, 40.0)
        stripes = (np.sin(np.arange(size) * 2 * np.pi / period + rng.uniform(0, 6.3)) > 0)[None, :, None]
        stripes = stripes if rng.random() < 0.5 else stripes.transpose(1, 0, 2)
        image = np.where(stripes, image, image * rng.uniform(0.3, 0.9))
    return np.round(np.clip(image, 0.0, 1.0) * 255).astype(np.uint8)


def _randomize_picture(image: np.ndarray, human_mask: np.ndarray, object_mask: np.ndarray,
                       rng: np.random.Generator) -> np.ndarray:
    """Textures on body and object, then exposure, contrast, colour cast and sensor noise, on a uint8 picture."""
    size = image.shape[0]
    picture = image.astype(np.float64) / 255.0
    for mask in (human_mask, object_mask):
        strength = rng.uniform(0.0, 0.6)
        texture = 1.0 + strength * (2.0 * _smooth_noise(rng, size, int(rng.integers(4, 33)), 3) - 1.0)
        picture = np.where(mask[..., None], picture * texture, picture)
    gain = rng.uniform(0.6, 1.4) * (1.0 + rng.uniform(-0.15, 0.15, 3))
    gamma = rng.uniform(0.7, 1.4)
    picture = np.clip(picture * gain, 0.0, 1.0) ** gamma
    picture = picture + rng.uniform(0.0, 0.04) * rng.standard_normal(picture.shape)
    return np.round(np.clip(picture, 0.0, 1.0) * 255).astype(np.uint8)


def _body_part_faces(faces: np.ndarray, weights: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Body faces ``(F, 3)`` grouped by clothing region (from the joint that moves each face most, by the skinning
    ``weights (V, 52)``), each as ``(vertex indices used, faces re-indexed into them)``."""
    joint = weights[faces].sum(1).argmax(1)
    part_faces = {}
    for part, joints in _BODY_PARTS.items():
        chosen = faces[np.isin(joint, joints)]
        if len(chosen):
            used, compact = np.unique(chosen, return_inverse=True)
            part_faces[part] = (used, compact.reshape(-1, 3))
    return part_faces


def _render_scene(scenes: SyntheticScenes, k: int, vertices: np.ndarray, template: ObjectTemplate,
                  part_faces: dict[str, tuple[np.ndarray, np.ndarray]], K: np.ndarray, size: int,
                  rng: np.random.Generator, randomized: np.random.Generator | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Render scene ``k`` with appearance drawn from ``rng``: ``(image (size, size, 3) uint8, human mask, object
    mask)``, both masks ``(size, size)`` bool.

    Args:
        scenes: the batch the scene belongs to.
        k: the scene's row in ``scenes``.
        vertices: ``(V, 3)`` its body mesh in camera space.
        template: its object.
        part_faces: :func:`_body_part_faces` of the body.
        K: ``(3, 3)`` intrinsics for ``size`` pixels.
        size: image side in pixels.
        rng: the sample's own appearance stream.
        randomized: the sample's stream of the randomised style (see the module docstring), or None for the
            default style.
    """
    params = scenes.params
    name = scenes.object_names[k]
    rotation = params.object_rotation[k].double().numpy()
    translation = (params.object_translation[k] + params.camera_translation[k]).double().numpy()
    object_vertices = template.vertices.double().numpy() @ rotation.T + translation

    colors = _clothing_colors(rng)
    if randomized is not None:
        colors = {part: _any_color(randomized) for part in colors}
    layers = [
        MeshLayer(vertices[used], faces, colors[part], name=f"human_{part}")
        for part, (used, faces) in part_faces.items()
    ]
    num_body_layers = len(layers)
    object_color = _object_color(name, rng) if randomized is None else _any_color(randomized)
    layers.append(MeshLayer(object_vertices, template.faces.numpy(), object_color, name="object"))

    plane = scenes.floor_plane[k].double().numpy()
    up, offset = plane[:3], plane[3]
    everything = np.concatenate([vertices, object_vertices])
    centre = 0.5 * (everything.min(0) + everything.max(0))
    on_floor = centre - (up @ centre + offset) * up
    toward_camera = -on_floor - (-on_floor @ up) * up
    toward_camera /= max(np.linalg.norm(toward_camera), 1e-9)
    wall_distance = rng.uniform(1.2, 4.0)
    wall = rng.random() < 0.75
    if randomized is not None:
        wall = randomized.random() < 0.4
    if wall:
        across = np.cross(up, toward_camera)
        base = on_floor - wall_distance * toward_camera
        corners = np.array([base - 15 * across, base + 15 * across, base + 15 * across + 6 * up,
                            base - 15 * across + 6 * up])
        wall_color = _muted_color(rng, 0.45, 0.95) if randomized is None else _any_color(randomized)
        layers.append(MeshLayer(corners, np.array([[0, 1, 2], [0, 2, 3]]), wall_color, name="wall"))
    floor_colors = _floor_colors(rng)
    floor = Floor(point=on_floor, normal=up, size=max(10.0, 5.0 * wall_distance + 6.0),
                  tile=float(rng.uniform(0.15, 0.8)), colors=floor_colors, axis=toward_camera)
    light = np.array([rng.uniform(-0.8, 0.8), rng.uniform(-1.0, -0.3), rng.uniform(-1.0, -0.2)])
    background = _gradient(rng, size)
    if randomized is not None:
        floor_colors = (_any_color(randomized), _any_color(randomized))
        floor = replace(floor, colors=floor_colors) if randomized.random() < 0.6 else None
        light = np.array([randomized.uniform(-1, 1), randomized.uniform(-1, 0.3), randomized.uniform(-1, -0.1)])
        background = _clutter(randomized, size)
    result = render(layers, K, (size, size), background=background, light_direction=light, floor=floor)
    human_mask = result.masks[:num_body_layers].any(0)
    object_mask = result.masks[num_body_layers]
    if randomized is None:
        return result.image, human_mask, object_mask
    return _randomize_picture(result.image, human_mask, object_mask, randomized), human_mask, object_mask
