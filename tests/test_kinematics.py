"""One forward kinematics + skinning behind BodyModel.skin_subset and the synthetic rig, checked against smplx."""
import pytest
import torch
from test_body import random_params

from scorehoi_diffusers.body import BodyModel
from scorehoi_diffusers.data.synthetic.rig import _Rig
from scorehoi_diffusers.kinematics import forward_kinematics, kinematic_levels, skin_points


@pytest.fixture(scope="module")
def fake_body(fake_smplh_path):
    return BodyModel(model_path=str(fake_smplh_path))


def test_kinematic_levels_group_joints_by_depth():
    levels = kinematic_levels([-1, 0, 1, 0, 3, 4])
    assert [level.tolist() for level in levels] == [[1, 3], [2, 4], [5]]
    with pytest.raises(ValueError, match="`parents`"):
        kinematic_levels([-1, 2, 0])


def test_forward_kinematics_chains_rotations_down_the_tree():
    # A two-bone arm: a quarter turn about z at the root swings the whole chain, one at the elbow only the hand.
    joints = torch.tensor([[[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [2.0, 0.0, 0.0]]])
    quarter = torch.tensor([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    rotations = torch.stack([quarter, quarter, torch.eye(3)])[None]
    parents = torch.tensor([-1, 0, 1])
    world, posed = forward_kinematics(rotations, joints, parents)
    torch.testing.assert_close(posed[0], torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [-1.0, 1.0, 0.0]]))
    torch.testing.assert_close(world[0, 2], quarter @ quarter)
    moved = torch.tensor([[0.5, 0.5, 0.0]])
    _, shifted = forward_kinematics(rotations, joints, parents, root_position=moved)
    torch.testing.assert_close(shifted, posed + moved[:, None])
    # A point weighted fully to the hand joint moves rigidly with it.
    point = skin_points(torch.tensor([[[2.5, 0.0, 0.0]]]), torch.tensor([[0.0, 0.0, 1.0]]), world, posed, joints)
    torch.testing.assert_close(point[0, 0], torch.tensor([-1.5, 1.0, 0.0]))


def test_skin_subset_and_synthetic_rig_agree_with_smplx_forward(fake_body):
    params = random_params(3, seed=5)
    with torch.no_grad():
        full = fake_body(params)
        subset, joints = fake_body.skin_subset(params)
    torch.testing.assert_close(subset, full.downsampled_vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(joints, full.joints, atol=1e-5, rtol=0)

    rig = _Rig(fake_body)
    local = fake_body._full_rotations(params).double()
    rest = rig.rest_joints(params.betas.double())
    world_rot, world_pos = rig.forward_kinematics(local, rest)
    vertices = rig.skin("down", local, world_rot, world_pos, rest, params.betas.double())
    torch.testing.assert_close(vertices.float(), full.downsampled_vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(world_pos.float(), full.joints, atol=1e-5, rtol=0)
