"""Detected 2D keypoints in the pipeline: the argument's checks, the camera move into the crop, the front/back
check, the camera-translation refinement, and that runs without keypoints are untouched."""
import numpy as np
import pytest
import torch
from test_pipeline import holding_params, pictures_pipeline

from scorehoi_diffusers import GuidanceConfig
from scorehoi_diffusers.body import blazepose_points
from scorehoi_diffusers.camera import project_points
from scorehoi_diffusers.camera_refinement import MAX_CAMERA_STEP, CameraRefinement
from scorehoi_diffusers.contacts import Contacts
from scorehoi_diffusers.facing import choose_facing, turned_around
from scorehoi_diffusers.guidance import keypoints_2d_term
from scorehoi_diffusers.image_evidence import check_keypoints, keypoint_evidence, keypoints_box_size
from scorehoi_diffusers.objects import load_object
from scorehoi_diffusers.optimization_baseline import GuidanceOptimization
from scorehoi_diffusers.params import axis_angle_to_matrix
from scorehoi_diffusers.skeleton import BLAZEPOSE_FITTED

K = torch.tensor([[300.0, 0, 99.5], [0, 300.0, 119.5], [0, 0, 1]])  # a 200 x 240 picture


def true_keypoints(body, params, intrinsics=K) -> torch.Tensor:
    """``(B, 33, 3)`` noiseless detections of ``params``' body: projected landmarks, visibility 1 where fitted."""
    output = body(params, frame="camera")
    pixels = project_points(blazepose_points(output.joints, output.landmarks),
                            intrinsics.expand(params.batch_size, 3, 3))
    visibility = torch.tensor(BLAZEPOSE_FITTED, dtype=pixels.dtype).expand(params.batch_size, -1)
    return torch.cat([pixels, visibility[..., None]], dim=-1)


def turned_a_bit(batch):
    """Facing the camera, turned 0.4 rad about the vertical and with a bent knee, so front and back differ."""
    params = holding_params(batch)
    params.global_orient[:] = params.global_orient @ axis_angle_to_matrix(torch.tensor([0.0, 0.4, 0.0]))
    params.body_pose[:, 3] = axis_angle_to_matrix(torch.tensor([1.0, 0.0, 0.0]))  # left knee
    return params


@pytest.mark.parametrize(
    "keypoints, match",
    [
        ("file.json", "`keypoints` must be"),
        (np.zeros((17, 3)), r"shape \(33, 3\)"),
        (np.zeros((2, 33, 2)), r"shape \(33, 3\)"),
        (np.full((33, 3), np.nan), "NaN"),
        (np.concatenate([np.zeros((33, 2)), np.full((33, 1), 1.5)], 1), r"visibilities .* \[0, 1\]"),
        (np.array([["a", "b", "c"]] * 33), "numbers"),
    ],
)
def test_bad_keypoints_are_one_line_errors_naming_the_argument(pipe, keypoints, match):
    with pytest.raises((ValueError, TypeError), match=match) as error:
        pipe(initial_params=holding_params(1), intrinsics=K, keypoints=keypoints, object="box", num_cycles=0)
    assert "\n" not in str(error.value)


def test_keypoints_need_a_camera(pipe):
    with pytest.raises(ValueError, match="`keypoints` .* `intrinsics`"):
        pipe(initial_params=holding_params(1), keypoints=np.zeros((33, 3)), object="box", num_cycles=0)


def test_keypoints_for_the_wrong_batch(pipe):
    with pytest.raises(ValueError, match="`keypoints` holds 3 sets"):
        pipe(initial_params=holding_params(2), intrinsics=K, keypoints=np.zeros((3, 33, 3)), object="box",
             num_cycles=0)


def test_check_keypoints_accepts_lists_and_tensors():
    rows = [[10.0, 20.0, 0.5]] * 33
    assert check_keypoints(rows).shape == (1, 33, 3)
    assert check_keypoints(torch.zeros(2, 33, 3)).shape == (2, 33, 3)


def test_keypoints_move_with_the_camera_into_the_crop():
    crop = torch.tensor([[150.0, 0, 20.0], [0, 150.0, -10.0], [0, 0, 1]])
    points = torch.tensor([[[0.1, -0.3, 3.0], [-0.2, 0.4, 2.5]] * 17])[:, :33]
    full = project_points(points, K[None])
    keypoints = torch.cat([full, torch.ones(1, 33, 1)], -1).double()
    evidence = keypoint_evidence(keypoints, K, crop, 1, torch.device("cpu"), torch.float64)
    torch.testing.assert_close(evidence["keypoints_2d"], project_points(points.double(), crop[None].double()))
    fitted = torch.tensor(BLAZEPOSE_FITTED, dtype=torch.float64)
    assert torch.equal(evidence["keypoints_2d_visibility"][0], fitted)


def test_box_size_is_the_larger_side_of_the_visible_landmarks():
    pixels = torch.tensor([[[0.0, 0.0], [10.0, 40.0], [500.0, 500.0]]])
    assert keypoints_box_size(pixels, torch.tensor([[1.0, 1.0, 0.0]])).item() == 40.0
    # Fewer than two visible: every landmark counts; all at one spot: the floor of one pixel.
    assert keypoints_box_size(pixels, torch.tensor([[1.0, 0.0, 0.0]])).item() == 500.0
    assert keypoints_box_size(torch.zeros(1, 3, 2), torch.ones(1, 3)).item() == 1.0


def test_front_back_check_turns_a_body_seen_from_behind(body):
    truth = turned_a_bit(2)
    keypoints = true_keypoints(body, truth)
    evidence = {"intrinsics": K.expand(2, 3, 3), **keypoint_evidence(keypoints.double(), K, K, 2, "cpu",
                                                                     torch.float32)}
    backwards = turned_around(truth)
    start = type(truth).cat([truth[:1], backwards[1:]])  # sample 0 faces the right way, sample 1 does not
    chosen, turned = choose_facing(body, start, evidence)
    assert turned.tolist() == [False, True]
    torch.testing.assert_close(chosen.global_orient, truth.global_orient, atol=1e-6, rtol=0)
    torch.testing.assert_close(chosen.body_pose, truth.body_pose, atol=1e-6, rtol=0)
    _, joints, landmarks = body.skin_subset_landmarks(chosen)
    points = blazepose_points(joints, landmarks) + chosen.camera_translation[:, None]
    losses = keypoints_2d_term(points, evidence["intrinsics"], evidence["keypoints_2d"],
                               evidence["keypoints_2d_visibility"], evidence["keypoints_box_size"], 0.1)
    assert losses.max() < 1e-8


def test_the_twin_is_the_body_reflected_in_depth(body):
    """Same silhouette from the other side: every joint reflected through the pelvis depth (camera z -> -z), with
    left and right swapped, so the image positions under an orthographic view are unchanged."""
    from scorehoi_diffusers.skeleton import MIRRORED_JOINTS

    truth = turned_a_bit(2)
    joints = body(truth).joints  # pelvis frame, camera axes
    twin = body(turned_around(truth)).joints
    reflected = joints[:, list(MIRRORED_JOINTS)] * joints.new_tensor([1.0, 1.0, -1.0])
    torch.testing.assert_close(twin, reflected, atol=5e-3, rtol=0)  # the stand-in body is symmetric to < 5 mm
    back = turned_around(turned_around(truth))
    torch.testing.assert_close(back.body_pose, truth.body_pose, atol=1e-6, rtol=0)


def test_pipeline_starts_from_the_facing_the_keypoints_agree_with(pipe, body):
    truth = turned_a_bit(1)
    keypoints = true_keypoints(body, truth)[0].numpy()
    out = pipe(initial_params=turned_around(truth), intrinsics=K, keypoints=keypoints, object="box", num_cycles=0)
    # The keypoint fit after the check starts at the truth and stays within Adam's jitter of it.
    torch.testing.assert_close(out.initial_params.global_orient, truth.global_orient, atol=5e-3, rtol=0)
    off = GuidanceConfig(keypoints_2d=0.0)  # the keypoint term off: keypoints are not used at all
    kept = pipe(initial_params=turned_around(truth), intrinsics=K, keypoints=keypoints, object="box",
                num_cycles=0, guidance_config=off)
    torch.testing.assert_close(kept.initial_params.global_orient, turned_around(truth).global_orient)


def test_camera_refinement_pulls_a_shifted_camera_back(pipe, body):
    truth = holding_params(1)
    keypoints = true_keypoints(body, truth)
    shifted = holding_params(1)
    shifted.camera_translation[:] += torch.tensor([0.08, -0.05, 0.0])
    template = load_object("box")
    evidence = {"intrinsics": K.expand(1, 3, 3), **keypoint_evidence(keypoints.double(), K, K, 1, "cpu",
                                                                     torch.float32)}
    config = GuidanceConfig(contact=0, penetration=0, floor=0)
    camera = CameraRefinement(shifted.camera_translation, config.camera_step_size)  # the default step
    x0 = pipe.codec.encode(shifted)
    contacts = Contacts(human=torch.zeros(1, body.num_downsampled), object=torch.zeros(1, 64), floor=torch.zeros(1))
    errors = []
    for _ in range(30):
        errors.append((camera.translation - truth.camera_translation).norm().item())
        before = camera.translation
        pipe.guidance_x0_gradient(x0, template, shifted.camera_translation, contacts, evidence, config, camera=camera)
        assert (camera.translation - before).norm() <= MAX_CAMERA_STEP + 1e-6
    assert errors[-1] < 0.5 * errors[0] and all(b <= a + 1e-6 for a, b in zip(errors, errors[1:]))


def test_camera_refinement_ignores_non_finite_gradients_and_clips():
    camera = CameraRefinement(torch.zeros(2, 3), step_size=1.0)
    camera.step(torch.tensor([[float("nan"), 0.0, 0.0], [-10.0, 0.0, 0.0]]))
    assert torch.equal(camera.translation[0], torch.zeros(3))
    torch.testing.assert_close(camera.translation[1], torch.tensor([MAX_CAMERA_STEP, 0.0, 0.0]))
    with pytest.raises(ValueError, match="step_size"):
        CameraRefinement(torch.zeros(1, 3), 0.0)


def test_refinement_with_keypoints_uses_the_term_and_moves_the_camera(pipe, body):
    truth = holding_params(1)
    keypoints = true_keypoints(body, truth)[0]
    shifted = holding_params(1)
    shifted.camera_translation[:] += torch.tensor([0.1, 0.0, 0.0])
    out = pipe(initial_params=shifted, intrinsics=K, keypoints=keypoints, object="box", num_cycles=2)
    assert "keypoints_2d" in out.guidance_term_history
    history = out.guidance_term_history["keypoints_2d"]
    assert torch.isfinite(history).all()
    moved = (out.params.camera_translation - truth.camera_translation).norm()
    assert moved < (shifted.camera_translation - truth.camera_translation).norm()
    without = pipe(initial_params=shifted, object="box", num_cycles=2)
    assert "keypoints_2d" not in without.guidance_term_history
    assert torch.equal(without.params.camera_translation, shifted.camera_translation)


def test_keypoints_with_pictures_and_with_the_baseline(body):
    pipeline, inputs = pictures_pipeline(body)
    keypoints = np.concatenate([np.random.default_rng(0).uniform(30, 100, (33, 2)), np.ones((33, 1))], 1)
    out = pipeline(**inputs, keypoints=keypoints, num_cycles=1)
    assert "keypoints_2d" in out.guidance_term_history and torch.isfinite(out.body_vertices).all()
    baseline = GuidanceOptimization(pipeline)(**inputs, keypoints=keypoints, num_cycles=1)
    assert "keypoints_2d" in baseline.guidance_term_history
    assert torch.isfinite(baseline.body_vertices).all()


def test_aligned_error_ignores_scale_and_shift_but_not_shape():
    from scorehoi_diffusers.facing import aligned_keypoint_error

    keypoints = torch.tensor([[[0.0, 0.0], [10.0, 0.0], [0.0, 20.0], [10.0, 20.0]]])
    visible, box = torch.ones(1, 4), torch.tensor([20.0])
    moved = 0.5 * keypoints + torch.tensor([100.0, -30.0])
    assert aligned_keypoint_error(moved, keypoints, visible, box).item() < 1e-6
    swapped = moved[:, [1, 0, 3, 2]]  # left and right exchanged: a shape change no scale or shift undoes
    assert aligned_keypoint_error(swapped, keypoints, visible, box).item() > 0.2
    hidden = torch.tensor([[1.0, 1.0, 0.0, 0.0]])  # only the two landmarks that agree after a shift count
    shifted_top = torch.cat([keypoints[:, :2] + 5.0, keypoints[:, 2:] + 50.0], dim=1)
    assert aligned_keypoint_error(shifted_top, keypoints, hidden, box).item() < 1e-6
