"""`training/round_trip_bias.py`: the bias statistic, its sign-flip test, and the displacements it is fed."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))

from round_trip_bias import bias, round_trip_displacements, sign_flip_test  # noqa: E402

from scorehoi_diffusers import ScoreHOIPipeline  # noqa: E402
from scorehoi_diffusers.cli import DEFAULT_PIPELINE  # noqa: E402
from scorehoi_diffusers.data.synthetic import generate_dataset  # noqa: E402


def test_bias_is_the_mean_displacements_length_averaged_over_points():
    displacements = np.zeros((4, 2, 3))
    displacements[:, 0] = [3.0, 4.0, 0.0]  # every scene moves point 0 the same way: bias 5
    displacements[:2, 1], displacements[2:, 1] = [1.0, 0.0, 0.0], [-1.0, 0.0, 0.0]  # point 1 scatters: bias 0
    assert bias(displacements) == pytest.approx(2.5)
    assert bias(displacements[:, 0]) == pytest.approx(5.0)  # a single point: (S, 3)


def test_sign_flip_test_tells_a_shared_pull_from_scatter():
    rng = np.random.default_rng(1)
    scatter = rng.normal(size=(200, 22, 3))
    unbiased = sign_flip_test(scatter, 2000, np.random.default_rng(0))
    pulled = sign_flip_test(scatter + [0.3, 0.0, 0.0], 2000, np.random.default_rng(0))
    assert unbiased["p_value"] > 0.05
    assert pulled["p_value"] < 0.001
    assert pulled["bias_cm"] > 2 * pulled["null_bias_mean_cm"]
    assert unbiased["scatter_cm"] == pytest.approx(np.linalg.norm(scatter, axis=-1).mean())
    # Seeded: the same generator gives the same p-value.
    assert sign_flip_test(scatter, 2000, np.random.default_rng(0)) == unbiased


def test_exact_inversion_shrinks_the_measured_round_trip():
    """On two synthetic scenes of the shipped pipeline: plain inversion moves the truth, fixed-point iterations
    bring it back (the displacements the script's statistics read are the round trip's)."""
    pipeline = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipeline.set_progress_bar_config(disable=True)
    data = generate_dataset(2, seed=0, split="train", start=24600, image_size=192, body=pipeline.body_model,
                            progress=False)
    plain_joints, plain_object = round_trip_displacements(pipeline, data, 1, inversion_iterations=0)
    exact_joints, exact_object = round_trip_displacements(pipeline, data, 1, inversion_iterations=3)
    assert plain_joints.shape == (2, 22, 3) and plain_object.shape == (2, 3)
    plain, exact = np.linalg.norm(plain_joints, axis=-1).mean(), np.linalg.norm(exact_joints, axis=-1).mean()
    assert plain > 0.05  # cm: the plain round trip moves the body
    assert exact < plain / 5
    assert np.linalg.norm(exact_object, axis=-1).mean() < np.linalg.norm(plain_object, axis=-1).mean() / 5


def test_direct_inversion_and_the_keypoint_condition_are_the_scripts_options():
    """``direct_inversion=True`` returns the truth (to float precision, cm); with ``keypoints`` the simulated
    detections enter the condition and the keypoint guidance's plain inversion moves it, the keypoint fit off."""
    pipeline = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipeline.set_progress_bar_config(disable=True)
    data = generate_dataset(2, seed=0, split="train", start=24600, image_size=192, body=pipeline.body_model,
                            progress=False)
    direct_joints, direct_object = round_trip_displacements(pipeline, data, 1, direct_inversion=True)
    assert np.abs(direct_joints).max() < 1e-4 and np.abs(direct_object).max() < 1e-4
    keypoint_joints, _ = round_trip_displacements(pipeline, data, 1, keypoints=True)
    direct_keypoint_joints, _ = round_trip_displacements(pipeline, data, 1, keypoints=True, direct_inversion=True)
    assert np.abs(keypoint_joints).max() > 1e-2
    assert np.abs(direct_keypoint_joints).max() < 1e-4
