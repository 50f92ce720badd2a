"""Simulated BlazePose detections: shapes, determinism, visibility semantics, swap and miss rates, errors."""
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import torch

from scorehoi_diffusers.data.simulated_detections import DetectionNoise, person_box_heights, simulate_detections
from scorehoi_diffusers.skeleton import BLAZEPOSE_FITTED, BLAZEPOSE_MIRRORED, NUM_BLAZEPOSE

SIZE = 200
FITTED = torch.tensor(BLAZEPOSE_FITTED)


def _scene(batch: int = 4, seed: int = 0):
    """Landmark points 2-3 m in front of a camera whose picture they fill, and the camera."""
    generator = torch.Generator().manual_seed(seed)
    points = torch.rand(batch, NUM_BLAZEPOSE, 3, generator=generator) - 0.5
    points[..., 2] = 2.5 + 0.2 * points[..., 2]
    intrinsics = torch.tensor([[300.0, 0, SIZE / 2], [0, 300.0, SIZE / 2], [0, 0, 1]]).expand(batch, 3, 3)
    return points * FITTED[None, :, None], intrinsics.clone()


def _detect(points, intrinsics, noise=None, seed=0):
    return simulate_detections(points, intrinsics, (SIZE, SIZE), noise, torch.Generator().manual_seed(seed))


def test_shapes_and_exact_projection_without_noise():
    points, intrinsics = _scene()
    detections = _detect(points, intrinsics, DetectionNoise.none())
    assert detections.shape == (4, NUM_BLAZEPOSE, 3) and detections.dtype == torch.float32
    expected = points[..., :2] / points[..., 2:] * 300.0 + SIZE / 2
    torch.testing.assert_close(detections[:, FITTED, :2], expected[:, FITTED])
    assert (detections[:, FITTED, 2] >= 0.5).all()
    assert (detections[:, ~FITTED] == 0).all()  # no body point: not reported, (u, v) = 0


def test_same_generator_state_same_detections_and_global_rng_untouched():
    points, intrinsics = _scene()
    state = torch.random.get_rng_state()
    first, second = _detect(points, intrinsics, seed=3), _detect(points, intrinsics, seed=3)
    assert torch.equal(first, second)
    assert not torch.equal(first, _detect(points, intrinsics, seed=4))
    assert torch.equal(torch.random.get_rng_state(), state)


def test_outside_the_picture_or_behind_the_camera_is_not_reported():
    points, intrinsics = _scene(batch=1)
    points[0, 0, 0] = 10.0  # nose far to the right: outside the picture
    points[0, 11, 2] = -1.0  # left shoulder behind the camera
    detections = _detect(points, intrinsics, DetectionNoise.none())
    assert (detections[0, 0] == 0).all() and (detections[0, 11] == 0).all()
    assert (detections[0, 12, 2] > 0).all()


def test_low_visibility_rate_and_noise_scale():
    points, intrinsics = _scene(batch=400)
    noise = DetectionNoise(position_error=0.02, outlier_rate=0.0, outlier_error=0.0, low_visibility_rate=0.25,
                           miss_rate=0.0, swap_rate=0.0)
    detections = _detect(points, intrinsics, noise)
    visibility = detections[:, FITTED, 2]
    low = visibility < 0.5
    assert abs(low.float().mean().item() - 0.25) < 0.02
    assert (visibility > 0).all()  # low visibility is still reported, as the detector's is
    exact = _detect(points, intrinsics, DetectionNoise.none())
    error = (detections - exact)[:, FITTED, :2][~low]
    box = person_box_heights(exact[..., :2])[:, None].expand(-1, int(FITTED.sum()))[~low]
    assert abs((error / box[:, None]).std().item() - 0.02) < 0.002


def test_swap_and_miss_rates():
    points, intrinsics = _scene(batch=2000)
    exact = _detect(points, intrinsics, DetectionNoise.none())
    noise = DetectionNoise(position_error=0.0, outlier_rate=0.0, outlier_error=0.0, low_visibility_rate=0.0,
                           miss_rate=0.1, swap_rate=0.2)
    detections = _detect(points, intrinsics, noise)
    missed = (detections[..., 2] == 0).all(1)
    swapped = (detections[..., :2] == exact[:, BLAZEPOSE_MIRRORED, :2]).all((1, 2)) & ~missed
    kept = (detections[..., :2] == exact[..., :2]).all((1, 2))
    assert abs(missed.float().mean().item() - 0.1) < 0.02
    assert abs(swapped.float().sum().item() / (~missed).sum().item() - 0.2) < 0.03
    assert (missed | swapped | kept).all()


def test_bad_inputs_get_one_line_errors():
    points, intrinsics = _scene()
    with pytest.raises(ValueError, match="`points` must be a"):
        simulate_detections(points[:, :10], intrinsics, (SIZE, SIZE))
    with pytest.raises(ValueError, match="`intrinsics` must be a"):
        simulate_detections(points, intrinsics[:2], (SIZE, SIZE))
    with pytest.raises(ValueError, match="`image_size` must be"):
        simulate_detections(points, intrinsics, (SIZE, 0))
    with pytest.raises(TypeError, match="`noise` must be"):
        simulate_detections(points, intrinsics, (SIZE, SIZE), noise={"miss_rate": 0.1})
    with pytest.raises(ValueError, match="miss_rate is a probability"):
        DetectionNoise(miss_rate=1.5)
    with pytest.raises(ValueError, match="position_error must be a finite number"):
        DetectionNoise(position_error=float("nan"))


def test_defaults_are_the_measured_rates():
    measured = json.loads((Path(__file__).parents[1] / "training" / "detection_noise.json").read_text())
    assert asdict(DetectionNoise()) == pytest.approx(measured["detection_noise"])
