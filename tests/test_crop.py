import numpy as np
import pytest
import torch
import trimesh

from scorehoi_diffusers.data.crop import (
    CropConfig,
    crop_batch,
    crop_camera,
    crop_sample,
    rotate_scene,
    to_model_input,
)
from scorehoi_diffusers.params import axis_angle_to_matrix
from scorehoi_diffusers.rendering import MeshLayer, render

H, W = 240, 320
# Different fx and fy and an off-centre principal point, so that swapped axes or a rotation about the
# wrong point show up.
K = np.array([[300.0, 0.0, 171.0], [0.0, 320.0, 112.0], [0.0, 0.0, 1.0]])

BODY_MESH = trimesh.creation.box(extents=(0.4, 0.9, 0.25))  # "body", pelvis at its centre
BALL_MESH = trimesh.creation.icosphere(subdivisions=3, radius=0.2)  # "object"


def rotation(vector):
    return axis_angle_to_matrix(torch.tensor(vector, dtype=torch.float64)).numpy()


def scene_points(fields, body_points, object_points):
    """Camera-space body and object points from the schema's parameter fields."""
    root = rotation(np.asarray(fields["pose"][:3], dtype=np.float64))
    pelvis = np.asarray(fields["camera_translation"], dtype=np.float64)
    body = body_points @ root.T + pelvis
    obj = (
        object_points @ np.asarray(fields["object_rotation"], dtype=np.float64).T
        + np.asarray(fields["object_translation"], dtype=np.float64)
        + pelvis
    )
    return body, obj


def project(points, intrinsics):
    uvw = points @ np.asarray(intrinsics, dtype=np.float64).T
    return uvw[:, :2] / uvw[:, 2:]


def bbox_of(points_2d):
    low, high = points_2d.min(axis=0), points_2d.max(axis=0)
    return np.concatenate([low, high - low])


@pytest.fixture(scope="module")
def scene():
    pose = np.zeros(156, dtype=np.float32)
    pose[:3] = [0.1, 0.4, -0.15]
    pose[3:] = np.random.default_rng(0).normal(scale=0.2, size=153)  # carried along untouched
    fields = {
        "pose": pose,
        "betas": np.zeros(10, dtype=np.float32),
        "object_rotation": rotation([0.3, -0.2, 0.5]).astype(np.float32),
        "object_translation": np.array([0.7, 0.1, 0.1], dtype=np.float32),
        "camera_translation": np.array([-0.3, 0.1, 3.0], dtype=np.float32),
    }
    body, obj = scene_points(fields, BODY_MESH.vertices, BALL_MESH.vertices)
    result = render(
        [MeshLayer(body, BODY_MESH.faces, name="body"), MeshLayer(obj, BALL_MESH.faces, name="ball")], K, (H, W)
    )
    assert result.masks[0].sum() > 500 and result.masks[1].sum() > 500
    assert not (result.masks[0] & result.masks[1]).any()
    sample = dict(
        fields,
        image=result.image,
        human_mask=result.masks[0],
        object_mask=result.masks[1],
        intrinsics=K.astype(np.float32),
        bbox=bbox_of(np.concatenate([project(body, K), project(obj, K)])).astype(np.float32),
        human_contact=np.zeros(20, dtype=np.float32),
        object_name="ball",
    )
    # Points inside the solids: they project inside the silhouettes, and (unlike surface samples of a
    # sphere, which crowd at its rim) rarely within half a pixel of a silhouette's edge.
    rng = np.random.default_rng(1)
    body_samples = rng.uniform(-0.5, 0.5, size=(600, 3)) * BODY_MESH.extents
    ball_samples = rng.uniform(-0.2, 0.2, size=(2000, 3))
    ball_samples = ball_samples[np.linalg.norm(ball_samples, axis=1) < 0.19][:600]
    return sample, body_samples, ball_samples


def fraction_on_mask(points_2d, mask):
    pixels = np.round(points_2d).astype(int)
    size = mask.shape[0]
    inside = (pixels >= 0).all(axis=1) & (pixels < size).all(axis=1)
    hits = mask[pixels[inside, 1], pixels[inside, 0]]
    return hits.mean(), inside.mean()


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_augmented_points_land_on_augmented_masks(scene, seed):
    sample, body_points, ball_points = scene
    config = CropConfig(out_size=128, scale_range=0.3, rotation_range=45.0, rotation_prob=1.0, color_jitter=0.2)
    out = crop_sample(sample, config, np.random.default_rng(seed))
    assert abs(np.degrees(np.arccos(np.clip(out["camera_rotation"][0, 0], -1, 1)))) > 1.0  # really rotated
    # Points from the *updated parameters*, projected with the *new intrinsics*.
    body, obj = scene_points(out, body_points, ball_points)
    for points, mask in ((body, out["human_mask"]), (obj, out["object_mask"])):
        on_mask, in_view = fraction_on_mask(project(points, out["intrinsics"]), mask)
        assert in_view > 0.5
        assert on_mask >= 0.95
    # The updated parameters describe the rolled camera: X' = R X for every point.
    body0, obj0 = scene_points(sample, body_points, ball_points)
    R = out["camera_rotation"].astype(np.float64)
    np.testing.assert_allclose(body, body0 @ R.T, atol=1e-5)
    np.testing.assert_allclose(obj, obj0 @ R.T, atol=1e-5)
    np.testing.assert_array_equal(out["pose"][3:], sample["pose"][3:])


def test_rendering_with_the_crop_camera_matches_the_cropped_masks(scene):
    sample, _, _ = scene
    config = CropConfig(out_size=96, rotation_range=40.0, rotation_prob=1.0)
    out = crop_sample(sample, config, np.random.default_rng(3))
    body, obj = scene_points(out, BODY_MESH.vertices, BALL_MESH.vertices)
    direct = render(
        [MeshLayer(body, BODY_MESH.faces, name="body"), MeshLayer(obj, BALL_MESH.faces, name="ball")],
        out["intrinsics"],
        (96, 96),
    )
    for rendered, warped in ((direct.masks[0], out["human_mask"]), (direct.masks[1], out["object_mask"])):
        iou = (rendered & warped).sum() / (rendered | warped).sum()
        assert iou > 0.9


def test_pure_crop_intrinsics_are_exact(scene):
    sample, body_points, ball_points = scene
    config = CropConfig(out_size=128, scale_factor=1.3)
    out = crop_sample(sample, config)
    np.testing.assert_allclose(out["camera_rotation"], np.eye(3))
    body, _ = scene_points(sample, body_points, ball_points)
    before = project(body, K)
    after = project(body, out["intrinsics"])
    x, y, w, h = sample["bbox"].astype(np.float64)
    zoom = 128 / (max(w, h) * 1.3)
    expected = zoom * (before - [x + w / 2, y + h / 2]) + 64 - 0.5
    np.testing.assert_allclose(after, expected, atol=1e-3)
    mapped = np.c_[before, np.ones(len(before))] @ out["crop_matrix"].astype(np.float64).T
    np.testing.assert_allclose(after, mapped[:, :2], atol=1e-3)


def test_picture_follows_the_crop_matrix():
    """A Gaussian blob's intensity centroid lands where crop_matrix sends its centre (up- and downscaling)."""
    yy, xx = np.mgrid[0:H, 0:W]
    for centre, sigma, bbox in (((150.3, 120.7), 1.0, [140, 110, 20, 16]), ((250.2, 180.6), 4.0, [20, 10, 290, 220])):
        blob = np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2))
        image = np.repeat((blob * 255).round().astype(np.uint8)[..., None], 3, axis=-1)
        for generator in (None, np.random.default_rng(5)):
            config = CropConfig(out_size=64, rotation_range=30.0, rotation_prob=1.0)
            out = crop_sample({"image": image, "intrinsics": K, "bbox": bbox}, config, generator)
            picture = out["image"][..., 0].astype(np.float64)
            gy, gx = np.mgrid[0:64, 0:64]
            centroid = np.array([(picture * gx).sum(), (picture * gy).sum()]) / picture.sum()
            target = out["crop_matrix"].astype(np.float64) @ [centre[0], centre[1], 1.0]
            np.testing.assert_allclose(centroid, target[:2] / target[2], atol=0.1)


def test_identity_config_with_generator_equals_plain_crop(scene):
    sample, body_points, ball_points = scene
    plain = crop_sample(sample, CropConfig(out_size=64))
    drawn = crop_sample(sample, CropConfig(out_size=64), np.random.default_rng(7))
    for key in ("image", "human_mask", "object_mask", "intrinsics", "pose", "object_rotation",
                "object_translation", "camera_translation", "bbox"):
        np.testing.assert_array_equal(plain[key], drawn[key])
    np.testing.assert_allclose(plain["pose"], sample["pose"], atol=1e-6)
    body, _ = scene_points(plain, body_points, ball_points)
    original, _ = scene_points(sample, body_points, ball_points)
    np.testing.assert_allclose(body, original, atol=1e-5)
    assert plain["human_contact"] is sample["human_contact"] and plain["object_name"] == "ball"


def test_same_generator_seed_gives_the_same_crop(scene):
    sample, _, _ = scene
    config = CropConfig.training(out_size=64, rotation_prob=1.0)
    first = crop_sample(sample, config, np.random.default_rng(11))
    second = crop_sample(sample, config, np.random.default_rng(11))
    other = crop_sample(sample, config, np.random.default_rng(12))
    for key in ("image", "human_mask", "object_mask", "intrinsics", "pose", "camera_translation"):
        np.testing.assert_array_equal(first[key], second[key])
    assert not np.allclose(first["intrinsics"], other["intrinsics"])


def test_colour_jitter_changes_rgb_only(scene):
    sample, _, _ = scene
    geometry = CropConfig(out_size=64, scale_range=0.2, rotation_range=20.0)
    jitter = CropConfig(out_size=64, scale_range=0.2, rotation_range=20.0, color_jitter=0.3)
    plain = crop_sample(sample, geometry, np.random.default_rng(4))
    jittered = crop_sample(sample, jitter, np.random.default_rng(4))
    np.testing.assert_array_equal(plain["human_mask"], jittered["human_mask"])
    np.testing.assert_array_equal(plain["intrinsics"], jittered["intrinsics"])
    bright = plain["image"].astype(float) > 30
    assert not np.array_equal(plain["image"], jittered["image"])
    ratios = [
        np.median(jittered["image"][..., c][bright[..., c]] / plain["image"][..., c][bright[..., c]]) for c in range(3)
    ]
    assert all(0.7 - 0.02 <= r <= 1.3 + 0.02 for r in ratios) and np.ptp(ratios) > 0.01


def test_rotate_scene_is_batched_and_inverted_by_the_transpose():
    rng = np.random.default_rng(0)
    fields = {
        "pose": rng.normal(scale=0.5, size=(4, 156)).astype(np.float32),
        "object_rotation": rotation(rng.normal(size=(4, 3))).astype(np.float32),
        "object_translation": rng.normal(size=(4, 3)).astype(np.float32),
        "camera_translation": rng.normal(size=(4, 3)).astype(np.float32),
    }
    R = rotation([0.0, 0.0, 0.7])
    there = rotate_scene(fields, R)
    back = rotate_scene(there, R.T)
    np.testing.assert_allclose(rotation(back["pose"][:, :3]), rotation(fields["pose"][:, :3]), atol=1e-5)
    np.testing.assert_array_equal(back["pose"][:, 3:], fields["pose"][:, 3:])
    for key in ("object_rotation", "object_translation", "camera_translation"):
        np.testing.assert_allclose(back[key], fields[key], atol=1e-5)
    np.testing.assert_allclose(there["camera_translation"], fields["camera_translation"] @ R.T, atol=1e-5)


def test_crop_batch_equals_samples_one_by_one(scene):
    sample, _, _ = scene
    other = dict(sample, bbox=sample["bbox"] + np.array([5, -3, 10, 0], dtype=np.float32), object_name="box")
    batch = {key: [sample[key], other[key]] for key in sample}
    config = CropConfig.training(out_size=48)
    batched = crop_batch(batch, config, np.random.default_rng(9))
    generator = np.random.default_rng(9)
    singles = [crop_sample(s, config, generator) for s in (sample, other)]
    assert batched["image"].shape == (2, 48, 48, 3) and batched["object_name"] == ["ball", "box"]
    for i, single in enumerate(singles):
        for key in ("image", "human_mask", "intrinsics", "pose", "camera_translation"):
            np.testing.assert_array_equal(batched[key][i], single[key])
    tensor = to_model_input(batched)
    assert tensor.shape == (2, 5, 48, 48)


def test_to_model_input_channels(scene):
    sample, _, _ = scene
    out = crop_sample(sample, CropConfig(out_size=32))
    tensor = to_model_input(out)
    assert tensor.shape == (5, 32, 32) and tensor.dtype == torch.float32
    np.testing.assert_array_equal(tensor[3].numpy(), out["human_mask"].astype(np.float32))
    np.testing.assert_array_equal(tensor[4].numpy(), out["object_mask"].astype(np.float32))
    expected_red = (out["image"][..., 0] / 255.0 - 0.485) / 0.229
    np.testing.assert_allclose(tensor[0].numpy(), expected_red, atol=1e-5)


def test_masks_accept_pil_uint8_and_float(scene):
    from PIL import Image

    sample, _, _ = scene
    mask = sample["human_mask"]
    reference = crop_sample(sample, CropConfig(out_size=32))["human_mask"]
    as_uint8 = mask.astype(np.uint8) * 255
    for variant in (Image.fromarray(as_uint8), as_uint8, mask.astype(np.float32)):
        cropped = crop_sample(dict(sample, human_mask=variant), CropConfig(out_size=32))
        np.testing.assert_array_equal(cropped["human_mask"], reference)


def test_bad_inputs_raise_clear_errors(scene):
    sample, _, _ = scene
    with pytest.raises(ValueError, match="bbox"):
        crop_sample(dict(sample, bbox=[10, 10, 0, 5]))
    with pytest.raises(ValueError, match="intrinsics"):
        crop_sample(dict(sample, intrinsics=np.eye(4)))
    with pytest.raises(KeyError, match="bbox"):
        crop_sample({k: v for k, v in sample.items() if k != "bbox"})
    with pytest.raises(ValueError, match="rotation_range"):
        CropConfig(rotation_range=-1.0)
    with pytest.raises(TypeError, match="generator"):
        crop_sample(sample, CropConfig(), generator=0)
    camera = crop_camera(K, [10, 20, 30, 40], out_size=16)
    assert camera.crop_matrix.shape == (3, 3)
