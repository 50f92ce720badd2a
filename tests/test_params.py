import math

import pytest
import roma
import torch

from scorehoi_diffusers.params import (
    BETAS_SLICE,
    OBJECT_TRANSLATION_SLICE,
    X0_DIM,
    HOIParamCodec,
    HOIParams,
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_rotation_6d,
    rotation_6d_to_matrix,
)


def random_params(batch: int, seed: int = 0) -> HOIParams:
    generator = torch.Generator().manual_seed(seed)

    return HOIParams(
        global_orient=roma.random_rotmat(batch, generator=generator),
        body_pose=roma.random_rotmat((batch, 21), generator=generator),
        left_hand_pose=roma.random_rotmat((batch, 15), generator=generator),
        right_hand_pose=roma.random_rotmat((batch, 15), generator=generator),
        betas=torch.randn(batch, 10, generator=generator),
        object_rotation=roma.random_rotmat(batch, generator=generator),
        object_translation=torch.randn(batch, 3, generator=generator) * 0.3,
        camera_translation=torch.randn(batch, 3, generator=generator) + torch.tensor([0.0, 0.0, 4.0]),
    )


def test_round_trip_params_to_x0_to_params():
    codec = HOIParamCodec.default()
    params = random_params(5)
    x0 = codec.encode(params)
    assert x0.shape == (5, X0_DIM)
    back = codec.decode(x0, camera_translation=params.camera_translation)
    for name in ["global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "object_rotation"]:
        torch.testing.assert_close(getattr(back, name), getattr(params, name), atol=1e-6, rtol=0)
    torch.testing.assert_close(back.betas, params.betas, atol=1e-6, rtol=0)
    torch.testing.assert_close(back.object_translation, params.object_translation, atol=0, rtol=0)
    torch.testing.assert_close(codec.encode(back), x0, atol=1e-6, rtol=0)


def test_layout_matches_design():
    codec = HOIParamCodec([-2.0] * 10, [2.0] * 10)
    params = HOIParams.identity(2)
    params.body_pose[:, 3] = axis_angle_to_matrix(torch.tensor([0.0, 0.0, math.pi / 2]))
    params.object_translation[:] = torch.tensor([0.1, -0.2, 0.3])
    params.betas[:] = 2.0
    x0 = codec.encode(params)
    # Root identity -> [R00, R01, R10, R11, R20, R21] = [1, 0, 0, 1, 0, 0].
    torch.testing.assert_close(x0[0, 0:6], torch.tensor([1.0, 0, 0, 1, 0, 0]))
    # Body joint index 3 (1-based joint 4 = left knee) sits at 6 + 3 * 6. Rz(90): columns (0,1,0), (-1,0,0).
    torch.testing.assert_close(x0[0, 24:30], torch.tensor([0.0, -1, 1, 0, 0, 0]), atol=1e-6, rtol=0)
    torch.testing.assert_close(x0[0, OBJECT_TRANSLATION_SLICE], torch.tensor([0.1, -0.2, 0.3]))
    torch.testing.assert_close(x0[0, BETAS_SLICE], torch.ones(10))


def test_betas_normalisation_maps_range_to_unit_interval():
    codec = HOIParamCodec([-1.0] * 10, [3.0] * 10)
    betas = torch.tensor([[-1.0] * 10, [1.0] * 10, [3.0] * 10])
    normalized = codec.normalize_betas(betas)
    torch.testing.assert_close(normalized[:, 0], torch.tensor([-1.0, 0.0, 1.0]))
    torch.testing.assert_close(codec.denormalize_betas(normalized), betas)


@pytest.mark.parametrize("angle", [0.0, 1e-8, math.pi - 1e-6, math.pi])
def test_identity_and_half_turn_give_no_nan(angle):
    axis = torch.nn.functional.normalize(torch.tensor([[0.3, -0.5, 0.8], [1.0, 0.0, 0.0]]), dim=-1)
    axis_angle = (axis * angle).requires_grad_(True)
    matrix = axis_angle_to_matrix(axis_angle)
    six = matrix_to_rotation_6d(matrix)
    back = matrix_to_axis_angle(rotation_6d_to_matrix(six))
    assert torch.isfinite(back).all()
    torch.testing.assert_close(axis_angle_to_matrix(back), matrix, atol=1e-5, rtol=0)
    matrix.sum().backward()
    assert torch.isfinite(axis_angle.grad).all()


def test_decode_is_a_rotation_for_any_six_numbers():
    codec = HOIParamCodec.default()
    x0 = torch.randn(4, X0_DIM, generator=torch.Generator().manual_seed(3)) * 5
    params = codec.decode(x0)
    assert roma.is_rotation_matrix(params.body_pose, epsilon=1e-4)
    assert roma.is_rotation_matrix(params.object_rotation, epsilon=1e-4)


def test_batch_shapes_and_indexing():
    params = random_params(6)
    assert params.batch_size == 6
    assert params[2].batch_size == 1
    assert params[1:4].betas.shape == (3, 10)
    joined = HOIParams.cat([params[:2], params[2:]])
    torch.testing.assert_close(joined.betas, params.betas)
    assert params.full_pose_axis_angle().shape == (6, 52, 3)
    assert HOIParamCodec.default().encode(params[0:1]).shape == (1, X0_DIM)


def test_wrong_width_is_a_clear_error():
    codec = HOIParamCodec.default()
    with pytest.raises(ValueError, match=r"`x0` must have shape \(B, 331\)"):
        codec.decode(torch.zeros(2, 330))
    with pytest.raises(ValueError, match="rotation_6d"):
        rotation_6d_to_matrix(torch.zeros(2, 5))


def test_bad_params_are_named():
    params = random_params(2)
    with pytest.raises(ValueError, match="HOIParams.body_pose"):
        HOIParams(**{**params.__dict__, "body_pose": torch.zeros(2, 20, 3, 3)})
    with pytest.raises(ValueError, match="batch size"):
        HOIParams(**{**params.__dict__, "betas": torch.zeros(3, 10)})
    with pytest.raises(TypeError, match="HOIParams.betas"):
        HOIParams(**{**params.__dict__, "betas": [0.0] * 10})


def test_codec_rejects_bad_statistics():
    with pytest.raises(ValueError, match="betas_min"):
        HOIParamCodec([0.0] * 9, [1.0] * 10)
    with pytest.raises(ValueError, match="greater"):
        HOIParamCodec([1.0] * 10, [1.0] * 10)


def test_x0_slices_tile_the_vector_with_one_6d_block_per_joint():
    from scorehoi_diffusers import params as layout
    from scorehoi_diffusers.skeleton import NUM_JOINTS

    slices = [layout.ROOT_SLICE, layout.BODY_POSE_SLICE, layout.LEFT_HAND_SLICE, layout.RIGHT_HAND_SLICE,
              layout.OBJECT_ROTATION_SLICE, layout.OBJECT_TRANSLATION_SLICE, layout.BETAS_SLICE]
    assert slices[0].start == 0 and slices[-1].stop == X0_DIM
    assert all(a.stop == b.start for a, b in zip(slices, slices[1:]))
    # Joint j of SMPL-H (root, body, left hand, right hand) is x0[6j : 6j + 6]: the denoiser's part tokens rely on it.
    assert layout.RIGHT_HAND_SLICE.stop == 6 * NUM_JOINTS
    assert layout.BETAS_SLICE.stop - layout.BETAS_SLICE.start == layout.NUM_BETAS
