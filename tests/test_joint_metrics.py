"""MPJPE, PA-MPJPE and the facing error: known values, invariances, batching and errors."""
import numpy as np
import pytest
import torch

from scorehoi_diffusers.metrics import facing_error_deg, mpjpe, pa_mpjpe
from scorehoi_diffusers.params import axis_angle_to_matrix


def _joints(batch=3, joints=22, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, joints, 3)) * 0.3


def _rotation(axis_angle):
    return axis_angle_to_matrix(torch.tensor(axis_angle, dtype=torch.float64)).numpy()


def test_mpjpe_ignores_the_root_position_and_counts_centimetres():
    truth = _joints()
    assert np.allclose(mpjpe(truth + np.array([1.0, -2.0, 3.0]), truth), 0.0)
    moved = truth.copy()
    moved[:, 1:] += np.array([0.0, 0.02, 0.0])  # every joint but the root 2 cm off
    assert np.allclose(mpjpe(moved, truth), 2.0 * 21 / 22)
    assert isinstance(mpjpe(truth[0], truth[0]), float)


def test_pa_mpjpe_ignores_similarity_transforms_but_not_pose_changes():
    truth = _joints()
    rotation = _rotation([0.3, -1.2, 0.5])
    transformed = 1.3 * truth @ rotation.T + np.array([0.5, 0.1, 2.0])
    assert np.allclose(pa_mpjpe(transformed, truth), 0.0, atol=1e-9)
    assert mpjpe(transformed, truth).min() > 1.0
    bent = truth.copy()
    bent[:, 5] += 0.1
    errors = pa_mpjpe(bent, truth)
    assert errors.shape == (3,) and (errors > 0.1).all()


def test_facing_error_is_the_angle_between_forward_directions():
    identity = np.eye(3)
    assert facing_error_deg(identity, identity) == pytest.approx(0.0)
    assert facing_error_deg(_rotation([0.0, np.pi, 0.0]), identity) == pytest.approx(180.0)  # seen from behind
    assert facing_error_deg(_rotation([0.0, np.pi / 2, 0.0]), identity) == pytest.approx(90.0)
    assert facing_error_deg(_rotation([0.0, 0.0, 1.0]), identity) == pytest.approx(0.0, abs=1e-6)  # roll only
    batch = np.stack([identity, _rotation([0.0, 0.5, 0.0])])
    np.testing.assert_allclose(facing_error_deg(batch, np.stack([identity, identity])), [0.0, np.degrees(0.5)])


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="must have the same shape"):
        mpjpe(_joints(joints=22), _joints(joints=21))
    with pytest.raises(ValueError, match="`root` must index"):
        mpjpe(_joints(), _joints(), root=30)
    with pytest.raises(ValueError, match="NaN"):
        pa_mpjpe(np.full((22, 3), np.nan), _joints()[0])
    with pytest.raises(ValueError, match=r"must both have shape \(3, 3\)"):
        facing_error_deg(np.eye(3), np.eye(3)[None])
