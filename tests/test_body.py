import numpy as np
import pytest
import roma
import torch
from conftest import make_fake_smplh_arrays

from scorehoi_diffusers.body import BodyModel, load_body_arrays
from scorehoi_diffusers.params import HOIParams


def random_params(batch, seed=0, scale=0.6):
    generator = torch.Generator().manual_seed(seed)

    def rotations(*shape):
        return roma.rotvec_to_rotmat(torch.randn(*shape, 3, generator=generator) * scale)

    return HOIParams(
        global_orient=rotations(batch), body_pose=rotations(batch, 21), left_hand_pose=rotations(batch, 15),
        right_hand_pose=rotations(batch, 15), betas=torch.randn(batch, 10, generator=generator),
        object_rotation=rotations(batch), object_translation=torch.zeros(batch, 3),
        camera_translation=torch.tensor([[0.1, 0.2, 3.0]]).expand(batch, 3).clone(),
    )


@pytest.fixture(scope="module")
def fake_body(fake_smplh_path):
    return BodyModel(model_path=str(fake_smplh_path))


def test_forward_shapes_and_frames(fake_body):
    params = random_params(3)
    pelvis = fake_body(params)
    assert pelvis.vertices.shape == (3, fake_body.num_vertices, 3)
    assert pelvis.joints.shape == (3, 52, 3)
    assert pelvis.landmarks.shape == (3, 21, 3)
    torch.testing.assert_close(pelvis.joints[:, 0], torch.zeros(3, 3), atol=1e-6, rtol=0)
    camera = fake_body(params, frame="camera")
    torch.testing.assert_close(camera.vertices, pelvis.vertices + params.camera_translation[:, None])
    assert fake_body.faces.shape[1] == 3


def test_downsample_count_follows_paper_proportion(fake_body):
    expected = round(431 * fake_body.num_vertices / 6890)
    assert fake_body.num_downsampled == expected
    assert len(torch.unique(fake_body.downsample_index)) == expected


def test_subset_skinning_equals_smplx_forward(fake_body):
    params = random_params(4, seed=1)
    full = fake_body(params)
    vertices, joints = fake_body.skin_subset(params)
    torch.testing.assert_close(vertices, full.downsampled_vertices, atol=1e-5, rtol=0)
    torch.testing.assert_close(joints, full.joints, atol=1e-5, rtol=0)


def test_subset_skinning_is_differentiable(fake_body):
    params = random_params(2, seed=2)
    params.betas.requires_grad_(True)
    params.body_pose.requires_grad_(True)
    vertices, _ = fake_body.skin_subset(params)
    vertices.square().sum().backward()
    assert torch.isfinite(params.betas.grad).all() and params.betas.grad.abs().sum() > 0
    assert torch.isfinite(params.body_pose.grad).all() and params.body_pose.grad.abs().sum() > 0


def test_downsample_matches_gather(fake_body):
    vertices = torch.randn(2, fake_body.num_vertices, 3)
    torch.testing.assert_close(fake_body.downsample(vertices), vertices[:, fake_body.downsample_index])
    with pytest.raises(ValueError, match="vertices"):
        fake_body.downsample(torch.zeros(2, 5, 3))


def test_save_does_not_copy_body_data(fake_body, tmp_path):
    fake_body.save_pretrained(tmp_path)
    from safetensors.torch import load_file

    saved = load_file(tmp_path / "diffusion_pytorch_model.safetensors")
    assert set(saved) == {"downsample_index"}
    reloaded = BodyModel.from_pretrained(tmp_path)
    params = random_params(2, seed=3)
    torch.testing.assert_close(reloaded.skin_subset(params)[0], fake_body.skin_subset(params)[0], atol=0, rtol=0)


def test_missing_path_is_clear(tmp_path):
    with pytest.raises(FileNotFoundError, match="model_path"):
        BodyModel(model_path=str(tmp_path / "nowhere.npz"))
    with pytest.raises(FileNotFoundError, match="No SMPL-H file"):
        BodyModel(model_path=str(tmp_path))


def test_pickle_is_refused(tmp_path):
    path = tmp_path / "SMPLH_MALE.pkl"
    path.write_bytes(b"not read")
    with pytest.raises(ValueError, match="pickle"):
        BodyModel(model_path=str(path))


def test_missing_fields_and_object_arrays_are_named(tmp_path):
    arrays = make_fake_smplh_arrays()
    del arrays["posedirs"]
    np.savez(tmp_path / "a.npz", **arrays)
    with pytest.raises(ValueError, match="posedirs"):
        load_body_arrays(tmp_path / "a.npz")
    arrays = make_fake_smplh_arrays()
    arrays["weights"] = np.array([object()] * 3, dtype=object)
    np.savez(tmp_path / "b.npz", **arrays)
    with pytest.raises(ValueError, match="unpickling"):
        load_body_arrays(tmp_path / "b.npz")


def test_nan_and_bad_faces_are_named(tmp_path):
    arrays = make_fake_smplh_arrays()
    arrays["v_template"][0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **arrays)
    with pytest.raises(ValueError, match="v_template"):
        load_body_arrays(tmp_path / "nan.npz")
    arrays = make_fake_smplh_arrays()
    arrays["f"] = np.zeros((0, 3), dtype=np.int64)
    np.savez(tmp_path / "nofaces.npz", **arrays)
    with pytest.raises(ValueError, match="'f'"):
        load_body_arrays(tmp_path / "nofaces.npz")


def test_landmark_skinning_equals_smplx_forward_and_keeps_skin_subset(fake_body):
    params = random_params(3, seed=4)
    full = fake_body(params)
    vertices, joints, landmarks = fake_body.skin_subset_landmarks(params)
    torch.testing.assert_close(landmarks, full.landmarks, atol=1e-5, rtol=0)
    subset_vertices, subset_joints = fake_body.skin_subset(params)
    # The same subset outputs, bit for bit, whether the landmarks are skinned along or not.
    assert torch.equal(vertices, subset_vertices) and torch.equal(joints, subset_joints)


def test_blazepose_points_from_either_forward_are_nan_free_and_agree(fake_body):
    from scorehoi_diffusers.body import blazepose_points
    from scorehoi_diffusers.skeleton import BLAZEPOSE_BODY_INDEX, BLAZEPOSE_FITTED

    params = random_params(2, seed=5)
    full = fake_body(params)
    from_forward = blazepose_points(full.joints, full.landmarks)
    _, joints, landmarks = fake_body.skin_subset_landmarks(params)
    from_subset = blazepose_points(joints, landmarks)
    assert from_forward.shape == (2, 33, 3) and torch.isfinite(from_subset).all()
    torch.testing.assert_close(from_subset, from_forward, atol=1e-5, rtol=0)
    fitted = torch.tensor(BLAZEPOSE_FITTED)
    assert torch.equal(from_forward[:, ~fitted], torch.zeros(2, int((~fitted).sum()), 3))
    left_shoulder = BLAZEPOSE_BODY_INDEX[11]
    assert torch.equal(from_forward[:, 11], full.joints[:, left_shoulder])
    with pytest.raises(ValueError, match="landmarks"):
        blazepose_points(full.joints, full.landmarks[:, :5])


def test_landmark_skinning_on_the_standin_body():
    from scorehoi_diffusers.body import blazepose_points

    body = BodyModel()
    params = random_params(2, seed=6)
    full = body(params)
    _, joints, landmarks = body.skin_subset_landmarks(params)
    torch.testing.assert_close(landmarks, full.landmarks, atol=1e-5, rtol=0)
    torch.testing.assert_close(blazepose_points(joints, landmarks), blazepose_points(full.joints, full.landmarks),
                               atol=1e-5, rtol=0)
