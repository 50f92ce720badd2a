"""Tests of the guidance terms on constructed scenes with analytic signed distances (camera space, y down)."""
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scorehoi_diffusers.camera import project_points
from scorehoi_diffusers.guidance import (
    TERMS,
    GuidanceConfig,
    GuidanceInputs,
    clip_gradient_norm,
    contact_term,
    contact_weights,
    floor_term,
    geman_mcclure,
    guidance_loss,
    keypoints_2d_term,
    mask_distance_transform,
    mask_term,
    penetration_term,
    points_to_points_distance,
)

DTYPE = torch.float64


def box_sdf(points, centre, half_extents):
    """Exact signed distance to an axis-aligned box, ``(B, N, 3) -> (B, N)``."""
    centre, half_extents = (torch.as_tensor(v, dtype=points.dtype) for v in (centre, half_extents))
    q = (points - centre).abs() - half_extents
    outside = torch.linalg.vector_norm(q.clamp(min=0), dim=-1)
    inside = q.amax(-1).clamp(max=0)
    return outside + inside


def sphere_sdf(points, centre, radius):
    """Signed distance to a sphere, ``(B, N, 3) -> (B, N)``."""
    return torch.linalg.vector_norm(points - torch.as_tensor(centre, dtype=points.dtype), dim=-1) - radius


def intrinsics(batch=1, focal=100.0, width=64, height=48):
    k = torch.tensor([[focal, 0, (width - 1) / 2], [0, focal, (height - 1) / 2], [0, 0, 1]], dtype=DTYPE)
    return k.expand(batch, 3, 3).clone()


def descend(loss_fn, x, lr=0.1):
    """One gradient-descent step on ``x``; returns (gradient, stepped x)."""
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(loss_fn(x).sum(), x)
    return grad, (x - lr * grad).detach()


# ----------------------------------------------------------------------------------------------------------
# Penetration


def test_penetrating_point_is_pushed_out():
    box = dict(centre=(0.0, 0.0, 2.0), half_extents=(0.2, 0.2, 0.2))
    point = torch.tensor([[[0.19, 0.0, 2.0]]], dtype=DTYPE)  # 1 cm inside the +x face
    assert box_sdf(point, **box).item() == pytest.approx(-0.01)
    assert penetration_term(box_sdf(point, **box)).item() == pytest.approx(1e-4)

    grad, stepped = descend(lambda p: penetration_term(box_sdf(p, **box)), point, lr=10.0)
    assert grad.abs().sum() > 0, "a penetrating point must get a gradient (the release's count had none)"
    assert box_sdf(stepped, **box).item() > box_sdf(point, **box).item()
    assert grad[0, 0, 0] < 0  # descent moves it along +x, out through the nearest face


def test_non_penetrating_configuration_has_exactly_zero_penetration_and_gradient():
    # Two points outside the box, one on its surface.
    points = torch.tensor([[[0.3, 0.0, 2.0], [0.0, 0.25, 2.0], [0.2, 0.0, 2.0]]], dtype=DTYPE)

    def loss(p):
        return penetration_term(box_sdf(p, (0.0, 0.0, 2.0), (0.2, 0.2, 0.2)))

    assert loss(points).item() == 0.0
    grad, _ = descend(loss, points)
    assert torch.count_nonzero(grad) == 0


def test_object_points_inside_body_add_to_penetration():
    body_object_sdf = torch.tensor([[0.1, 0.2]], dtype=DTYPE)
    object_body_sdf = torch.tensor([[-0.03, 0.5, -0.04]], dtype=DTYPE)
    assert penetration_term(body_object_sdf).item() == 0.0
    assert penetration_term(body_object_sdf, object_body_sdf).item() == pytest.approx(0.03**2 + 0.04**2)


# ----------------------------------------------------------------------------------------------------------
# Contact


def test_contact_vertex_is_pulled_toward_the_object():
    sphere = dict(centre=(0.0, 0.0, 2.0), radius=0.1)
    vertex = torch.tensor([[[0.2, 0.0, 2.0]]], dtype=DTYPE)  # 10 cm from the surface
    ones = torch.ones(1, 1, dtype=DTYPE)
    no_object = (torch.zeros(1, 0, dtype=DTYPE), torch.zeros(1, 0, dtype=DTYPE))

    def loss(p):
        return contact_term(sphere_sdf(p, **sphere), ones, *no_object, threshold=0.02)

    assert loss(vertex).item() == pytest.approx((0.1 - 0.02) ** 2)
    grad, stepped = descend(loss, vertex, lr=1.0)
    assert grad.abs().sum() > 0
    assert sphere_sdf(stepped, **sphere).item() < sphere_sdf(vertex, **sphere).item()


def test_contact_within_threshold_is_exactly_zero():
    sdf = torch.tensor([[0.015, 0.02, -0.05]], dtype=DTYPE)  # inside the 2 cm band, on it, and inside
    object_distance = torch.tensor([[0.0, 0.019]], dtype=DTYPE)
    loss = contact_term(sdf, torch.ones_like(sdf), object_distance, torch.ones_like(object_distance), 0.02)
    assert loss.item() == 0.0


def test_contact_probability_weights_the_loss():
    sdf = torch.tensor([[0.12, 0.12]], dtype=DTYPE)
    empty = torch.zeros(1, 0, dtype=DTYPE)
    full = contact_term(sdf, torch.tensor([[1.0, 1.0]], dtype=DTYPE), empty, empty, 0.02)
    half = contact_term(sdf, torch.tensor([[0.5, 0.0]], dtype=DTYPE), empty, empty, 0.02)
    assert full.item() == pytest.approx(2 * 0.1**2)
    assert half.item() == pytest.approx(0.5 * 0.1**2)


def test_contact_decision_pulls_only_the_points_called_in_contact():
    # Two body points 10 cm from a box, one the estimator gives 0.3 (not in contact at a 0.5 decision), one 0.7.
    body = torch.tensor([[[0.0, 0.0, 0.3], [0.0, 0.0, -0.3]]], dtype=DTYPE, requires_grad=True)
    obj = torch.tensor([[[0.0, 0.0, 0.0]]], dtype=DTYPE)
    probabilities = torch.tensor([[0.3, 0.7]], dtype=DTYPE)

    def gradient(decision):
        sdf = box_sdf(body, (0, 0, 0), (0.2,) * 3)
        inputs = GuidanceInputs(body_points=body, object_points=obj, body_object_sdf=sdf,
                                human_contact=probabilities, object_contact=torch.zeros(1, 1, dtype=DTYPE))
        config = GuidanceConfig(contact=1.0, penetration=0.0, floor=0.0, contact_decision=decision)
        (grad,) = torch.autograd.grad(guidance_loss(inputs, config)[0].sum(), body)
        return grad[0, :, 2]

    soft, decided = gradient(None), gradient(0.5)
    assert soft[0] != 0 and decided[0] == 0  # soft labels still pull the 0.3 point; the decision does not
    torch.testing.assert_close(decided[1], soft[1] / 0.7)  # the 0.7 point is pulled as a certain contact
    assert contact_weights(torch.tensor([0.2, float("nan"), 0.9]), 0.5, "human_contact").isnan().tolist() == [
        False, True, False]  # NaN stays NaN, so its sample is still isolated
    with pytest.raises(ValueError, match="human_contact"):
        contact_weights(torch.tensor([1.5]), 0.5, "human_contact")


def test_object_contact_point_is_pulled_toward_the_body():
    body = torch.tensor([[[0.0, 0.0, 2.0], [0.0, 0.5, 2.0]]], dtype=DTYPE)
    obj = torch.tensor([[[0.1, 0.0, 2.0]]], dtype=DTYPE)
    far_sdf = torch.ones(1, 2, dtype=DTYPE)

    def loss(o):
        distance = points_to_points_distance(o, body)
        no_body_contact = torch.zeros(1, 2, dtype=DTYPE)
        return contact_term(far_sdf, no_body_contact, distance, torch.ones(1, 1, dtype=DTYPE), 0.02)

    assert loss(obj).item() == pytest.approx(0.08**2)
    _, stepped = descend(loss, obj, lr=1.0)
    assert points_to_points_distance(stepped, body).item() < 0.1


def test_points_to_points_distance_matches_brute_force_far_from_origin():
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(3, 50, 3, generator=generator) * 0.3 + torch.tensor([0.5, -1.0, 4.0])
    b = torch.randn(3, 70, 3, generator=generator) * 0.3 + torch.tensor([0.5, -1.0, 4.0])
    brute = (a[:, :, None] - b[:, None]).norm(dim=-1).amin(-1)
    torch.testing.assert_close(points_to_points_distance(a, b), brute, atol=1e-6, rtol=0)


def test_points_to_points_distance_is_zero_with_finite_gradient_at_coincident_points():
    a = torch.tensor([[[1.0, 2.0, 3.0]]], dtype=DTYPE, requires_grad=True)
    b = torch.tensor([[[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]]], dtype=DTYPE, requires_grad=True)
    distance = points_to_points_distance(a, b)
    assert distance.item() == 0.0
    distance.sum().backward()
    assert torch.isfinite(a.grad).all() and torch.isfinite(b.grad).all()


# ----------------------------------------------------------------------------------------------------------
# Floor


def _scene(object_lowest_y):
    """Feet at y = 1.0 (the floor, camera y down); a 20 cm cube, its lowest face at ``object_lowest_y``."""
    body = torch.tensor([[[0.0, -0.7, 3.0], [0.1, 1.0, 3.0], [-0.1, 0.9, 3.0]]], dtype=DTYPE)
    cube = torch.tensor([[x, y, z] for x in (0, 0.2) for y in (-0.2, 0.0) for z in (0, 0.2)], dtype=DTYPE)
    obj = (cube + torch.tensor([0.5, object_lowest_y, 3.0], dtype=DTYPE)).unsqueeze(0)
    return obj, body


def test_floating_object_with_floor_contact_moves_down_along_gravity():
    obj, body = _scene(object_lowest_y=0.8)  # 20 cm above the feet
    floor_contact = torch.ones(1, dtype=DTYPE)
    assert floor_term(obj, body, floor_contact).item() == pytest.approx(0.2**2)

    translation = torch.zeros(1, 1, 3, dtype=DTYPE)
    grad, stepped = descend(lambda t: floor_term(obj + t, body, floor_contact), translation, lr=1.0)
    assert grad[0, 0, 1] < 0 and grad[0, 0, [0, 2]].abs().max() == 0  # only along gravity
    assert stepped[0, 0, 1] > 0  # down = +y in an OpenCV camera

    body_points = body.clone().requires_grad_(True)
    floor_term(obj.clone().requires_grad_(True), body_points, floor_contact).sum().backward()
    assert body_points.grad is None or torch.count_nonzero(body_points.grad) == 0, "the floor must not move"


def test_floor_term_is_exactly_zero_without_floor_contact_or_on_the_floor():
    floating, body = _scene(object_lowest_y=0.8)
    assert floor_term(floating, body, torch.zeros(1, dtype=DTYPE)).item() == 0.0
    resting, body = _scene(object_lowest_y=1.0)
    assert floor_term(resting, body, torch.ones(1, dtype=DTYPE)).item() == 0.0
    sunk, body = _scene(object_lowest_y=1.1)  # the object is the lowest thing: it defines the floor
    assert floor_term(sunk, body, torch.ones(1, dtype=DTYPE)).item() == 0.0


def test_floor_term_with_user_plane_and_custom_up_axis():
    obj, body = _scene(object_lowest_y=0.8)
    one = torch.ones(1, dtype=DTYPE)
    # The plane y = 1.1 with its normal pointing up (-y), not unit length: -2 y + 2.2 = 0.
    assert floor_term(obj, None, one, floor_plane=(0.0, -2.0, 0.0, 2.2)).item() == pytest.approx(0.3**2)
    # With z as "up", the lowest object z is 3.0 and the lowest body z is 3.0: on the floor.
    assert floor_term(obj, body, one, up_axis=(0.0, 0.0, 1.0)).item() == 0.0
    lifted = obj + torch.tensor([0.0, 0.0, 0.5], dtype=DTYPE)
    assert floor_term(lifted, body, one, up_axis=(0.0, 0.0, 5.0)).item() == pytest.approx(0.5**2)


# ----------------------------------------------------------------------------------------------------------
# Image terms


def test_mask_distance_transform_values_and_empty_mask():
    mask = torch.zeros(2, 5, 6, dtype=torch.bool)
    mask[0, 1, 1] = True
    mask[1, 4, 5] = True
    distances = mask_distance_transform(mask)
    assert distances.shape == (2, 5, 6) and distances.dtype == torch.float32
    assert distances[0, 1, 1] == 0 and distances[0, 4, 5] == pytest.approx(5.0)  # (3, 4) pixels away
    assert distances[1, 0, 2] == pytest.approx(5.0)  # images do not see each other's masks
    torch.testing.assert_close(mask_distance_transform(mask.float()), distances)

    mask[1] = False
    with pytest.raises(ValueError, match=r"object_mask.*\[1\]"):
        mask_distance_transform(mask, name="object_mask")


def test_project_points_pinhole_and_depth_guard():
    k = intrinsics(focal=100.0, width=65, height=49)  # principal point (32, 24)
    points = torch.tensor(
        [[[0.0, 0.0, 2.0], [0.2, -0.1, 2.0], [0.1, 0.1, -1.0], [0.1, 0.1, 0.0]]], dtype=DTYPE
    )
    pixels = project_points(points, k)
    torch.testing.assert_close(pixels[0, :2], torch.tensor([[32.0, 24.0], [42.0, 19.0]], dtype=DTYPE))
    assert torch.isfinite(pixels).all()  # behind and at the camera: clamped depth, finite


def _mask_setup():
    mask = torch.zeros(1, 48, 64, dtype=torch.bool)
    mask[0, 20:30, 25:40] = True
    return mask_distance_transform(mask).to(DTYPE), intrinsics(focal=100.0)


def _at_pixel(u, v, depth=2.0):
    """Camera-space point at ``depth`` that projects to pixel ``(u, v)`` under :func:`intrinsics`."""
    cx, cy = (64 - 1) / 2, (48 - 1) / 2
    return [(u - cx) * depth / 100.0, (v - cy) * depth / 100.0, depth]


def test_mask_term_zero_inside_and_decreasing_toward_the_mask():
    distance_map, k = _mask_setup()
    inside = torch.tensor([[_at_pixel(30, 25), _at_pixel(26.5, 21.2), _at_pixel(39, 29)]], dtype=DTYPE)
    assert mask_term(inside, k, distance_map).item() == 0.0

    outside = torch.tensor([[_at_pixel(30, 25), _at_pixel(5, 5)]], dtype=DTYPE)
    loss = mask_term(outside, k, distance_map)
    expected = math.hypot(25 - 5, 20 - 5) / 2 / math.hypot(48, 64)  # one point 25 px away, mean over 2
    assert loss.item() == pytest.approx(expected, rel=1e-6)
    _, stepped = descend(lambda p: mask_term(p, k, distance_map), outside, lr=0.02)
    assert mask_term(stepped, k, distance_map).item() < loss.item()


def test_mask_term_pulls_points_outside_the_image_back():
    distance_map, k = _mask_setup()
    beyond = torch.tensor([[_at_pixel(-40, 25)]], dtype=DTYPE)  # 40 px left of the image
    border = torch.tensor([[_at_pixel(0, 25)]], dtype=DTYPE)
    assert mask_term(beyond, k, distance_map).item() > mask_term(border, k, distance_map).item()
    grad, _ = descend(lambda p: mask_term(p, k, distance_map), beyond)
    assert grad[0, 0, 0] < 0  # descent moves it toward +x, into the image


def test_keypoints_term_zero_at_keypoints_and_weighted_by_visibility():
    k = intrinsics(focal=100.0)
    joints = torch.tensor([[[0.1, -0.2, 2.0], [0.0, 0.1, 3.0]]], dtype=DTYPE)
    keypoints = project_points(joints, k)
    ones = torch.ones(1, 2, dtype=DTYPE)
    box = torch.tensor([50.0], dtype=DTYPE)
    assert keypoints_2d_term(joints, k, keypoints, ones, box, 0.1).item() == 0.0

    shifted = keypoints + torch.tensor([[[3.0, 4.0], [0.0, 0.0]]], dtype=DTYPE)  # 5 px = 0.1 box off on the first
    loss = keypoints_2d_term(joints, k, shifted, ones, box, sigma=0.1)
    # rho(0.1) with sigma 0.1 is sigma^2 / 2; the weighted mean over two keypoints halves it again.
    assert loss.item() == pytest.approx(0.01 / 2 / 2)
    ignored = keypoints_2d_term(joints, k, shifted, torch.tensor([[0.0, 1.0]], dtype=DTYPE), box, 0.1)
    assert ignored.item() == 0.0
    _, stepped = descend(lambda p: keypoints_2d_term(p, k, shifted, ones, box, 0.1), joints, lr=0.1)
    assert keypoints_2d_term(stepped, k, shifted, ones, box, 0.1).item() < loss.item()
    # Resolution independent: twice the pixels, twice the box, same loss.
    k2 = k.clone()
    k2[:, :2] *= 2
    same = keypoints_2d_term(joints, k2, project_points(joints, k2) + 2 * (shifted - keypoints), ones, 2 * box, 0.1)
    assert same.item() == pytest.approx(loss.item())


def test_geman_mcclure_limits():
    sigma = 0.2
    small = torch.tensor([1e-4], dtype=DTYPE)
    assert geman_mcclure(small, sigma).item() == pytest.approx(1e-4, rel=1e-2)  # r^2 for r << sigma
    huge = torch.tensor([1e8], dtype=DTYPE)
    assert geman_mcclure(huge, sigma).item() == pytest.approx(sigma**2, rel=1e-6)  # saturates at sigma^2
    r = torch.tensor([1.0, 10.0, 100.0], dtype=DTYPE, requires_grad=True)
    (grad,) = torch.autograd.grad(geman_mcclure(r.square(), sigma).sum(), r)
    assert (grad[1:] < grad[:-1]).all()  # outliers pull less the further out they are


def test_keypoints_term_gradcheck_float64():
    generator = torch.Generator().manual_seed(3)
    points = (torch.randn(2, 4, 3, generator=generator, dtype=DTYPE) * 0.2 + torch.tensor([0, 0, 3.0], dtype=DTYPE))
    keypoints = project_points(points, intrinsics(2)) + torch.randn(2, 4, 2, generator=generator, dtype=DTYPE) * 5
    visibility = torch.rand(2, 4, generator=generator, dtype=DTYPE) * 0.8 + 0.1
    box = torch.tensor([40.0, 60.0], dtype=DTYPE)
    for tensor in (points, keypoints, visibility):
        tensor.requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda p, kp, v: keypoints_2d_term(p, intrinsics(2), kp, v, box, 0.15), (points, keypoints, visibility)
    )


def test_keypoints_term_zero_visibility_gives_zero_gradient():
    points = torch.tensor([[[0.1, -0.2, 2.0], [0.0, 0.1, 3.0]]], dtype=DTYPE, requires_grad=True)
    far = torch.full((1, 2, 2), 5.0, dtype=DTYPE)
    hidden = torch.tensor([[0.0, 1.0]], dtype=DTYPE)
    loss = keypoints_2d_term(points, intrinsics(), far, hidden, torch.tensor([30.0], dtype=DTYPE), 0.1)
    (grad,) = torch.autograd.grad(loss.sum(), points)
    assert torch.equal(grad[0, 0], torch.zeros(3, dtype=DTYPE)) and grad[0, 1].abs().sum() > 0
    nothing = keypoints_2d_term(points, intrinsics(), far, torch.zeros(1, 2, dtype=DTYPE),
                                torch.tensor([30.0], dtype=DTYPE), 0.1)
    (grad,) = torch.autograd.grad(nothing.sum(), points)
    assert nothing.item() == 0.0 and torch.equal(grad, torch.zeros_like(grad))
    with pytest.raises(ValueError, match="visibility"):
        keypoints_2d_term(points, intrinsics(), far, torch.full((1, 2), 2.0, dtype=DTYPE),
                          torch.tensor([30.0], dtype=DTYPE), 0.1)
    with pytest.raises(ValueError, match="box_size"):
        keypoints_2d_term(points, intrinsics(), far, hidden, torch.tensor([0.0], dtype=DTYPE), 0.1)


# ----------------------------------------------------------------------------------------------------------
# The weighted sum, per-sample independence, clipping


def _batch_inputs(body, obj, **kwargs):
    """GuidanceInputs with every term's inputs, for a 50 cm box centred 0.1 m below ``obj``'s first point."""
    batch, num_body, num_obj = body.shape[0], body.shape[1], obj.shape[1]
    box_centre = obj[:, :1] + torch.tensor([0.0, 0.1, 0.0], dtype=body.dtype)
    q = (body - box_centre).abs() - 0.25
    sdf = torch.linalg.vector_norm(q.clamp(min=0), dim=-1) + q.amax(-1).clamp(max=0)
    mask = torch.zeros(batch, 48, 64, dtype=torch.bool)
    mask[:, 10:40, 20:45] = True
    distance_map = mask_distance_transform(mask).to(body.dtype)
    return GuidanceInputs(
        body_points=body,
        object_points=obj,
        body_object_sdf=sdf,
        human_contact=torch.full((batch, num_body), 0.7, dtype=body.dtype),
        object_contact=torch.full((batch, num_obj), 0.4, dtype=body.dtype),
        floor_contact=torch.full((batch,), 0.9, dtype=body.dtype),
        object_body_sdf=(obj - body.mean(1, keepdim=True)).norm(dim=-1) - 0.3,
        intrinsics=intrinsics(batch),
        human_distance_map=distance_map,
        object_distance_map=distance_map,
        keypoints_3d=body[:, :4],
        keypoints_2d=torch.full((batch, 4, 2), 20.0, dtype=body.dtype),
        keypoints_box_size=torch.full((batch,), 30.0, dtype=body.dtype),
        **kwargs,
    )


def _random_scene(batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    body = torch.randn(batch, 30, 3, generator=generator, dtype=DTYPE) * 0.3
    obj = torch.randn(batch, 12, 3, generator=generator, dtype=DTYPE) * 0.1
    body = body + torch.tensor([0.0, 0.0, 3.0], dtype=DTYPE)
    obj = obj + torch.tensor([0.2, 0.3, 2.8], dtype=DTYPE)
    return body, obj


ALL_TERMS = GuidanceConfig(contact=0.5, penetration=0.1, floor=0.5, mask=0.3, keypoints_2d=0.2)


def _loss_and_grads(body, obj, config=ALL_TERMS):
    body = body.clone().requires_grad_(True)
    obj = obj.clone().requires_grad_(True)
    total, terms = guidance_loss(_batch_inputs(body, obj), config)
    body_grad, obj_grad = torch.autograd.grad(total.sum(), (body, obj))
    return total.detach(), terms, body_grad, obj_grad


def test_guidance_loss_is_the_weighted_sum_and_scale_is_not_applied():
    body, obj = _random_scene()
    total, terms, _, _ = _loss_and_grads(body, obj)
    assert set(terms) == {"contact", "penetration", "floor", "mask", "keypoints_2d"}
    # mask_coverage needs mask pixels (tests/test_mask_coverage.py), pose_prior a pose (tests/test_pose_prior_term.py)
    assert set(terms) == set(TERMS) - {"mask_coverage", "pose_prior"}
    assert all(value.shape == (2,) and (value > 0).all() for value in terms.values())
    expected = sum(getattr(ALL_TERMS, name) * value for name, value in terms.items())
    torch.testing.assert_close(total, expected.detach())
    scaled = GuidanceConfig(**{**ALL_TERMS.__dict__, "scale": 7.0})
    torch.testing.assert_close(guidance_loss(_batch_inputs(body, obj), scaled)[0], total)


def test_guidance_loss_skips_zero_weight_and_missing_terms():
    body, obj = _random_scene()
    _, terms = guidance_loss(_batch_inputs(body, obj), GuidanceConfig.release())
    assert set(terms) == {"contact", "penetration", "floor", "keypoints_2d"}  # keypoints are given here
    _, terms = guidance_loss(_batch_inputs(body, obj), GuidanceConfig(**{**ALL_TERMS.__dict__, "keypoints_2d": 0}))
    assert "keypoints_2d" not in terms
    bare = GuidanceInputs(body_points=body, object_points=obj)
    total, terms = guidance_loss(bare, ALL_TERMS)
    assert terms == {} and torch.equal(total, torch.zeros(2, dtype=DTYPE))


def test_guidance_loss_moves_points_to_camera_space_with_camera_translation():
    body, obj = _random_scene()
    offset = torch.tensor([[0.1, -0.2, 1.0], [0.0, 0.3, -0.5]], dtype=DTYPE)
    in_camera = _batch_inputs(body, obj)
    pelvis_frame = _batch_inputs(body - offset[:, None], obj - offset[:, None], camera_translation=offset)
    config = GuidanceConfig(
        contact=0, penetration=0, floor=1.0, mask=1.0, keypoints_2d=1.0, floor_plane=(0, -1, 0, 3)
    )
    _, expected = guidance_loss(in_camera, config)
    _, actual = guidance_loss(pelvis_frame, config)
    assert set(actual) == {"floor", "mask", "keypoints_2d"}
    for name in actual:
        torch.testing.assert_close(actual[name], expected[name])


def test_nan_in_one_sample_leaves_the_other_sample_unchanged():
    body, obj = _random_scene()
    total, _, body_grad, obj_grad = _loss_and_grads(body, obj)
    body_nan, obj_nan = body.clone(), obj.clone()
    body_nan[0, 3] = float("nan")
    obj_nan[0, 5, 1] = float("nan")
    total_nan, terms_nan, body_grad_nan, obj_grad_nan = _loss_and_grads(body_nan, obj_nan)
    assert torch.isnan(total_nan[0])
    assert torch.equal(total_nan[1], total[1])
    assert torch.equal(body_grad_nan[1], body_grad[1]) and torch.equal(obj_grad_nan[1], obj_grad[1])
    assert all(torch.isfinite(value[1]) for value in terms_nan.values())


def test_clip_gradient_norm_per_sample():
    grad = torch.tensor([[3.0, 4.0], [0.3, 0.4], [float("nan"), 1.0], [1e30, 1e30], [0.0, 0.0]])
    clipped, non_finite = clip_gradient_norm(grad, max_norm=1.0)
    assert non_finite.tolist() == [False, False, True, False, False]
    torch.testing.assert_close(clipped[0], torch.tensor([0.6, 0.8]))
    torch.testing.assert_close(clipped[1], grad[1])  # already within the bound
    assert torch.equal(clipped[2], torch.zeros(2))
    torch.testing.assert_close(clipped[3], torch.tensor([1.0, 1.0]) / math.sqrt(2))  # huge but finite
    assert torch.equal(clipped[4], torch.zeros(2))

    unclipped, non_finite = clip_gradient_norm(grad, max_norm=None)
    assert torch.equal(unclipped[0], grad[0]) and torch.equal(unclipped[2], torch.zeros(2))
    assert non_finite.tolist() == [False, False, True, False, False]
    with pytest.raises(ValueError, match="max_norm"):
        clip_gradient_norm(grad, max_norm=0.0)


# ----------------------------------------------------------------------------------------------------------
# Config and input validation


def test_release_preset():
    config = GuidanceConfig.release()
    assert (config.scale, config.contact, config.floor, config.penetration) == (1.0, 0.5, 0.5, 0.1)
    assert config.mask == 0.0
    # No keypoint input in the release; the keypoint term keeps its default weight, active only with keypoints.
    assert config.keypoints_2d == GuidanceConfig().keypoints_2d > 0
    assert config.up_axis == (0.0, -1.0, 0.0) and config.floor_plane is None


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"contact": -0.1}, "contact"),
        ({"scale": float("nan")}, "scale"),
        ({"contact_threshold": -0.01}, "contact_threshold"),
        ({"up_axis": (0.0, 0.0, 0.0)}, "up_axis"),
        ({"up_axis": (0.0, 1.0)}, "up_axis"),
        ({"floor_plane": (0.0, 0.0, 0.0, 1.0)}, "floor_plane"),
        ({"max_grad_norm": 0.0}, "max_grad_norm"),
        ({"keypoints_2d_sigma": 0.0}, "keypoints_2d_sigma"),
        ({"camera_step_size": -1.0}, "camera_step_size"),
        ({"contact_decision": 1.0}, "contact_decision"),
        ({"contact_decision": 0.0}, "contact_decision"),
        ({"contact_decision": True}, "contact_decision"),
        ({"add_contacts": 1}, "add_contacts"),
        ({"add_contacts": "no"}, "add_contacts"),
        ({"inversion_iterations": -1}, "inversion_iterations"),
        ({"inversion_iterations": 1.0}, "inversion_iterations"),
        ({"inversion_iterations": True}, "inversion_iterations"),
        ({"inversion_iterations": [0, 1]}, "inversion_iterations"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GuidanceConfig(**kwargs)


def test_config_from_json_lists_equals_default():
    assert GuidanceConfig(up_axis=[0, -1, 0], floor_plane=[0, -1, 0, 1]).up_axis == GuidanceConfig().up_axis


def test_shape_and_probability_errors_name_the_argument():
    sdf = torch.zeros(2, 5)
    with pytest.raises(ValueError, match=r"human_contact.*\(B, N\) = \(2, 5\)"):
        contact_term(sdf, torch.zeros(2, 4), torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="object_contact"):
        contact_term(sdf, torch.zeros(2, 5), torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r"human_contact.*\[0, 1\]"):
        contact_term(sdf, torch.full((2, 5), 1.5), torch.zeros(2, 3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="floor_contact"):
        floor_term(torch.zeros(2, 3, 3), torch.zeros(2, 4, 3), torch.full((2,), -0.1))
    with pytest.raises(ValueError, match="body_points"):
        floor_term(torch.zeros(2, 3, 3), torch.zeros(3, 4, 3), torch.zeros(2))
    with pytest.raises(ValueError, match="intrinsics"):
        project_points(torch.zeros(2, 3, 3), torch.eye(3))
    with pytest.raises(ValueError, match="object_points"):
        GuidanceInputs(body_points=torch.zeros(2, 4, 3), object_points=torch.zeros(2, 4, 2))
    with pytest.raises(TypeError, match="body_object_sdf"):
        penetration_term([[0.1]])


# ----------------------------------------------------------------------------------------------------------
# Property: finite in, finite out


coordinates = st.floats(-50.0, 50.0, allow_nan=False, width=32)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31 - 1),
    spread=st.floats(1e-4, 30.0),
    shift=st.tuples(coordinates, coordinates, coordinates),
    sdf_scale=st.floats(0.0, 100.0),
    contact=st.floats(0.0, 1.0),
)
def test_finite_inputs_give_finite_losses_and_gradients(seed, spread, shift, sdf_scale, contact):
    generator = torch.Generator().manual_seed(seed)
    offset = torch.tensor(shift, dtype=torch.float32)
    body = (torch.randn(2, 20, 3, generator=generator) * spread + offset).requires_grad_(True)
    obj = (torch.randn(2, 8, 3, generator=generator) * spread + offset).requires_grad_(True)
    sdf = (torch.randn(2, 20, generator=generator) * sdf_scale).requires_grad_(True)
    mask = torch.rand(2, 24, 32, generator=generator) > 0.7
    mask[:, 0, 0] = True
    inputs = GuidanceInputs(
        body_points=body,
        object_points=obj,
        body_object_sdf=sdf,
        human_contact=torch.full((2, 20), contact),
        object_contact=torch.full((2, 8), contact),
        floor_contact=torch.full((2,), contact),
        intrinsics=torch.tensor([[500.0, 0, 16], [0, 500.0, 12], [0, 0, 1]]).expand(2, 3, 3),
        human_distance_map=mask_distance_transform(mask),
        object_distance_map=mask_distance_transform(~mask | (torch.arange(32) == 3)),
        keypoints_3d=body[:, :5],
        keypoints_2d=torch.rand(2, 5, 2, generator=generator) * 32,
        keypoints_box_size=torch.full((2,), 20.0),
    )
    total, terms = guidance_loss(inputs, ALL_TERMS)
    assert torch.isfinite(total).all() and all(torch.isfinite(v).all() for v in terms.values())
    grads = torch.autograd.grad(total.sum(), (body, obj, sdf))
    assert all(torch.isfinite(g).all() for g in grads)
