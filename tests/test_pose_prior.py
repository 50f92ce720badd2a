"""The conventional Gaussian pose prior: shapes, gradient, what it prefers, the shipped file and its errors."""
import math

import pytest
import safetensors.torch
import torch

from scorehoi_diffusers.data.synthetic.dataset import sample_params
from scorehoi_diffusers.params import axis_angle_to_matrix
from scorehoi_diffusers.pose_prior import (
    DEFAULT_POSE_PRIOR_PATH,
    POSE_DIM,
    GaussianPosePrior,
    body_pose_axis_angle,
    fit_gaussian,
    gaussian_negative_log_likelihood,
)


@pytest.fixture(scope="module")
def shipped():
    return GaussianPosePrior.from_file()


@pytest.fixture(scope="module")
def held_out_poses():
    """``(64, 21, 3, 3)`` ground-truth poses of the synthetic *test* split, which the prior never saw."""
    params, _, _ = sample_params(64, seed=0, split="test")
    return params.body_pose


def random_poses(batch: int, seed: int = 0) -> torch.Tensor:
    """``(batch, 21, 3, 3)`` rotations of uniformly random axes and angles in [0, pi)."""
    generator = torch.Generator().manual_seed(seed)
    axes = torch.nn.functional.normalize(torch.randn(batch, 21, 3, generator=generator), dim=-1)
    angles = math.pi * torch.rand(batch, 21, 1, generator=generator)
    return axis_angle_to_matrix(axes * angles)


def test_negative_log_likelihood_has_one_value_per_sample(shipped, held_out_poses):
    nll = shipped(held_out_poses)
    assert nll.shape == (64,) and nll.dtype == torch.float32 and torch.isfinite(nll).all()
    assert shipped(held_out_poses.double()).dtype == torch.float64
    assert body_pose_axis_angle(held_out_poses).shape == (64, POSE_DIM)


def test_matches_the_gaussian_density_and_its_gradient():
    generator = torch.Generator().manual_seed(0)
    factor = torch.randn(POSE_DIM, POSE_DIM, generator=generator, dtype=torch.float64) * 0.1
    covariance = factor @ factor.T + 0.05 * torch.eye(POSE_DIM, dtype=torch.float64)
    mean = torch.randn(POSE_DIM, generator=generator, dtype=torch.float64) * 0.1
    prior = GaussianPosePrior(mean, covariance)
    poses = 0.3 * torch.randn(5, 21, 3, generator=generator, dtype=torch.float64)
    rotations = axis_angle_to_matrix(poses).requires_grad_(True)
    vector = body_pose_axis_angle(rotations)
    density = torch.distributions.MultivariateNormal(mean.float(), covariance.float())
    expected = -density.log_prob(vector.detach().float()).double()
    nll = prior(rotations)
    assert torch.allclose(nll, expected, rtol=1e-4, atol=1e-3)
    # The gradient in the prior's own vector is the precision times the offset from the mean.
    vector = vector.detach().requires_grad_(True)
    nll = gaussian_negative_log_likelihood(vector, prior.mean.double(), prior.whitening.double(),
                                           prior.log_det_covariance.double())
    (grad,) = torch.autograd.grad(nll.sum(), vector)
    analytic = (vector.detach() - prior.mean.double()) @ torch.linalg.inv(prior.covariance.double())
    assert torch.allclose(grad, analytic, rtol=1e-4, atol=1e-4)


def test_gradient_flows_to_rotation_matrices_and_points_to_the_mean(shipped, held_out_poses):
    poses = held_out_poses[:4].clone().requires_grad_(True)
    nll = shipped(poses)
    (grad,) = torch.autograd.grad(nll.sum(), poses)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    # A small step against the gradient (re-orthonormalised through axis-angle) lowers every sample's NLL.
    vector = body_pose_axis_angle(held_out_poses[:4]).requires_grad_(True)
    nll = gaussian_negative_log_likelihood(vector, shipped.mean, shipped.whitening, shipped.log_det_covariance)
    (grad,) = torch.autograd.grad(nll.sum(), vector)
    stepped = (vector - 1e-5 * grad).detach().reshape(4, 21, 3)
    assert (shipped(axis_angle_to_matrix(stepped)) < nll.detach()).all()


def test_prefers_generator_poses_over_random_ones(shipped, held_out_poses):
    plausible = shipped(held_out_poses)
    random = shipped(random_poses(64))
    assert plausible.max() < random.min()
    assert shipped(torch.eye(3).expand(1, 21, 3, 3)) < random.min()  # the rest pose is a plausible pose


def test_the_shipped_file_is_a_fit_of_training_poses(shipped):
    params, _, _ = sample_params(300, seed=0, split="train")
    fitted = fit_gaussian(body_pose_axis_angle(params.body_pose))
    # The shipped fit used 12000 training poses; the first 300 give nearly the same mean.
    assert (shipped.mean - fitted["mean"]).abs().max() < 0.1
    assert DEFAULT_POSE_PRIOR_PATH.stat().st_size < 100_000


def test_fit_is_deterministic_and_recovers_a_gaussian(tmp_path):
    generator = torch.Generator().manual_seed(1)
    scales = torch.linspace(0.1, 0.5, POSE_DIM, dtype=torch.float64)
    poses = 0.2 + scales * torch.randn(20000, POSE_DIM, generator=generator, dtype=torch.float64)
    fitted = fit_gaussian(poses.float())
    assert torch.allclose(fitted["mean"], torch.full((POSE_DIM,), 0.2), atol=0.02)
    assert torch.allclose(fitted["covariance"].diagonal(), (scales**2 + 1e-4).float(), rtol=0.05)
    first = GaussianPosePrior(**fitted).save(tmp_path / "a.safetensors")
    second = GaussianPosePrior(**fit_gaussian(poses.float())).save(tmp_path / "b.safetensors")
    assert first.read_bytes() == second.read_bytes()
    loaded = GaussianPosePrior.from_file(first)
    assert torch.equal(loaded.mean, fitted["mean"]) and torch.equal(loaded.covariance, fitted["covariance"])


def test_a_still_joint_gets_the_variance_floor():
    poses = torch.randn(100, POSE_DIM, generator=torch.Generator().manual_seed(0))
    poses[:, 5] = 0.3  # a joint axis the data never moves
    covariance = fit_gaussian(poses, variance_floor=1e-4)["covariance"]
    assert covariance[5, 5] == pytest.approx(1e-4, rel=1e-3)
    GaussianPosePrior(poses.mean(0), covariance)  # still positive definite


@pytest.mark.parametrize(
    "call,error,match",
    [
        (lambda p: p(torch.eye(3).expand(2, 20, 3, 3)), ValueError, r"`body_pose` must have shape \(B, 21, 3, 3\)"),
        (lambda p: p(torch.zeros(2, 63)), ValueError, "`body_pose` must have shape"),
        (lambda p: p([[0.0]]), TypeError, "`body_pose` must be a torch.Tensor"),
    ],
)
def test_bad_poses_are_one_line_errors(shipped, call, error, match):
    with pytest.raises(error, match=match):
        call(shipped)


def test_bad_parameters_are_one_line_errors(tmp_path):
    eye = torch.eye(POSE_DIM)
    with pytest.raises(ValueError, match="`mean` must have shape"):
        GaussianPosePrior(torch.zeros(62), eye)
    with pytest.raises(ValueError, match="`covariance` contains NaN"):
        GaussianPosePrior(torch.zeros(POSE_DIM), eye * float("nan"))
    with pytest.raises(ValueError, match="`covariance` must be positive definite"):
        GaussianPosePrior(torch.zeros(POSE_DIM), -eye)
    skew = eye.clone()
    skew[0, 1] = 0.5
    with pytest.raises(ValueError, match="`covariance` must be symmetric"):
        GaussianPosePrior(torch.zeros(POSE_DIM), skew)
    with pytest.raises(ValueError, match="`poses` needs at least 2 rows"):
        fit_gaussian(torch.zeros(1, POSE_DIM))
    with pytest.raises(ValueError, match="`poses` contains NaN"):
        fit_gaussian(torch.full((5, POSE_DIM), float("nan")))
    with pytest.raises(ValueError, match="`variance_floor` must be a finite number > 0"):
        fit_gaussian(torch.zeros(5, POSE_DIM), variance_floor=0.0)


def test_bad_files_are_one_line_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist; run training/fit_pose_prior.py"):
        GaussianPosePrior.from_file(tmp_path / "missing.safetensors")
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"not a safetensors file")
    with pytest.raises(ValueError, match="is not a readable safetensors file"):
        GaussianPosePrior.from_file(corrupt)
    partial = tmp_path / "partial.safetensors"
    safetensors.torch.save_file({"mean": torch.zeros(POSE_DIM)}, str(partial))
    with pytest.raises(ValueError, match=r"lacks \['covariance'\]"):
        GaussianPosePrior.from_file(partial)
