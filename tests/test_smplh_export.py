"""The SMPL-H .npz export: smplx alone rebuilds the pipeline's camera-space meshes from it."""
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from scorehoi_diffusers import BodyModel, GuidedDDIMScheduler, ScoreHOIPipeline
from scorehoi_diffusers.export import export_reconstruction
from scorehoi_diffusers.objects import load_object
from scorehoi_diffusers.params import axis_angle_to_matrix
from scorehoi_diffusers.smplh_export import smplh_arrays
from scorehoi_diffusers.standin_body import load_standin_arrays

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_pipeline import holding_params, small_denoiser  # noqa: E402

smplx = pytest.importorskip("smplx")


def smplx_body(model_path: str, gender: str):
    """smplx's own SMPL-H layer on the stand-in file, loaded as `tests/test_standin_body.py` does."""
    from smplx.body_models import Struct

    arrays = load_standin_arrays()
    data = dict(arrays)
    shapedirs = data["shapedirs"]  # smplx keeps only 10 betas unless shapedirs has 300 columns
    data["shapedirs"] = np.concatenate(
        [shapedirs, np.zeros(shapedirs.shape[:2] + (300 - shapedirs.shape[2],), shapedirs.dtype)], axis=2)
    vertex_ids = {str(n): int(i) for n, i in zip(arrays["landmark_names"], arrays["landmark_indices"])}
    return smplx.SMPLH(model_path=model_path, data_struct=Struct(**data), ext="npz", use_pca=False,
                       flat_hand_mean=False, num_betas=10, vertex_ids=vertex_ids, gender=gender)


@pytest.fixture(scope="module")
def reconstruction():
    body = BodyModel()
    pipeline = ScoreHOIPipeline(small_denoiser(), GuidedDDIMScheduler(), body)
    pipeline.set_progress_bar_config(disable=True)
    params = holding_params(2, gap=0.05)
    generator = torch.Generator().manual_seed(0)
    params.betas[:] = torch.randn(2, 10, generator=generator)
    params.left_hand_pose[:] = axis_angle_to_matrix(0.3 * torch.randn(2, 15, 3, generator=generator))
    params.right_hand_pose[:] = axis_angle_to_matrix(0.3 * torch.randn(2, 15, 3, generator=generator))
    params.camera_translation[:] = torch.tensor([[0.1, -0.2, 3.0], [-0.3, 0.1, 4.5]])
    template = load_object("box")
    output = pipeline(initial_params=params, object=template, num_cycles=1)
    intrinsics = np.array([[500.0, 0, 128], [0, 500.0, 96], [0, 0, 1]])
    return body, template, output, intrinsics


def test_export_writes_npz_and_json_intrinsics(reconstruction, tmp_path):
    body, template, output, intrinsics = reconstruction
    paths = export_reconstruction(output, 1, body, template, tmp_path, "sample", intrinsics=intrinsics)
    assert paths["smplh"] == tmp_path / "sample_smplh.npz"
    record = json.loads(paths["json"].read_text())
    assert np.array_equal(record["intrinsics"], intrinsics)
    with np.load(paths["smplh"], allow_pickle=False) as exported:
        arrays = dict(exported)
    assert arrays["poses"].shape == (156,) and arrays["betas"].shape == (10,) and arrays["transl"].shape == (3,)
    assert np.array_equal(arrays["poses"], np.concatenate(
        [arrays[k] for k in ("global_orient", "body_pose", "left_hand_pose", "right_hand_pose")]))
    assert np.array_equal(arrays["intrinsics"], intrinsics)
    assert arrays["human_contact"].shape == arrays["body_downsample_index"].shape == (body.num_downsampled,)
    assert np.allclose(arrays["human_contact"], output.contacts.human[1].numpy())
    assert str(arrays["gender"]) == "neutral" and not bool(arrays["flat_hand_mean"])

    # smplx alone, from the file's values, gives the pipeline's camera-space body; the object follows R, t.
    smplh = smplx_body(str(arrays["model_path"]), str(arrays["gender"]))
    tensors = {k: torch.as_tensor(arrays[k], dtype=torch.float32)[None]
               for k in ("betas", "global_orient", "body_pose", "left_hand_pose", "right_hand_pose", "transl")}
    with torch.no_grad():
        vertices = smplh(**tensors).vertices[0]
    torch.testing.assert_close(vertices, output.body_vertices[1], atol=1e-5, rtol=0)
    objects = template.vertices.double().numpy() @ arrays["object_R"].T + arrays["object_t"]
    np.testing.assert_allclose(objects, output.object_vertices[1].double().numpy(), atol=1e-5, rtol=0)


def test_transl_is_camera_translation_less_the_rest_pelvis(reconstruction):
    body, _, output, _ = reconstruction
    arrays = smplh_arrays(output.params, 0, body)
    # The rest pelvis joint depends on the shape only: J_regressor row 0 of the shaped template.
    shaped = body.smplh.v_template + torch.einsum("vck,k->vc", body.smplh.shapedirs, output.params.betas[0])
    pelvis = (body.smplh.J_regressor[0] @ shaped).double().numpy()
    np.testing.assert_allclose(arrays["transl"], arrays["camera_translation"] - pelvis, atol=1e-6)
    assert "intrinsics" not in arrays and "human_contact" not in arrays


def test_bad_arguments_are_one_line_errors(reconstruction):
    body, _, output, _ = reconstruction
    with pytest.raises(ValueError, match="`index`"):
        smplh_arrays(output.params, 2, body)
    with pytest.raises(TypeError, match="`params`"):
        smplh_arrays({"betas": np.zeros(10)}, 0, body)
