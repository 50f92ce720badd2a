"""Tests for the licence-free stand-in body and its SMPL-H .npz asset."""
import numpy as np
import pytest
import torch

from scorehoi_diffusers.skeleton import JOINT_NAMES, LANDMARK_NAMES, PARENTS
from scorehoi_diffusers.standin_body import SHAPE_DIRECTION_NAMES, STANDIN_BODY_PATH, load_standin_arrays
from tools.standin_body import generate_standin_body, write_standin_body

SMPLH_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]
LEFT_ELBOW, LEFT_WRIST, RIGHT_SHOULDER = 18, 20, 17


@pytest.fixture(scope="module")
def arrays():
    return load_standin_arrays()


@pytest.fixture(scope="module")
def model(arrays):
    smplx = pytest.importorskip("smplx")
    from smplx.body_models import Struct

    data = dict(arrays)
    # smplx keeps only 10 betas unless shapedirs has 300 columns.
    shapedirs = data["shapedirs"]
    data["shapedirs"] = np.concatenate(
        [shapedirs, np.zeros(shapedirs.shape[:2] + (300 - shapedirs.shape[2],), shapedirs.dtype)], axis=2)
    vertex_ids = {str(n): int(i) for n, i in zip(arrays["landmark_names"], arrays["landmark_indices"])}
    return smplx.SMPLH(model_path=str(STANDIN_BODY_PATH), data_struct=Struct(**data), ext="npz",
                       use_pca=False, flat_hand_mean=False, num_betas=10, vertex_ids=vertex_ids,
                       gender="neutral")


def forward(model, batch=1, body_pose=None, left_hand_pose=None, betas=None):
    """Vertices (B, V, 3) and joints (B, 73, 3) for axis-angle inputs; zeros where not given."""
    def zeros(n):
        return torch.zeros(batch, n)

    with torch.no_grad():
        out = model(global_orient=zeros(3), body_pose=zeros(63) if body_pose is None else body_pose,
                    left_hand_pose=zeros(45) if left_hand_pose is None else left_hand_pose,
                    right_hand_pose=zeros(45), betas=zeros(10) if betas is None else betas)
    return out.vertices, out.joints


def test_shipped_file_is_small_pickle_free_and_smplh_shaped(arrays):
    assert STANDIN_BODY_PATH.stat().st_size < 5e6
    v = arrays["v_template"].shape[0]
    assert 6000 <= v <= 7500
    expected = {
        "v_template": (v, 3), "shapedirs": (v, 3, len(SHAPE_DIRECTION_NAMES)), "posedirs": (v, 3, 459),
        "J_regressor": (52, v), "weights": (v, 52), "kintree_table": (2, 52), "J": (52, 3),
        "hands_componentsl": (45, 45), "hands_componentsr": (45, 45), "hands_meanl": (45,),
        "hands_meanr": (45,), "landmark_names": (len(LANDMARK_NAMES),),
        "landmark_indices": (len(LANDMARK_NAMES),), "joint_names": (52,),
    }
    for key, shape in expected.items():
        assert arrays[key].shape == shape, key
        assert arrays[key].dtype != object, key
    assert arrays["f"].ndim == 2 and arrays["f"].shape[1] == 3
    assert np.issubdtype(arrays["f"].dtype, np.integer)
    assert arrays["f"].min() == 0 and arrays["f"].max() == v - 1
    assert arrays["landmark_names"].dtype.kind == "U"
    assert arrays["landmark_indices"].dtype == np.int64
    assert tuple(arrays["joint_names"]) == JOINT_NAMES
    assert all(np.isfinite(a).all() for a in arrays.values() if a.dtype.kind == "f")


def test_mesh_is_closed_and_human_sized(arrays):
    trimesh = pytest.importorskip("trimesh")
    mesh = trimesh.Trimesh(arrays["v_template"], arrays["f"], process=False)
    assert mesh.is_watertight and mesh.volume > 0
    lo, hi = arrays["v_template"].min(0), arrays["v_template"].max(0)
    assert 1.65 < hi[1] - lo[1] < 1.75  # standing height
    assert -1.16 < lo[1] < -1.08  # soles, like SMPL-H's template
    assert 1.6 < hi[0] - lo[0] < 1.9  # T-pose arm span
    assert abs(arrays["J"][0, 1] + 0.22) < 0.03  # pelvis joint


def test_rows_of_regressor_and_weights_are_convex(arrays):
    for key in ("J_regressor", "weights"):
        assert arrays[key].min() >= 0.0
        np.testing.assert_allclose(arrays[key].sum(1), 1.0, atol=1e-6)
    np.testing.assert_allclose(arrays["J_regressor"] @ arrays["v_template"], arrays["J"], atol=1e-6)


def test_kintree_parents_follow_smplh(arrays):
    kintree = arrays["kintree_table"]
    assert kintree[0, 0] == 4294967295
    assert kintree[0, 1:22].tolist() == SMPLH_PARENTS[1:]
    assert kintree[1].tolist() == list(range(52))
    for wrist, first in ((20, 22), (21, 37)):
        for base in range(first, first + 15, 3):
            assert kintree[0, base : base + 3].tolist() == [wrist, base, base + 1]
    assert kintree[0, 1:].tolist() == list(PARENTS[1:])


def test_hand_pca_is_orthonormal_and_mirrored(arrays):
    for side in "lr":
        components = arrays[f"hands_components{side}"]
        np.testing.assert_allclose(components @ components.T, np.eye(45), atol=1e-10)
    mirror = np.tile([1.0, -1.0, -1.0], 15)
    np.testing.assert_allclose(arrays["hands_meanr"], arrays["hands_meanl"] * mirror)
    assert 0.0 < np.abs(arrays["hands_meanl"]).max() < 0.5  # a gentle relaxed curl


def test_landmarks_are_valid_vertices_in_the_right_places(arrays):
    idx, v = arrays["landmark_indices"], arrays["v_template"]
    assert tuple(arrays["landmark_names"]) == LANDMARK_NAMES
    assert len(set(idx.tolist())) == len(idx) and idx.min() >= 0 and idx.max() < len(v)
    at = {str(n): v[i] for n, i in zip(arrays["landmark_names"], idx)}
    assert at["nose"][2] > at["leye"][2] and at["nose"][1] > 0.35
    assert at["leye"][0] > 0 > at["reye"][0] and at["lear"][0] > 0 > at["rear"][0]
    assert at["LHeel"][2] < at["LBigToe"][2] and at["LHeel"][1] < -1.05
    assert abs(at["LBigToe"][0]) < abs(at["LSmallToe"][0])  # the big toe is on the inside
    assert at["lmiddle"][0] > at["lindex"][0] > at["lthumb"][0] > 0.75 and at["rmiddle"][0] < -0.85


def test_loads_through_smplx_and_forward_is_sane(model, arrays):
    vertices, joints = forward(model, batch=2)
    assert vertices.shape == (2, arrays["v_template"].shape[0], 3) and joints.shape == (2, 73, 3)
    assert torch.isfinite(vertices).all()
    # Only the relaxed mean hand differs from the template at zero pose.
    body = arrays["weights"][:, 22:].sum(1) < 1e-9
    np.testing.assert_allclose(vertices[0].numpy()[body], arrays["v_template"][body], atol=1e-5)
    np.testing.assert_allclose(joints[0, :22].numpy(), arrays["J"][:22], atol=1e-5)
    # The extra joints are the landmark vertices, in smplx's order.
    np.testing.assert_allclose(joints[0, 52:].numpy(), vertices[0, arrays["landmark_indices"]].numpy())


def test_height_beta_changes_height_and_girth_beta_changes_width(model):
    betas = torch.zeros(3, 10)
    betas[1, 0], betas[2, 1] = 1.0, 1.0
    vertices, _ = forward(model, batch=3, betas=betas)
    height = vertices[:, :, 1].amax(1) - vertices[:, :, 1].amin(1)
    assert 0.05 < height[1] - height[0] < 0.08
    waist = (vertices[0, :, 1] - (-0.05)).abs() < 0.03
    width = vertices[:, waist, 0].amax(1) - vertices[:, waist, 0].amin(1)
    assert width[2] - width[0] > 0.01 and abs(height[2] - height[0]) < 0.01


def test_every_shape_direction_moves_the_body_smoothly(arrays):
    shapedirs, faces = arrays["shapedirs"], arrays["f"]
    v = arrays["v_template"]
    edges = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    rest = np.linalg.norm(v[edges[:, 0]] - v[edges[:, 1]], axis=1)
    for k, name in enumerate(SHAPE_DIRECTION_NAMES):
        assert np.linalg.norm(shapedirs[:, :, k], axis=1).max() > 0.005, name
        shaped = v + 2.0 * shapedirs[:, :, k]
        length = np.linalg.norm(shaped[edges[:, 0]] - shaped[edges[:, 1]], axis=1)
        assert (length - rest).max() < 0.03, name  # no tearing at two units of beta


def test_elbow_bends_the_forearm_but_not_the_other_arm(model, arrays):
    pose = torch.zeros(1, 63)
    pose[0, 3 * (LEFT_ELBOW - 1) + 1] = -1.2  # flex the left elbow forwards
    rest_v, rest_j = forward(model)
    bent_v, bent_j = forward(model, body_pose=pose)
    assert (bent_j[0, LEFT_WRIST] - rest_j[0, LEFT_WRIST]).norm() > 0.15
    assert (bent_j[0, 22:37] - rest_j[0, 22:37]).norm(dim=-1).min() > 0.15  # all left-hand joints
    assert bent_j[0, LEFT_WRIST, 2] > rest_j[0, LEFT_WRIST, 2] + 0.15  # forearm swings to the front
    right_arm = torch.as_tensor(arrays["v_template"][:, 0] < -0.3)
    assert (bent_v[0, right_arm] - rest_v[0, right_arm]).abs().max() < 1e-6
    right_chain = [RIGHT_SHOULDER, RIGHT_SHOULDER + 2, RIGHT_SHOULDER + 4]  # shoulder, elbow, wrist
    assert (bent_j[0, right_chain] - rest_j[0, right_chain]).abs().max() < 1e-6


def test_finger_rotation_bends_that_finger_only(model, arrays):
    names = [str(n) for n in arrays["landmark_names"]]
    hand = torch.zeros(1, 45)
    hand[0, 0:3] = torch.tensor([0.0, 0.0, -1.2])  # left index knuckle curls towards the palm (-y)
    _, rest = forward(model)
    _, curled = forward(model, left_hand_pose=hand)
    index, middle = 52 + names.index("lindex"), 52 + names.index("lmiddle")
    assert rest[0, index, 1] - curled[0, index, 1] > 0.03
    assert (curled[0, middle] - rest[0, middle]).abs().max() < 1e-6


def test_load_and_write_reject_bad_paths(tmp_path):
    with pytest.raises(FileNotFoundError, match="standin_body"):
        load_standin_arrays(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="npz"):
        write_standin_body(tmp_path / "body.pkl")
    with pytest.raises(ValueError, match="resolution"):
        generate_standin_body(resolution=0.5)


def test_coarse_generation_runs_and_is_deterministic():
    pytest.importorskip("skimage")
    pytest.importorskip("fast_simplification")
    first = generate_standin_body(resolution=0.01, target_vertices=1000, seed=3)
    assert abs(len(first["v_template"]) - 1000) < 100
    np.testing.assert_allclose(first["weights"].sum(1), 1.0, atol=1e-9)
    np.testing.assert_allclose(first["J_regressor"].sum(1), 1.0, atol=1e-9)
    second = generate_standin_body(resolution=0.01, target_vertices=1000, seed=3)
    for key in first:
        np.testing.assert_array_equal(first[key], second[key], err_msg=key)


def test_generator_reproduces_the_shipped_asset():
    # The shipped asset must be exactly what the generator makes, so that changes to tools/standin_body are
    # caught here rather than silently diverging from the file everyone loads.
    pytest.importorskip("skimage")
    pytest.importorskip("fast_simplification")
    shipped = load_standin_arrays()
    generated = generate_standin_body()
    assert set(generated) == set(shipped)
    for key in shipped:
        if np.issubdtype(shipped[key].dtype, np.floating):
            # Same machine: bit-identical. Another CPU's numpy SIMD kernels round the same float64 sums differently:
            # on 2026-11-30 a different machine's v_template differed by up to 4.7e-16 m, so floats are compared to
            # 1e-12 (any real change to the generator moves vertices by far more); integer arrays stay exact.
            np.testing.assert_allclose(generated[key], shipped[key], rtol=0, atol=1e-12, err_msg=key)
        else:
            np.testing.assert_array_equal(generated[key], shipped[key], err_msg=key)
