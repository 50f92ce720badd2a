import numpy as np
import pytest

from scorehoi_diffusers.point_sampling import farthest_point_indices


def test_farthest_point_indices_are_deterministic_and_spread():
    points = np.random.default_rng(0).normal(size=(500, 3))
    first = farthest_point_indices(points, 40, 1)
    assert np.array_equal(first, farthest_point_indices(points, 40, 1))
    assert first[0] == 1 and len(set(first.tolist())) == 40
    # Every sample is the point farthest from the samples before it.
    for i in range(2, 40):
        distance = np.linalg.norm(points[:, None] - points[first[:i]][None], axis=-1).min(axis=1)
        assert distance[first[i]] == distance.max()


def test_a_start_position_counts_as_chosen():
    points = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [3.0, 0.0, 0.0], [-2.0, 0.0, 0.0]])
    # From x = 0.9: farthest is -2; then the point farthest from both -2 and 0.9 is 3; then 0 (0.9 away from 1).
    assert farthest_point_indices(points, 3, np.array([0.9, 0.0, 0.0])).tolist() == [3, 2, 0]
    assert farthest_point_indices(points, 2, 0).tolist() == [0, 2]


@pytest.mark.parametrize("count", [0, 5])
def test_bad_count_is_clear(count):
    with pytest.raises(ValueError, match="`count`"):
        farthest_point_indices(np.zeros((4, 3)), count, 0)


def test_bad_points_and_start_are_clear():
    with pytest.raises(ValueError, match="`points`"):
        farthest_point_indices(np.zeros((4, 2)), 1, 0)
    with pytest.raises(ValueError, match="`start`"):
        farthest_point_indices(np.zeros((4, 3)), 1, 7)
