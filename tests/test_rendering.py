from dataclasses import replace

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image
from scipy.spatial import ConvexHull

from scorehoi_diffusers import rendering
from scorehoi_diffusers.camera import look_at_camera
from scorehoi_diffusers.rendering import (
    BODY_COLOR,
    OBJECT_COLOR,
    Floor,
    MeshLayer,
    export_scene,
    multi_view_figure,
    overlay,
    render,
    render_view,
    save_png,
)

# Non-square frame with different fx and fy, so that swapped axes show up.
H, W = 48, 64
K = np.array([[100.0, 0.0, 31.5], [0.0, 90.0, 23.5], [0.0, 0.0, 1.0]])


def cube(side=1.0, center=(0.0, 0.0, 4.0), rotation=None, name="cube", color=OBJECT_COLOR):
    mesh = trimesh.creation.box(extents=(side, side, side))
    vertices = mesh.vertices if rotation is None else mesh.vertices @ rotation.T
    return MeshLayer(vertices + np.asarray(center), mesh.faces, color=color, name=name)


def pixel_centres(height, width):
    us, vs = np.meshgrid(np.arange(width), np.arange(height))
    return np.stack([us.ravel(), vs.ravel()], axis=1).astype(float)


def test_cube_silhouette_matches_projected_corners():
    rotation = trimesh.transformations.rotation_matrix(0.6, [0.3, 1.0, 0.2])[:3, :3]
    layer = cube(center=(0.4, -0.3, 4.5), rotation=rotation)
    result = render([layer], K, (H, W))

    projected = layer.vertices @ K.T
    projected = projected[:, :2] / projected[:, 2:]
    hull = ConvexHull(projected)
    # Signed distance (pixels) of each pixel centre to the hull: > 0 outside, < 0 inside.
    signed = (pixel_centres(H, W) @ hull.equations[:, :2].T + hull.equations[:, 2]).max(axis=1)
    expected = (signed <= 0).reshape(H, W)
    rendered = result.layer_index == 0

    assert expected.sum() > 200
    wrong = rendered != expected
    assert np.all(np.abs(signed.reshape(H, W)[wrong]) < 1.0), "silhouette off by more than a pixel"
    assert wrong.sum() <= 0.02 * expected.sum()
    np.testing.assert_array_equal(result.masks[0], rendered)
    # Rendered pixels are coloured, the rest stays background.
    background = np.all(result.image == rendering.BACKGROUND_COLOR, axis=-1)
    np.testing.assert_array_equal(background, ~rendered)


def test_depth_and_layer_index_of_axis_aligned_cube():
    result = render([cube(side=1.0, center=(0.0, 0.0, 4.0))], K, (H, W))
    # The front face is at z = 3.5; the depth map holds camera z, so it is flat over the whole face.
    assert result.depth[23, 31] == pytest.approx(3.5, abs=1e-9)
    assert result.depth.dtype == np.float32
    face = result.layer_index == 0
    np.testing.assert_allclose(result.depth[face], 3.5, atol=1e-6)
    assert np.isinf(result.depth[~face]).all()
    assert (result.layer_index[~face] == -1).all()
    # Front face half-width in pixels: fx * 0.5 / 3.5 = 14.29, so columns 18..45 are covered.
    columns = np.flatnonzero(face[23])
    assert (columns.min(), columns.max()) == (18, 45)


@pytest.mark.parametrize("small_first", [True, False])
def test_nearest_layer_wins(small_first):
    big = cube(side=2.0, center=(0.0, 0.0, 6.0), name="big", color=BODY_COLOR)
    small = cube(side=0.5, center=(0.0, 0.0, 3.0), name="small")
    layers = [small, big] if small_first else [big, small]
    result = render(layers, K, (H, W))
    small_index, big_index = (0, 1) if small_first else (1, 0)

    assert result.layer_index[23, 31] == small_index
    assert result.depth[23, 31] == pytest.approx(2.75)
    # The big cube still shows around the small one, and the two masks never overlap.
    assert result.masks[big_index].sum() > result.masks[small_index].sum() > 0
    assert not np.any(result.masks[0] & result.masks[1])
    np.testing.assert_allclose(result.depth[result.masks[big_index]], 5.0, atol=1e-6)


def test_alpha_blends_over_background():
    background = np.full((H, W, 3), 10, dtype=np.uint8)
    opaque = render([cube()], K, (H, W), background=background)
    half = render([replace(cube(), alpha=0.5)], K, (H, W), background=background)
    inside = opaque.layer_index == 0
    np.testing.assert_array_equal(half.layer_index, opaque.layer_index)
    expected = 0.5 * opaque.image[inside].astype(float) + 0.5 * 10
    assert np.abs(half.image[inside].astype(float) - expected).max() <= 1.0
    np.testing.assert_array_equal(half.image[~inside], background[~inside])


def test_overlay_keeps_unrendered_pixels():
    photo = np.random.default_rng(0).integers(0, 256, size=(H, W, 3), dtype=np.uint8)
    layers = [cube(side=0.6, center=(0.5, 0.2, 4.0))]
    result = overlay(photo, layers, K, alpha=0.7)
    hit = render(layers, K, (H, W)).layer_index >= 0

    assert result.shape == photo.shape and result.dtype == np.uint8
    np.testing.assert_array_equal(result[~hit], photo[~hit])
    assert np.any(result[hit] != photo[hit], axis=-1).mean() > 0.9


def test_torch_inputs_match_numpy():
    layer = cube()
    as_torch = MeshLayer(torch.from_numpy(layer.vertices).float(), torch.from_numpy(layer.faces), name="cube")
    a = render([layer], K, (H, W))
    b = render([as_torch], torch.from_numpy(K), (H, W))
    np.testing.assert_array_equal(a.layer_index, b.layer_index)
    np.testing.assert_allclose(a.depth, b.depth, atol=1e-5)


def test_fallback_without_embree_warns_and_agrees(monkeypatch, caplog):
    layers = [cube(side=2.0, center=(0.0, 0.0, 6.0), name="big"), cube(side=0.5, center=(0.2, 0.0, 3.0))]
    size, small_K = (12, 16), np.array([[25.0, 0.0, 7.5], [0.0, 25.0, 5.5], [0.0, 0.0, 1.0]])
    fast = render(layers, small_K, size)
    monkeypatch.setattr(trimesh.ray, "has_embree", False)
    with caplog.at_level("WARNING", logger="scorehoi_diffusers.rendering"):
        slow = render(layers, small_K, size)
    assert any("embreex" in record.getMessage() for record in caplog.records), caplog.text
    np.testing.assert_array_equal(fast.layer_index, slow.layer_index)


@pytest.mark.parametrize("azimuth, elevation", [(0.0, 0.0), (90.0, 10.0), (-135.0, 45.0)])
def test_look_at_camera_centres_the_target(azimuth, elevation):
    center = np.array([0.3, -0.2, 3.0])
    R, t, K_view = look_at_camera(center, 2.5, azimuth, elevation, (H, W))

    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)
    in_view = R @ center + t
    np.testing.assert_allclose(in_view, [0.0, 0.0, 2.5], atol=1e-12)
    pixel = K_view @ in_view
    np.testing.assert_allclose(pixel[:2] / pixel[2], [(W - 1) / 2, (H - 1) / 2], atol=1e-9)


def test_look_at_camera_orientation():
    center = np.array([0.0, 0.0, 3.0])
    # Azimuth 0, elevation 0: the original camera moved back along its axis.
    R, t, _ = look_at_camera(center, 3.0, 0.0, 0.0, (H, W))
    np.testing.assert_allclose(R, np.eye(3), atol=1e-12)
    np.testing.assert_allclose(t, [0.0, 0.0, 0.0], atol=1e-12)
    # Azimuth 90: the camera sits on the original +x side; elevation raises it along up (-y).
    R, t, _ = look_at_camera(center, 3.0, 90.0, 30.0, (H, W))
    eye = -R.T @ t
    np.testing.assert_allclose(eye - center, 3.0 * np.array([np.cos(np.pi / 6), -0.5, 0.0]), atol=1e-12)


def test_render_view_shows_mesh_at_centre_and_floor_below():
    layer = cube(side=0.5, center=(0.3, -0.2, 3.0))
    result = render_view([layer], layer.vertices.mean(axis=0), 3.0, 60.0, 20.0, (H, W))
    assert result.layer_index[H // 2, W // 2] == 0
    rows_with_floor = np.flatnonzero(result.floor_mask.any(axis=1))
    rows_with_mesh = np.flatnonzero(result.masks[0].any(axis=1))
    assert rows_with_floor.size and rows_with_floor.max() > rows_with_mesh.max()
    assert not np.any(result.floor_mask & result.masks[0])
    plain = render_view([layer], layer.vertices.mean(axis=0), 3.0, 60.0, 20.0, (H, W), floor=False)
    assert not plain.floor_mask.any()


def test_rays_cast_in_chunks_give_the_same_picture(monkeypatch):
    mesh = trimesh.creation.icosphere(subdivisions=2, radius=0.4)
    layers = [MeshLayer(mesh.vertices, mesh.faces, color=BODY_COLOR)]
    whole = render_view(layers, np.zeros(3), 2.0, 30.0, 15.0, (64, 64), floor=Floor.below(layers))
    monkeypatch.setattr(rendering, "RAY_CHUNK", 100)  # under two rows of 64 pixels per chunk
    chunked = render_view(layers, np.zeros(3), 2.0, 30.0, 15.0, (64, 64), floor=Floor.below(layers))
    for field in ("image", "depth", "layer_index", "floor_mask"):
        np.testing.assert_array_equal(getattr(chunked, field), getattr(whole, field))
    assert whole.floor_mask.any() and (whole.layer_index == 0).any()


def test_floor_pattern_is_the_same_from_every_view():
    floor = Floor(point=[0.0, 1.0, 3.0], tile=0.5)
    points = floor.point + np.array([[0.1, 0.0, 0.1], [0.6, 0.0, 0.1], [0.1, 0.0, 0.6]])
    R, t, _ = look_at_camera([0.0, 0.0, 3.0], 3.0, 70.0, 25.0, (H, W))
    original, _ = floor.shade_color(points)
    moved, _ = floor.transformed(R, t).shade_color(points @ R.T + t)
    np.testing.assert_allclose(original, moved)
    assert not np.allclose(original[0], original[1])  # neighbouring tiles differ


def test_multi_view_figure_layout():
    photo = np.zeros((60, 80, 3), dtype=np.uint8)
    before = [cube(name="object")]
    after = [cube(center=(0.1, 0.0, 4.0), name="object")]
    size = 48
    full = multi_view_figure(
        [("before refinement", before), ("after refinement", after)], image=photo, intrinsics=K, size=size
    )
    one_row = multi_view_figure([("before", before)], image=photo, intrinsics=K, size=size)
    no_photo = multi_view_figure([("before", before)], views=((0, 10), (90, 10), (180, 10)), size=size)

    assert full.dtype == np.uint8 and full.ndim == 3 and full.shape[2] == 3
    assert full.shape[1] == one_row.shape[1]
    assert full.shape[0] - one_row.shape[0] >= size
    overlay_width = round(80 * size / 60)
    assert full.shape[1] >= overlay_width + 2 * size
    # Swapping the overlay column for a third view changes the width by the tile width difference.
    assert no_photo.shape[1] - one_row.shape[1] == size - overlay_width
    with pytest.raises(ValueError, match="intrinsics"):
        multi_view_figure([("x", before)], image=photo)


def test_export_scene_glb_round_trip(tmp_path):
    body = cube(side=1.0, name="body", color=BODY_COLOR)
    obj = MeshLayer(*(lambda m: (m.vertices, m.faces))(trimesh.creation.icosphere(1)), OBJECT_COLOR, "object")
    path = export_scene(tmp_path / "scene.glb", [body, obj])

    loaded = trimesh.load(path)
    assert isinstance(loaded, trimesh.Scene)
    assert set(loaded.geometry) == {"body", "object"}
    assert len(loaded.geometry["object"].vertices) == len(obj.vertices)
    colors = loaded.geometry["object"].visual.vertex_colors
    np.testing.assert_allclose(colors[0, :3] / 255.0, OBJECT_COLOR, atol=1 / 255)
    for suffix in (".obj", ".ply"):
        reloaded = trimesh.load(export_scene(tmp_path / f"scene{suffix}", [body, obj]), force="mesh")
        assert len(reloaded.faces) == len(body.faces) + len(obj.faces)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scene.glb", "scene.obj", "scene.ply"]


def test_save_png_round_trip(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    path = save_png(tmp_path / "sub" / "a.png", image)
    np.testing.assert_array_equal(np.asarray(Image.open(path)), image)
    assert [p.name for p in path.parent.iterdir()] == ["a.png"]


def test_errors(tmp_path):
    good = cube()
    bad_vertices = good.vertices.copy()
    bad_vertices[3, 1] = np.nan
    with pytest.raises(ValueError, match="'hand'.*NaN"):
        MeshLayer(bad_vertices, good.faces, name="hand")
    with pytest.raises(ValueError, match=r"\(V, 3\)"):
        MeshLayer(good.vertices[:, :2], good.faces)
    with pytest.raises(ValueError, match="empty"):
        MeshLayer(good.vertices, np.zeros((0, 3), dtype=np.int64))
    with pytest.raises(ValueError, match="index vertices"):
        MeshLayer(good.vertices, good.faces + 100)
    with pytest.raises(TypeError, match="integers"):
        MeshLayer(good.vertices, good.faces.astype(float))
    with pytest.raises(ValueError, match="color"):
        MeshLayer(good.vertices, good.faces, color=(1.0, 2.0, 0.0))
    with pytest.raises(ValueError, match="image_size"):
        render([good], K, (0, 10))
    with pytest.raises(ValueError, match="intrinsics"):
        render([good], K[:2], (H, W))
    with pytest.raises(ValueError, match="background"):
        render([good], K, (H, W), background=np.zeros((H + 1, W, 3), dtype=np.uint8))
    with pytest.raises(TypeError, match="uint8"):
        overlay(np.zeros((H, W, 3)), [good], K)
    with pytest.raises(TypeError, match="MeshLayer"):
        render([good.vertices], K, (H, W))
    with pytest.raises(ValueError, match="elevation"):
        look_at_camera([0, 0, 3], 2.0, 0.0, 90.0, (H, W))
    with pytest.raises(ValueError, match=r"\.glb"):
        export_scene(tmp_path / "scene.stl", [good])
    with pytest.raises(ValueError, match="distinct"):
        export_scene(tmp_path / "scene.glb", [good, good])
