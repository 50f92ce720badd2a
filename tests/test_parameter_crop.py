"""Crops for samples with no picture: `crop_intrinsics_around` against `crop_camera`, and the crop that parameter-only
training samples get (`training/simulated_keypoints.parameter_crop_intrinsics`) against the rendered crop."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from simulated_keypoints import parameter_crop_intrinsics  # noqa: E402

from scorehoi_diffusers.body import BodyModel  # noqa: E402
from scorehoi_diffusers.camera import project_points  # noqa: E402
from scorehoi_diffusers.data.crop import crop_camera, crop_intrinsics_around  # noqa: E402
from scorehoi_diffusers.data.schema import PARAM_FIELDS, sample_to_params  # noqa: E402
from scorehoi_diffusers.data.synthetic import generate_samples  # noqa: E402
from scorehoi_diffusers.objects import load_object  # noqa: E402


def test_crop_around_points_is_crop_camera_of_their_box():
    generator = torch.Generator().manual_seed(0)
    points = torch.randn(3, 20, 3, generator=generator, dtype=torch.float64) * 0.4 + torch.tensor([0.0, 0.0, 3.0])
    K = torch.tensor([[500.0, 0.0, 120.0], [0.0, 480.0, 100.0], [0.0, 0.0, 1.0]], dtype=torch.float64).repeat(3, 1, 1)
    ours = crop_intrinsics_around(points, K, out_size=64, scale_factor=1.3)
    pixels = project_points(points, K)
    for k in range(3):
        low, high = pixels[k].amin(0), pixels[k].amax(0)
        box = [low[0].item(), low[1].item(), (high - low)[0].item(), (high - low)[1].item()]
        reference = crop_camera(K[k].numpy(), box, out_size=64, scale_factor=1.3).intrinsics
        np.testing.assert_allclose(ours[k].numpy(), reference, atol=1e-9)
        inside = project_points(points[k : k + 1], ours[k : k + 1])[0]
        assert inside.min() > -0.5 and inside.max() < 63.5  # the margin keeps every point in the crop


def test_parameter_crop_matches_the_rendered_crop():
    # The rendered sample's box comes from its masks, the parameter-only sample's from its projected vertices and
    # object keypoints: the two crops agree to a few per cent in scale and a pixel or two in position at 64 px.
    samples = list(generate_samples(6, seed=0, image_size=128, start=20000))
    params = sample_to_params({name: np.stack([s[name] for s in samples]) for name in PARAM_FIELDS})
    keypoints = torch.stack([load_object(s["object_name"]).keypoints for s in samples])
    intrinsics = torch.as_tensor(np.stack([s["intrinsics"] for s in samples]))
    vertices = BodyModel()(params, frame="camera").vertices
    ours = parameter_crop_intrinsics(vertices, params, keypoints, intrinsics, 64).double().numpy()
    for sample, crop in zip(samples, ours):
        reference = crop_camera(sample["intrinsics"], sample["bbox"], out_size=64).intrinsics
        assert crop[0, 0] == pytest.approx(reference[0, 0], rel=0.04)
        np.testing.assert_allclose(crop[:2, 2], reference[:2, 2], atol=2.5)
