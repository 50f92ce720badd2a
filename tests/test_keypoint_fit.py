"""The keypoint-fitting stage (pipelines/keypoint_fit.py): it moves a start that is off onto the keypoints, keeps
the object with the body, is deterministic and per sample, and refuses bad settings and missing evidence."""
import dataclasses
import math

import pytest
import torch
from test_keypoints import K, true_keypoints, turned_a_bit
from test_pipeline import holding_params

from scorehoi_diffusers import GuidanceConfig
from scorehoi_diffusers.body import blazepose_points
from scorehoi_diffusers.camera import project_points
from scorehoi_diffusers.guidance import mask_distance_transform
from scorehoi_diffusers.image_evidence import keypoint_evidence, mask_evidence
from scorehoi_diffusers.mask_coverage import mask_coverage_loss, sample_mask_pixels
from scorehoi_diffusers.objects import load_object
from scorehoi_diffusers.params import HOIParams, axis_angle_to_matrix
from scorehoi_diffusers.pipelines.keypoint_fit import KeypointFit


def evidence_for(body, truth):
    batch = truth.batch_size
    keypoints = true_keypoints(body, truth).double()
    return {"intrinsics": K.expand(batch, 3, 3), **keypoint_evidence(keypoints, K, K, batch, "cpu", torch.float32)}


def off_start(truth):
    """``truth`` with the root turned, an elbow bent and the camera shifted: a start the keypoints disagree with."""
    start = dataclasses.replace(truth, **{name: getattr(truth, name).clone() for name in
                                          ("global_orient", "body_pose", "camera_translation")})
    start.global_orient[:] = start.global_orient @ axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.25]))
    start.body_pose[:, 17] = axis_angle_to_matrix(torch.tensor([0.0, 0.0, 0.8]))  # right elbow
    start.camera_translation[:] += torch.tensor([0.12, -0.08, 0.3])
    return start


def reprojection(body, params, evidence) -> torch.Tensor:
    """``(B,)`` mean pixel distance of the fitted body points to the keypoints."""
    _, joints, landmarks = body.skin_subset_landmarks(params)
    points = blazepose_points(joints, landmarks) + params.camera_translation[:, None]
    distance = (project_points(points, evidence["intrinsics"]) - evidence["keypoints_2d"]).norm(dim=-1)
    weight = evidence["keypoints_2d_visibility"]
    return (weight * distance).sum(-1) / weight.sum(-1)


def test_the_fit_brings_the_reprojection_error_down(pipe, body):
    truth = turned_a_bit(2)
    evidence = evidence_for(body, truth)
    start = off_start(truth)
    fitted = KeypointFit(steps=60, learning_rate=0.01, prior_weight=0.0)(pipe, start, load_object("box"), evidence,
                                                                         GuidanceConfig())
    before, after = reprojection(body, start, evidence), reprojection(body, fitted, evidence)
    assert (before > 10).all()  # pixels, in a 200 x 240 picture
    assert (after < 0.3 * before).all(), (before, after)
    # The camera moved towards the truth too.
    assert ((fitted.camera_translation - truth.camera_translation).norm(dim=-1)
            < (start.camera_translation - truth.camera_translation).norm(dim=-1)).all()


def test_the_prior_weight_keeps_the_pose_near_the_start(pipe, body):
    truth = turned_a_bit(1)
    evidence = evidence_for(body, truth)
    start = off_start(truth)
    template = load_object("box")
    free = KeypointFit(steps=40, prior_weight=0.0)(pipe, start, template, evidence, GuidanceConfig())
    held = KeypointFit(steps=40, prior_weight=1e4)(pipe, start, template, evidence, GuidanceConfig())
    moved_free = (free.body_pose - start.body_pose).abs().max()
    moved_held = (held.body_pose - start.body_pose).abs().max()
    assert moved_held < 0.2 * moved_free


def arm_far_off(truth):
    """``truth`` with the right shoulder turned 1.5 rad about the vertical: a limb the regressor put far off."""
    start = dataclasses.replace(truth, body_pose=truth.body_pose.clone())
    start.body_pose[:, 16] = truth.body_pose[:, 16] @ axis_angle_to_matrix(torch.tensor([0.0, -1.5, 0.0]))
    return start


def test_the_robust_prior_lets_the_keypoints_move_a_limb_far_off(pipe, body, one_torch_thread):
    """On one thread: on two, this machine's fit also turns the neck by 0.14 rad (README, "Determinism")."""
    truth = turned_a_bit(1)
    evidence = evidence_for(body, truth)
    start = arm_far_off(truth)
    template, moves = load_object("box"), {"steps": 100, "learning_rate": 0.03, "limb_restart_threshold": None}
    held = KeypointFit(**moves, prior_scale=None)(pipe, start, template, evidence, GuidanceConfig())
    freed = KeypointFit(**moves, prior_scale=0.05)(pipe, start, template, evidence, GuidanceConfig())
    before = reprojection(body, start, evidence)
    assert before > 8  # pixels, in a 200 x 240 picture
    # The quadratic prior holds the arm where it started; the robust one lets the keypoints bring it in.
    assert reprojection(body, held, evidence) > 0.8 * before
    assert reprojection(body, freed, evidence) < 0.2 * before
    # The joints off the right arm's chain (collar 13, shoulder 16, elbow 18, wrist 20), which the keypoints agree
    # with, stay put.
    others = [joint for joint in range(21) if joint not in (13, 16, 18, 20)]
    torch.testing.assert_close(freed.body_pose[:, others], start.body_pose[:, others], atol=0.05, rtol=0)


def test_limb_restarts_bring_back_an_arm_the_fit_cannot_reach(pipe, body):
    truth = turned_a_bit(2)
    evidence = evidence_for(body, truth)
    start = arm_far_off(truth)
    start.body_pose[1] = truth.body_pose[1]  # the second sample starts right: nothing to restart
    template = load_object("box")
    plain = KeypointFit(prior_scale=0.1, limb_restart_threshold=None)(pipe, start, template, evidence,
                                                                      GuidanceConfig())
    restarted = KeypointFit(prior_scale=0.1, limb_restart_threshold=0.05)(pipe, start, template, evidence,
                                                                          GuidanceConfig())
    before = reprojection(body, start, evidence)
    assert before[0] > 8 and reprojection(body, plain, evidence)[0] > 0.8 * before[0]
    assert reprojection(body, restarted, evidence)[0] < 0.1 * before[0]
    shoulder_error = (restarted.body_pose[0, 16] - truth.body_pose[0, 16]).norm()
    assert shoulder_error < 0.2 * (start.body_pose[0, 16] - truth.body_pose[0, 16]).norm()
    # A sample with no far-off limb keeps the plain fit, exactly.
    for field in dataclasses.fields(plain):
        assert torch.equal(getattr(restarted, field.name)[1], getattr(plain, field.name)[1]), field.name
    # Restarted alone, the first sample comes out the same as in the batch.
    alone = KeypointFit(prior_scale=0.1, limb_restart_threshold=0.05)(
        pipe, start[0], template, {name: value[:1] for name, value in evidence.items()}, GuidanceConfig())
    torch.testing.assert_close(alone.body_pose, restarted.body_pose[:1], atol=1e-5, rtol=0)


def test_lowest_per_owner_picks_each_owners_first_lowest_and_marks_owners_without_candidates():
    from scorehoi_diffusers.pipelines.keypoint_fit import _lowest_per_owner

    losses = torch.tensor([3.0, 1.0, 1.0, float("nan"), 2.0, float("nan")])
    owner = torch.tensor([0, 0, 0, 2, 2, 3])
    # Owner 0: the first of its two lowest (1); owner 1: none (6 = no candidate); owner 2: NaN counts as worst (4);
    # owner 3: only a NaN, still chosen.
    assert _lowest_per_owner(losses, owner, 4).tolist() == [1, 6, 4, 5]


def test_screened_restarts_agree_with_full_refits_on_a_far_off_arm(pipe, body):
    truth = turned_a_bit(2)
    evidence = evidence_for(body, truth)
    start = arm_far_off(truth)
    template = load_object("box")
    # Screening for 25 steps fails here: the restart lowest after 25 steps is the arm's depth-mirrored twin.
    fits = {steps: KeypointFit(prior_scale=0.1, limb_restart_threshold=0.05, restart_screen_steps=steps)(
        pipe, start, template, evidence, GuidanceConfig()) for steps in (50, 100)}
    before = reprojection(body, start, evidence)
    for fitted in fits.values():
        assert reprojection(body, fitted, evidence)[0] < 0.1 * before[0]
    torch.testing.assert_close(fits[50].body_pose[:, 16], fits[100].body_pose[:, 16], atol=0.05, rtol=0)


def test_limb_restarts_compete_on_the_fits_objective(pipe, body):
    # With the quadratic prior, a quarter turn of the shoulder costs more than the keypoints gain: no turn is kept,
    # the arm stays near where the plain fit left it.
    truth = turned_a_bit(1)
    evidence = evidence_for(body, truth)
    start = arm_far_off(truth)
    template = load_object("box")
    quadratic = {"prior_scale": None, "steps": 30, "learning_rate": 0.01}
    plain = KeypointFit(**quadratic, limb_restart_threshold=None)(pipe, start, template, evidence, GuidanceConfig())
    restarted = KeypointFit(**quadratic, limb_restart_threshold=0.05)(pipe, start, template, evidence,
                                                                      GuidanceConfig())
    torch.testing.assert_close(restarted.body_pose[:, 16], plain.body_pose[:, 16], atol=0.05, rtol=0)


def test_far_off_limbs_needs_two_confident_landmarks_beyond_the_threshold():
    from scorehoi_diffusers.pipelines.limb_restarts import LIMBS, far_off_limbs
    from scorehoi_diffusers.skeleton import BLAZEPOSE_NAMES

    keypoints = torch.zeros(3, 33, 2)
    projected = keypoints.clone()
    visibility = torch.ones(3, 33)
    for name in ("right_elbow", "right_wrist"):
        projected[:, BLAZEPOSE_NAMES.index(name), 0] = 50.0  # a quarter of the 200-pixel box off
    for name in ("right_wrist", "right_pinky", "right_index", "right_thumb"):
        visibility[1, BLAZEPOSE_NAMES.index(name)] = 0.2  # one confident landmark (the elbow) is not enough
    far = far_off_limbs(projected, keypoints, visibility, torch.full((3,), 200.0), threshold=0.05)
    right_arm = [root for root, _ in LIMBS].index("right_shoulder")
    # Samples 0 and 2: two of five landmarks a quarter box off is 0.1 box sizes on average.
    assert far[:, right_arm].tolist() == [True, False, True]
    assert far.sum() == 2


def test_the_robust_prior_is_the_quadratic_one_for_small_deviations(pipe, body):
    pose_start = torch.zeros(2, 22 * 6)
    pose = pose_start + 1e-3 * torch.arange(22 * 6.0).sin()
    quadratic = KeypointFit(prior_scale=None).pose_prior(pose, pose_start)
    torch.testing.assert_close(KeypointFit(prior_scale=1.0).pose_prior(pose, pose_start), quadratic, rtol=1e-4, atol=0)
    # A joint far off costs at most prior_weight * prior_scale^2, whatever its distance.
    far = pose_start.clone()
    far[:, 6 * 17:6 * 18] = 10.0
    robust = KeypointFit(prior_scale=0.1)
    assert (robust.pose_prior(far, pose_start) <= robust.prior_weight * 0.1**2 + 1e-6).all()


def test_the_object_turns_with_the_body(pipe, body):
    truth = turned_a_bit(1)
    evidence = evidence_for(body, truth)
    start = off_start(truth)
    fitted = KeypointFit(steps=30)(pipe, start, load_object("box"), evidence, GuidanceConfig())
    # The object's pose in the body's root frame is unchanged.
    root_before, root_after = start.global_orient.transpose(-1, -2), fitted.global_orient.transpose(-1, -2)
    torch.testing.assert_close(root_after @ fitted.object_rotation, root_before @ start.object_rotation,
                               atol=1e-5, rtol=0)
    torch.testing.assert_close((root_after @ fitted.object_translation[..., None])[..., 0],
                               (root_before @ start.object_translation[..., None])[..., 0], atol=1e-5, rtol=0)
    # Hands and the diffusion vector's other entries are left alone.
    torch.testing.assert_close(fitted.left_hand_pose, start.left_hand_pose)


def test_deterministic_and_per_sample(pipe, body):
    truth = turned_a_bit(2)
    evidence = evidence_for(body, truth)
    start = off_start(truth)
    template, fit = load_object("box"), KeypointFit(steps=20)
    first = fit(pipe, start, template, evidence, GuidanceConfig())
    again = fit(pipe, start, template, evidence, GuidanceConfig())
    for field in dataclasses.fields(first):
        assert torch.equal(getattr(first, field.name), getattr(again, field.name)), field.name
    alone = fit(pipe, start[1], template, {name: value[1:] for name, value in evidence.items()}, GuidanceConfig())
    torch.testing.assert_close(alone.global_orient, first.global_orient[1:], atol=1e-5, rtol=0)
    torch.testing.assert_close(alone.camera_translation, first.camera_translation[1:], atol=1e-5, rtol=0)


def test_a_sample_with_a_non_finite_start_keeps_it(pipe, body):
    truth = turned_a_bit(2)
    evidence = evidence_for(body, truth)
    start = off_start(truth)
    start.camera_translation[1, 2] = float("nan")
    fitted = KeypointFit(steps=10)(pipe, start, load_object("box"), evidence, GuidanceConfig())
    assert torch.isfinite(fitted.camera_translation[0]).all()
    assert not torch.equal(fitted.camera_translation[0], start.camera_translation[0])
    torch.testing.assert_close(fitted.body_pose[1], start.body_pose[1], atol=1e-6, rtol=0)


def test_zero_steps_is_the_front_back_check_alone(pipe, body):
    from scorehoi_diffusers.facing import choose_facing, turned_around

    truth = turned_a_bit(1)
    evidence = evidence_for(body, truth)
    backwards = turned_around(truth)
    kept = KeypointFit(steps=0)(pipe, backwards, load_object("box"), evidence, GuidanceConfig())
    expected, _ = choose_facing(body, backwards, evidence)
    for field in dataclasses.fields(kept):
        assert torch.equal(getattr(kept, field.name), getattr(expected, field.name)), field.name


def test_the_pipeline_runs_its_fit_only_with_keypoints(pipe, body):
    truth = turned_a_bit(1)
    keypoints = true_keypoints(body, truth)[0]
    start = off_start(truth)
    pipe.keypoint_fit = KeypointFit(steps=40)
    try:
        fitted = pipe(initial_params=start, intrinsics=K, keypoints=keypoints, object="box", num_cycles=0)
        plain = pipe(initial_params=start, intrinsics=K, object="box", num_cycles=0)
    finally:
        del pipe.keypoint_fit  # back to the class default
    evidence = evidence_for(body, truth)
    assert reprojection(body, fitted.params, evidence) < 0.5 * reprojection(body, start, evidence)
    assert torch.equal(plain.params.body_pose, start.body_pose)


@pytest.mark.parametrize(
    "settings, match",
    [
        ({"steps": -1}, "KeypointFit.steps"),
        ({"steps": 2.5}, "KeypointFit.steps"),
        ({"learning_rate": 0.0}, "KeypointFit.learning_rate"),
        ({"prior_weight": -1.0}, "KeypointFit.prior_weight"),
        ({"sigma": float("nan")}, "KeypointFit.sigma"),
        ({"prior_scale": 0.0}, "KeypointFit.prior_scale"),
        ({"prior_scale": float("inf")}, "KeypointFit.prior_scale"),
        ({"limb_restart_threshold": -0.1}, "KeypointFit.limb_restart_threshold"),
        ({"facing_restart_margin": 0.0}, "KeypointFit.facing_restart_margin"),
        ({"facing_restart_margin": float("nan")}, "KeypointFit.facing_restart_margin"),
        ({"facing_restart_margin": True}, "KeypointFit.facing_restart_margin"),
    ],
)
def test_bad_settings_are_one_line_errors(settings, match):
    with pytest.raises(ValueError, match=match) as error:
        KeypointFit(**settings)
    assert "\n" not in str(error.value)


def test_missing_keypoint_evidence_is_a_clear_error(pipe):
    with pytest.raises(ValueError, match="lacks .*keypoints_2d") as error:
        KeypointFit(steps=5)(pipe, holding_params(1), load_object("box"), {"intrinsics": K[None]}, GuidanceConfig())
    assert "\n" not in str(error.value)


# ----------------------------------------------------------------------------------------------------------
# Shape fit and mask coverage


def coat_mask(body, truth, widen: float = 0.2) -> torch.Tensor:
    """``(B, 240, 200)`` person masks: the box around the projected body, ``widen`` times its width wider on each
    side (a long coat): the body lies inside it but fills only a part of it."""
    pixels = project_points(body(truth, frame="camera").vertices, K.expand(truth.batch_size, 3, 3))
    low, high = pixels.amin(1), pixels.amax(1)  # (B, 2)
    margin = torch.stack([widen * (high[:, 0] - low[:, 0]), torch.zeros_like(low[:, 0])], dim=-1)
    low, high = low - margin, high + margin
    v, u = torch.meshgrid(torch.arange(240.0), torch.arange(200.0), indexing="ij")
    grid = torch.stack([u, v], dim=-1)  # (240, 200, 2)
    return ((grid >= low[:, None, None]) & (grid <= high[:, None, None])).all(-1)


def coverage_of(pipe, params, evidence) -> torch.Tensor:
    """``(B,)`` the coverage loss of ``params``' body points against the evidence's person mask."""
    body_points = pipe.body_model.skin_subset(params)[0] + params.camera_translation[:, None]
    pixels = sample_mask_pixels(evidence["human_distance_map"], 256)
    return mask_coverage_loss(body_points, evidence["intrinsics"], pixels, math.hypot(240, 200))


def test_coverage_fills_a_mask_the_inside_term_cannot(pipe, body):
    truth = turned_a_bit(2)
    evidence = evidence_for(body, truth)
    evidence |= mask_evidence(K, coat_mask(body, truth), None, 2, "cpu", torch.float32)
    config = GuidanceConfig(mask=10.0)
    template = load_object("box")
    inside_only = KeypointFit(steps=40, fit_shape=True, coverage=0.0)(pipe, truth, template, evidence, config)
    filling = KeypointFit(steps=40, fit_shape=True, coverage=300.0)(pipe, truth, template, evidence, config)
    # The truth's points lie inside the mask and on the keypoints: without coverage nothing makes the body wider.
    start = coverage_of(pipe, truth, evidence)
    assert (coverage_of(pipe, inside_only, evidence) > 0.99 * start).all()
    assert (coverage_of(pipe, filling, evidence) < 0.9 * start).all()
    assert not torch.equal(filling.betas, truth.betas)  # the shape moved too


def test_the_shape_prior_keeps_the_betas_near_the_start(pipe, body):
    truth = turned_a_bit(1)
    evidence = evidence_for(body, truth)
    evidence |= mask_evidence(K, coat_mask(body, truth), None, 1, "cpu", torch.float32)
    start, template, config = off_start(truth), load_object("box"), GuidanceConfig(mask=10.0)
    fixed = KeypointFit(steps=30, coverage=30.0, fit_shape=False)(pipe, start, template, evidence, config)
    free = KeypointFit(steps=30, coverage=30.0, fit_shape=True, shape_prior_weight=0.0)(
        pipe, start, template, evidence, config)
    held = KeypointFit(steps=30, coverage=30.0, fit_shape=True, shape_prior_weight=1e4)(
        pipe, start, template, evidence, config)
    assert torch.equal(fixed.betas, start.betas)
    moved_free, moved_held = (free.betas - start.betas).abs().max(), (held.betas - start.betas).abs().max()
    assert moved_free > 0.05
    assert moved_held < 0.2 * moved_free


@pytest.mark.parametrize(
    "settings, error, match",
    [
        ({"coverage_samples": 0}, ValueError, "KeypointFit.coverage_samples"),
        ({"coverage_samples": 1.5}, ValueError, "KeypointFit.coverage_samples"),
        ({"coverage": -1.0}, ValueError, "KeypointFit.coverage"),
        ({"shape_prior_weight": float("inf")}, ValueError, "KeypointFit.shape_prior_weight"),
        ({"fit_shape": "yes"}, TypeError, "KeypointFit.fit_shape"),
    ],
)
def test_bad_shape_and_coverage_settings_are_one_line_errors(settings, error, match):
    with pytest.raises(error, match=match) as raised:
        KeypointFit(**settings)
    assert "\n" not in str(raised.value)


def test_the_pipeline_fits_the_shape_to_the_person_mask_it_is_given(pipe, body):
    truth = turned_a_bit(1)
    keypoints = true_keypoints(body, truth)[0]
    mask = coat_mask(body, truth)[0].numpy()
    config = GuidanceConfig(mask=10.0)
    arguments = dict(initial_params=truth, intrinsics=K, keypoints=keypoints, human_mask=mask, object="box",
                     num_cycles=0, guidance_config=config)
    try:
        pipe.keypoint_fit = KeypointFit(steps=30, coverage=0.0)
        inside_only = pipe(**arguments)
        pipe.keypoint_fit = KeypointFit(steps=30, coverage=300.0)
        filling = pipe(**arguments)
    finally:
        del pipe.keypoint_fit  # back to the class default
    distance_map = mask_distance_transform(torch.as_tensor(mask)[None])
    evidence = {"intrinsics": K[None], "human_distance_map": distance_map}
    assert (coverage_of(pipe, filling.params, evidence) < 0.95 * coverage_of(pipe, inside_only.params, evidence)).all()


def test_the_facing_restart_recovers_a_start_the_check_left_facing_away(pipe, body, monkeypatch):
    # The front/back check is a coin flip when the start stands side-on to the camera (its two keypoint errors then
    # differ by a few thousandths of a box size, as on both real photos). Stand in for a lost flip: the check keeps
    # the twin of the truth's start. The plain fit cannot turn the body all the way; the restart fits both and
    # keeps the one the keypoints agree with.
    from scorehoi_diffusers.facing import turned_around
    from scorehoi_diffusers.metrics import facing_error_deg
    from scorehoi_diffusers.pipelines import keypoint_fit

    monkeypatch.setattr(keypoint_fit, "choose_facing", lambda body_model, params, evidence, **_: (params, None))
    truth = turned_a_bit(2)
    evidence = evidence_for(body, truth)
    off = off_start(truth)
    start = HOIParams.cat([turned_around(off)[0], off[1]])  # the second sample starts facing the right way
    template = load_object("box")
    plain = KeypointFit()(pipe, start, template, evidence, GuidanceConfig())
    restarted = KeypointFit(facing_restart_margin=math.inf)(pipe, start, template, evidence, GuidanceConfig())

    def facing(params):
        return facing_error_deg(params.global_orient.numpy(), truth.global_orient.numpy())

    assert facing(plain)[0] > 45 and facing(plain)[1] < 20  # the plain fit only half turns a body seen from behind
    assert (facing(restarted) < 20).all(), facing(restarted)
    assert reprojection(body, restarted, evidence)[0] < 0.5 * reprojection(body, plain, evidence)[0]
    # The sample whose start already faced the right way ends where the plain fit ends.
    torch.testing.assert_close(restarted.body_pose[1], plain.body_pose[1], atol=1e-5, rtol=0)
    # With a margin, only samples whose check was undecided are restarted: here neither (the check's two errors
    # differ clearly for this body turned 0.4 rad from the camera), so the fit is the plain one, exactly.
    margin = KeypointFit(facing_restart_margin=1e-3)(pipe, start, template, evidence, GuidanceConfig())
    for field in dataclasses.fields(plain):
        assert torch.equal(getattr(margin, field.name), getattr(plain, field.name)), field.name
    # Without confident landmarks the check's errors tie at zero; that is no evidence, so nothing is restarted.
    few = evidence["keypoints_2d_visibility"].clone()
    few[:, keypoint_fit.FACING_RESTART_MIN_LANDMARKS - 1:] = 0
    blind = {**evidence, "keypoints_2d_visibility": few}
    plain_blind = KeypointFit()(pipe, start, template, blind, GuidanceConfig())
    restarted_blind = KeypointFit(facing_restart_margin=math.inf)(pipe, start, template, blind, GuidanceConfig())
    for field in dataclasses.fields(plain):
        assert torch.equal(getattr(restarted_blind, field.name), getattr(plain_blind, field.name)), field.name
