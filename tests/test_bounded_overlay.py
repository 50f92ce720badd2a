"""Overlays of large photos are drawn at a bounded size, in the right place."""
import numpy as np
import trimesh

import scorehoi_diffusers.export as export
from scorehoi_diffusers.camera import resized_intrinsics
from scorehoi_diffusers.rendering import OBJECT_COLOR, MeshLayer

K = np.array([[300.0, 0.0, 150.0], [0.0, 280.0, 90.0], [0.0, 0.0, 1.0]])
HEIGHT, WIDTH = 200, 320


def box_layer() -> list:
    mesh = trimesh.creation.box(extents=(0.5, 0.4, 0.3))
    return [MeshLayer(mesh.vertices + np.array([0.3, -0.1, 3.0]), mesh.faces, color=OBJECT_COLOR, name="box")]


def covered_centroid(drawn: np.ndarray, photo: np.ndarray) -> np.ndarray:
    """``(x, y)`` mean of the pixels the overlay changed, in pixel-centre coordinates."""
    rows, cols = np.nonzero(np.any(drawn != photo, axis=-1))
    return np.array([cols.mean(), rows.mean()])


def test_resized_intrinsics_keeps_pixel_centres():
    point = np.array([0.4, -0.2, 2.5])
    u, v, w = K @ point
    scaled = resized_intrinsics(K, 0.25, 0.5)
    u2, v2, w2 = scaled @ point
    np.testing.assert_allclose([u2 / w2 + 0.5, v2 / w2 + 0.5], [(u / w + 0.5) * 0.25, (v / w + 0.5) * 0.5])


def test_large_photo_overlay_is_downscaled_in_place(monkeypatch):
    photo = np.full((HEIGHT, WIDTH, 3), 40, dtype=np.uint8)
    full = export.bounded_overlay(photo, box_layer(), K)
    assert full.shape == photo.shape  # under the limit: drawn at the photo's own size
    monkeypatch.setattr(export, "OVERLAY_MAX_SIDE", 80)
    small = export.bounded_overlay(photo, box_layer(), K)
    assert small.shape == (50, 80, 3)
    scale = np.array([WIDTH / 80, HEIGHT / 50])
    small_photo = np.full(small.shape, 40, dtype=np.uint8)
    # The silhouette lands where it does at full size (to within a pixel of the small picture).
    centre_small = (covered_centroid(small, small_photo) + 0.5) * scale - 0.5
    assert np.abs(centre_small - covered_centroid(full, photo)).max() < scale.max()
