"""The mask-coverage term (mask_coverage.py) shared by the keypoint fit and the guided cycles: its pixel sample, its
loss, its place in guidance_loss (GuidanceConfig.mask_coverage), the pipeline's evidence and the optimisation
baseline, and bad settings."""
import math

import pytest
import torch
from test_keypoint_fit import coat_mask
from test_keypoints import K, turned_a_bit

from scorehoi_diffusers import GuidanceConfig
from scorehoi_diffusers.guidance import GuidanceInputs, guidance_loss, mask_distance_transform
from scorehoi_diffusers.image_evidence import mask_evidence
from scorehoi_diffusers.mask_coverage import COVERAGE_SAMPLES, mask_coverage_loss, sample_mask_pixels
from scorehoi_diffusers.metrics import silhouette_iou
from scorehoi_diffusers.optimization_baseline import GuidanceOptimization
from scorehoi_diffusers.rendering import MeshLayer, render

# Only the image terms on (the physical terms need contacts and signed distances these tests do not build).
IMAGE_ONLY = {"contact": 0.0, "penetration": 0.0, "floor": 0.0, "keypoints_2d": 0.0}


def test_sample_mask_pixels_is_a_fixed_spread_of_mask_pixels():
    mask = torch.zeros(2, 30, 40, dtype=torch.bool)
    mask[0, 5:25, 10:30] = True
    mask[1, 2, 3] = True  # one pixel: repeated
    distance = mask_distance_transform(mask)
    pixels = sample_mask_pixels(distance, 64)
    assert pixels.shape == (2, 64, 2)
    u, v = pixels[..., 0].long(), pixels[..., 1].long()
    assert mask[torch.arange(2)[:, None], v, u].all()
    assert torch.equal(pixels, sample_mask_pixels(distance, 64))
    # Spread over the whole first mask: its top and bottom rows, left and right columns are all reached.
    assert v[0].min() <= 6 and v[0].max() >= 23 and u[0].min() <= 11 and u[0].max() >= 28
    assert len(torch.unique(pixels[0], dim=0)) == 64
    assert (pixels[1] == torch.tensor([3.0, 2.0])).all()


def test_coverage_loss_pulls_the_nearest_points_towards_uncovered_mask_pixels():
    # Pixels (99.5, 119.5) and (114.5, 119.5).
    points = torch.tensor([[[0.0, 0.0, 2.0], [0.1, 0.0, 2.0]]], requires_grad=True)
    intrinsics = K[None]
    mask_pixels = torch.tensor([[[99.5, 119.5], [140.5, 119.5]]])  # one on the first point, one right of the second
    loss = mask_coverage_loss(points, intrinsics, mask_pixels, 100.0)
    assert loss.item() == pytest.approx((math.sqrt(26.0**2 + 1) - 1) / 2 / 100, rel=1e-5)
    (grad,) = torch.autograd.grad(loss.sum(), points)
    assert grad[0, 1, 0] < 0  # descending moves the second point right, to the uncovered pixel
    assert torch.all(grad[0, 0] == 0)  # the first point is nearest to none but its own pixel, where the cost is flat


def test_coverage_loss_equals_the_min_over_all_point_pairs_in_value_and_gradient():
    # The term's definition written out: every mask pixel's Charbonnier distance to its nearest projected point.
    generator = torch.Generator().manual_seed(3)
    points = (torch.randn(3, 40, 3, generator=generator, dtype=torch.float64) * 0.2
              + torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64)).requires_grad_(True)
    pixels = torch.rand(3, 50, 2, generator=generator, dtype=torch.float64) * 200
    intrinsics = K[None].to(torch.float64).expand(3, 3, 3)
    loss = mask_coverage_loss(points, intrinsics, pixels, 100.0)
    projected = points[..., :2] / points[..., 2:] * K[0, 0].double() + K[:2, 2].double()
    squared = (pixels[:, :, None] - projected[:, None]).square().sum(-1).amin(-1)
    expected = ((squared + 1.0).sqrt() - 1.0).mean(-1) / 100.0
    torch.testing.assert_close(loss, expected, rtol=1e-12, atol=0)
    (grad,) = torch.autograd.grad(loss.sum(), points)
    (expected_grad,) = torch.autograd.grad(expected.sum(), points)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-10, atol=1e-15)


def box_mask(batch: int = 2) -> torch.Tensor:
    """``(B, 240, 200)`` a 60 x 100 pixel box around the principal point, one pixel further right per sample."""
    mask = torch.zeros(batch, 240, 200, dtype=torch.bool)
    for i in range(batch):
        mask[i, 70:170, 70 + i:130 + i] = True
    return mask


def scattered_inputs(dtype=torch.float64, **evidence) -> GuidanceInputs:
    """Two samples of 20 body points near the principal point, 2 m away, with a camera shift, and the box masks'
    evidence (or ``evidence`` in its place)."""
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(2, 20, 3, generator=generator, dtype=dtype) * torch.tensor([0.15, 0.3, 0.05], dtype=dtype)
    translation = torch.tensor([[0.02, -0.01, 2.0], [-0.03, 0.02, 2.1]], dtype=dtype)
    evidence = evidence or mask_evidence(K, box_mask(), None, 2, "cpu", dtype)
    return GuidanceInputs(body_points=points, object_points=points[:, :3], camera_translation=translation, **evidence)


def test_the_evidence_holds_one_sample_of_the_person_mask_and_none_without_it():
    evidence = mask_evidence(K, box_mask(), box_mask(), 2, "cpu", torch.float32)
    assert torch.equal(evidence["human_mask_pixels"],
                       sample_mask_pixels(evidence["human_distance_map"], COVERAGE_SAMPLES))
    assert evidence["human_mask_pixels"].shape == (2, COVERAGE_SAMPLES, 2)
    assert "human_mask_pixels" not in mask_evidence(K, None, box_mask(), 2, "cpu", torch.float32)


def test_the_term_in_guidance_loss_is_the_weighted_coverage_loss_with_its_gradient():
    inputs = scattered_inputs()
    config = GuidanceConfig(**IMAGE_ONLY, mask=0.0, mask_coverage=30.0)
    total, terms = guidance_loss(inputs, config)
    assert set(terms) == {"mask_coverage"}
    expected = mask_coverage_loss(inputs.to_camera(inputs.body_points), inputs.intrinsics, inputs.human_mask_pixels,
                                  math.hypot(240, 200))
    torch.testing.assert_close(terms["mask_coverage"], expected, rtol=0, atol=0)
    torch.testing.assert_close(total, 30.0 * expected, rtol=0, atol=0)
    assert (expected > 0).all()

    def loss_of(points, translation):
        moved = GuidanceInputs(body_points=points, object_points=points[:, :3], camera_translation=translation,
                               intrinsics=inputs.intrinsics, human_distance_map=inputs.human_distance_map,
                               human_mask_pixels=inputs.human_mask_pixels)
        return guidance_loss(moved, config)[0]

    points = inputs.body_points.clone().requires_grad_(True)
    translation = inputs.camera_translation.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(loss_of, (points, translation), eps=1e-7, atol=1e-6)


def test_zero_weight_or_no_person_mask_leaves_the_term_out():
    with_pixels = scattered_inputs()
    evidence = {name: getattr(with_pixels, name) for name in ("intrinsics", "human_distance_map")}
    without_pixels = scattered_inputs(**evidence)
    on_mask_only = GuidanceConfig(**IMAGE_ONLY, mask=10.0)
    total, terms = guidance_loss(with_pixels, on_mask_only)
    assert on_mask_only.mask_coverage == 0.0 and set(terms) == {"mask"}
    assert torch.equal(total, guidance_loss(without_pixels, on_mask_only)[0])
    total, terms = guidance_loss(without_pixels, GuidanceConfig(**IMAGE_ONLY, mask=10.0, mask_coverage=30.0))
    assert set(terms) == {"mask"}


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), "30"])
def test_a_bad_weight_is_a_one_line_error(value):
    for make in (lambda: GuidanceConfig(mask_coverage=value),
                 lambda: GuidanceConfig.from_dict({"mask_coverage": value})):
        with pytest.raises(ValueError, match="GuidanceConfig.mask_coverage must be a finite number >= 0") as raised:
            make()
        assert "\n" not in str(raised.value)


def test_pixels_without_their_distance_map_or_of_a_bad_shape_are_one_line_errors():
    inputs = scattered_inputs()
    lonely = scattered_inputs(intrinsics=inputs.intrinsics, human_mask_pixels=inputs.human_mask_pixels)
    with pytest.raises(ValueError, match="mask_coverage term needs `human_distance_map`") as raised:
        guidance_loss(lonely, GuidanceConfig(**IMAGE_ONLY, mask_coverage=1.0))
    assert "\n" not in str(raised.value)
    with pytest.raises(ValueError, match="human_mask_pixels") as raised:
        scattered_inputs(intrinsics=inputs.intrinsics, human_distance_map=inputs.human_distance_map,
                         human_mask_pixels=inputs.human_mask_pixels[..., :1])
    assert "\n" not in str(raised.value)


def silhouette(pipe, params, mask: torch.Tensor) -> float:
    vertices = pipe.body_model(params.to(dtype=torch.float32), frame="camera").vertices[0]
    rendered = render([MeshLayer(vertices.numpy(), pipe.body_model.faces)], K.numpy(), tuple(mask.shape)).masks[0]
    return silhouette_iou(rendered, mask.numpy())


def test_the_term_makes_the_optimisation_baseline_fill_a_wide_mask(pipe, body):
    # The truth lies inside a mask wider than the body (a long coat) and starts there: the mask term has nothing to
    # pull, the coverage term widens the body into the mask. The baseline shares the pipeline's guidance gradient.
    truth = turned_a_bit(1)
    mask = coat_mask(body, truth)[0]
    ious = {}
    for weight in (0.0, 300.0):
        config = GuidanceConfig(**IMAGE_ONLY, scale=1.0, mask=10.0, mask_coverage=weight)
        output = GuidanceOptimization(pipe, step_size=0.01)(
            object="box", initial_params=truth, human_mask=mask.numpy(), intrinsics=K, guidance_config=config,
            num_cycles=2)
        assert ("mask_coverage" in output.guidance_term_history) == (weight > 0)
        ious[weight] = silhouette(pipe, output.params, mask)
    assert abs(ious[0.0] - silhouette(pipe, truth, mask)) < 0.005  # nothing pulls (rounding: encode, decode)
    assert ious[300.0] > ious[0.0] + 0.03, ious


def test_the_keypoint_fit_reads_the_evidence_sample_and_not_the_cycles_weight(pipe, body):
    from test_keypoint_fit import evidence_for, off_start

    from scorehoi_diffusers.objects import load_object
    from scorehoi_diffusers.pipelines.keypoint_fit import KeypointFit

    truth = turned_a_bit(1)
    evidence = evidence_for(body, truth) | mask_evidence(K, coat_mask(body, truth), None, 1, "cpu", torch.float32)
    resampled = {name: value for name, value in evidence.items() if name != "human_mask_pixels"}
    start, template, fit = off_start(truth), load_object("box"), KeypointFit(steps=5, coverage=300.0)
    reference = fit(pipe, start, template, evidence, GuidanceConfig(mask=10.0))
    for other_evidence, config in ((resampled, GuidanceConfig(mask=10.0)),
                                   (evidence, GuidanceConfig(mask=10.0, mask_coverage=1000.0))):
        fitted = fit(pipe, start, template, other_evidence, config)
        assert torch.equal(fitted.body_pose, reference.body_pose) and torch.equal(fitted.betas, reference.betas)
    assert not torch.equal(reference.betas, start.betas)
    # The evidence's sample is the one used: moved 20 pixels to the right, the fit follows it.
    moved = evidence | {"human_mask_pixels": evidence["human_mask_pixels"] + torch.tensor([20.0, 0.0])}
    assert not torch.equal(fit(pipe, start, template, moved, GuidanceConfig(mask=10.0)).betas, reference.betas)
