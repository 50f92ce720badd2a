"""Reduced and double precision: half-precision models with float32 geometry, float64 throughout, and a compiled
denoiser that compiles once per shape over a whole pipeline call."""
import sys
from pathlib import Path

import pytest
import torch

from scorehoi_diffusers import ScoreHOIPipeline
from scorehoi_diffusers.body import BodyModel
from scorehoi_diffusers.data.synthetic import sample_params
from scorehoi_diffusers.guidance import GuidanceConfig, GuidanceInputs, guidance_loss
from scorehoi_diffusers.objects import load_object
from scorehoi_diffusers.params import X0_DIM, HOIParamCodec
from scorehoi_diffusers.precision import geometry_dtype, upcast

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
from golden_cases import PIPELINE, _example  # noqa: E402

HALF_DTYPES = (torch.float16, torch.bfloat16)


@pytest.fixture(scope="module")
def body():
    return BodyModel()


@pytest.fixture(scope="module")
def params(body):
    return sample_params(4, seed=0, split="test", body=body)[0]


def test_geometry_dtype_is_at_least_float32():
    assert geometry_dtype(torch.float16) == torch.float32
    assert geometry_dtype(torch.bfloat16) == torch.float32
    assert geometry_dtype(torch.float32) == torch.float32
    assert geometry_dtype(torch.float64) == torch.float64
    x = torch.ones(2)
    assert upcast(x) is x
    assert upcast(x.half()).dtype == torch.float32


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_body_skins_half_params_in_float32(body, params, dtype):
    half = params.to(dtype=dtype)
    points, joints = body.skin_subset(half)
    reference_points, reference_joints = body.skin_subset(half.to(dtype=torch.float32))
    assert points.dtype == joints.dtype == dtype
    assert torch.equal(points, reference_points.to(dtype))
    assert torch.equal(joints, reference_joints.to(dtype))
    vertices = body(half).vertices
    assert vertices.dtype == dtype
    assert torch.equal(vertices, body(half.to(dtype=torch.float32)).vertices.to(dtype))


def test_body_in_float64_matches_float32(params):
    body64 = BodyModel().to(torch.float64)
    assert body64.compute_dtype == torch.float64
    points, _ = body64.skin_subset(params.to(dtype=torch.float64))
    reference, _ = BodyModel().skin_subset(params)
    assert points.dtype == torch.float64
    torch.testing.assert_close(points, reference.double(), atol=1e-5, rtol=0)


def test_body_to_half_keeps_a_float32_template():
    body = BodyModel().to(torch.float16)
    assert body.sub_v_template.dtype == body.smplh.v_template.dtype == torch.float32
    assert BodyModel().to("cpu", torch.bfloat16).compute_dtype == torch.float32


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_signed_distance_and_codec_compute_half_inputs_in_float32(params, dtype):
    template = load_object("chair")
    points = (torch.rand(2, 50, 3, generator=torch.Generator().manual_seed(0)) - 0.5).to(dtype)
    sdf = template.signed_distance(points)
    assert sdf.dtype == dtype
    assert torch.equal(sdf, template.signed_distance(points.float()).to(dtype))
    rotation, translation = params.object_rotation[:2], params.object_translation[:2]
    rotation, translation = rotation.to(dtype), translation.to(dtype)
    posed = template.signed_distance_posed(points, rotation, translation)
    expected = template.signed_distance_posed(points.float(), rotation.float(), translation.float())
    assert torch.equal(posed, expected.to(dtype))

    codec = HOIParamCodec.default()
    x0 = codec.encode(params).to(dtype)
    decoded = codec.decode(x0)
    assert decoded.dtype == dtype
    assert torch.equal(decoded.global_orient, codec.decode(x0.float()).global_orient.to(dtype))
    assert codec.encode(params.to(dtype=dtype)).dtype == dtype


@pytest.mark.parametrize("dtype", HALF_DTYPES)
def test_guidance_loss_computes_half_inputs_in_float32(body, params, dtype):
    template = load_object("ball")
    points, _ = body.skin_subset(params)
    object_points = template.pose(template.keypoints, params.object_rotation, params.object_translation)
    sdf = template.signed_distance_posed(points, params.object_rotation, params.object_translation)
    generator = torch.Generator().manual_seed(0)
    fields = dict(
        body_points=points, object_points=object_points, body_object_sdf=sdf,
        human_contact=torch.rand(sdf.shape, generator=generator),
        object_contact=torch.rand(object_points.shape[:2], generator=generator),
        floor_contact=torch.rand(sdf.shape[:1], generator=generator),
    )
    half = {name: value.to(dtype) for name, value in fields.items()}
    total, terms = guidance_loss(GuidanceInputs(**half), GuidanceConfig())
    reference, reference_terms = guidance_loss(
        GuidanceInputs(**{name: value.float() for name, value in half.items()}), GuidanceConfig()
    )
    assert total.dtype == dtype and set(terms) == set(reference_terms) == {"contact", "penetration", "floor"}
    assert torch.equal(total, reference.to(dtype))


@pytest.fixture(scope="module")
def float32_output():
    pipe = ScoreHOIPipeline.from_pretrained(PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    return pipe(**_example(), num_cycles=1)


# Largest body-vertex difference to the float32 run (on this CPU: float16 3 mm, bfloat16 38 mm, mostly the
# regressor's initial estimate in 8 mantissa bits; float64 0.001 mm), with a margin.
TOLERANCE_M = {torch.float16: 0.01, torch.bfloat16: 0.1, torch.float64: 1e-5}


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64], ids=str)
def test_pipeline_runs_in_reduced_and_double_precision(float32_output, dtype):
    # diffusers 0.42 names `torch_dtype` `dtype` (the old name still works, with a FutureWarning).
    pipe = ScoreHOIPipeline.from_pretrained(PIPELINE, dtype=dtype)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.denoiser.dtype == pipe.regressor.dtype == dtype
    assert pipe.body_model.compute_dtype == geometry_dtype(dtype)
    output = pipe(**_example(), num_cycles=1)
    assert output.body_vertices.dtype == output.params.dtype == geometry_dtype(dtype)
    assert torch.isfinite(output.body_vertices).all() and torch.isfinite(output.guidance_loss_history).all()
    error = (output.body_vertices.double() - float32_output.body_vertices.double()).abs().max().item()
    assert error < TOLERANCE_M[dtype]


def test_pipeline_to_half_runs(float32_output):
    pipe = ScoreHOIPipeline.from_pretrained(PIPELINE).to(torch.float16)
    pipe.set_progress_bar_config(disable=True)
    output = pipe(**_example(), num_cycles=1)
    assert pipe.denoiser.dtype == torch.float16 and pipe.body_model.compute_dtype == torch.float32
    error = (output.body_vertices - float32_output.body_vertices).abs().max().item()
    assert error < TOLERANCE_M[torch.float16]


def test_timestep_as_tensor_gives_the_same_noise():
    pipe = ScoreHOIPipeline.from_pretrained(PIPELINE)
    sample = torch.randn(2, X0_DIM, generator=torch.Generator().manual_seed(0))
    keypoints = load_object("ball").keypoints.expand(2, -1, -1)
    with torch.no_grad():
        condition = pipe.denoiser.encode_condition(object_keypoints=keypoints)
        by_int = pipe.denoiser(sample, 45, condition=condition).sample
        by_tensor = pipe.denoiser(sample, torch.tensor(45), condition=condition).sample
    assert torch.equal(by_int, by_tensor)


def test_compiled_denoiser_compiles_once_per_shape_over_a_call(float32_output):
    """Dynamo's guards, and so its recompiles, do not depend on the backend; "eager" keeps this test fast and
    needs no C compiler."""
    from torch._dynamo.utils import counters

    pipe = ScoreHOIPipeline.from_pretrained(PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    torch._dynamo.reset()
    counters.clear()
    pipe.denoiser = torch.compile(pipe.denoiser, backend="eager")
    output = pipe(**_example(), num_cycles=1)  # 10 inversion and 10 guided steps: 20 forwards, 20 timesteps
    assert counters["stats"]["unique_graphs"] == 1
    pipe(**_example(), num_cycles=1)
    assert counters["stats"]["unique_graphs"] == 1
    assert torch.equal(output.body_vertices, float32_output.body_vertices)
    torch._dynamo.reset()
