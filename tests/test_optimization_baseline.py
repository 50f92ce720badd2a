"""The "w/o diffusion" ablation: gradient descent on the guidance loss, the pipeline's step budget, no denoiser."""
import numpy as np
import pytest
import torch

from scorehoi_diffusers.body import BodyModel
from scorehoi_diffusers.cli import build_parser
from scorehoi_diffusers.evaluation import ABLATION_MODES, format_table
from scorehoi_diffusers.guidance import GuidanceConfig
from scorehoi_diffusers.models.denoiser import ScoreHOIDenoiser
from scorehoi_diffusers.optimization_baseline import DEFAULT_STEP_SIZE, GuidanceOptimization
from scorehoi_diffusers.params import HOIParams
from scorehoi_diffusers.pipelines.pipeline_output import ScoreHOIPipelineOutput
from scorehoi_diffusers.pipelines.pipeline_scorehoi import ScoreHOIPipeline
from scorehoi_diffusers.schedulers.scheduling_guided_ddim import GuidedDDIMScheduler

# Contact and penetration only: the object starts half inside the body, so the loss has somewhere to go.
CONFIG = GuidanceConfig(scale=1.0, contact=0.5, penetration=1.0, floor=0.0)


@pytest.fixture(scope="module")
def pipeline(fake_smplh_path):
    torch.manual_seed(0)
    pipe = ScoreHOIPipeline(ScoreHOIDenoiser(), GuidedDDIMScheduler(), BodyModel(model_path=str(fake_smplh_path)))
    pipe.set_progress_bar_config(disable=True)
    return pipe


def initial_params(batch: int = 2) -> HOIParams:
    params = HOIParams.identity(batch)
    params.object_translation = torch.tensor([[0.0, 0.0, 0.05], [0.05, 0.0, 0.1]])[:batch]
    return params


@pytest.fixture
def no_denoiser(pipeline, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the optimisation baseline called the denoiser")

    monkeypatch.setattr(pipeline.denoiser, "forward", refuse)


def run(pipeline, step_size=DEFAULT_STEP_SIZE, **kwargs):
    kwargs = {"num_cycles": 2, "guidance_config": CONFIG, **kwargs}
    return GuidanceOptimization(pipeline, step_size)(initial_params=initial_params(), object="box", **kwargs)


def test_uses_the_pipelines_step_budget_and_never_the_denoiser(pipeline, no_denoiser, monkeypatch):
    calls = []
    original = ScoreHOIPipeline.guidance_x0_gradient  # the shared gradient of the guidance loss in x0

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(ScoreHOIPipeline, "guidance_x0_gradient", counted)
    output = run(pipeline, num_cycles=3, t_start=50, stride=5)
    assert isinstance(output, ScoreHOIPipelineOutput)
    # The pipeline's grid 0, 5, ..., 50 has 10 guided denoising steps per cycle.
    assert len(pipeline.scheduler.refinement_timesteps(50, 5)) - 1 == 10
    assert len(calls) == 3 * 10
    assert output.guidance_loss_history.shape == (3, 2) and len(output.contact_history) == 3
    calls.clear()
    run(pipeline, num_cycles=2, t_start=40, stride=10)
    assert len(calls) == 2 * 4


def test_guidance_loss_decreases(pipeline, no_denoiser):
    start = run(pipeline, step_size=1e-12, num_cycles=1, refresh_contacts=False).guidance_loss_history[0]
    history = run(pipeline, step_size=0.01, num_cycles=3, refresh_contacts=False).guidance_loss_history
    assert torch.isfinite(history).all()
    assert (history[0] < start).all() and (history[-1] < history[0]).all()


def test_is_deterministic_and_moves_the_estimate(pipeline, no_denoiser):
    first, second = run(pipeline), run(pipeline)
    for name in ("body_vertices", "object_vertices", "guidance_loss_history"):
        assert torch.equal(getattr(first, name), getattr(second, name))
    assert not torch.equal(first.params.object_translation, first.initial_params.object_translation)
    assert torch.equal(first.initial_params.object_translation, initial_params().object_translation)
    unchanged = run(pipeline, num_cycles=0)
    assert torch.allclose(unchanged.params.object_translation, initial_params().object_translation, atol=1e-6)


@pytest.mark.parametrize("step_size", [0.0, -1.0, float("nan"), float("inf"), True, "0.1"])
def test_rejects_bad_step_sizes(pipeline, step_size):
    with pytest.raises(ValueError, match="`step_size`"):
        GuidanceOptimization(pipeline, step_size)


def test_rejects_bad_arguments_as_the_pipeline_does(pipeline):
    with pytest.raises(ValueError, match="`num_cycles`"):
        run(pipeline, num_cycles=-1)


def test_evaluate_and_the_cli_have_the_mode():
    assert "optimization" in ABLATION_MODES
    table = format_table([{"mode": "optimization", "num_cycles": 2, "step_size": 0.1}])
    assert "w/o diffusion (optimisation only)" in table
    args = build_parser().parse_args(["evaluate", "--mode", "optimization", "--step-size", "0.5"])
    assert args.mode == "optimization" and args.step_size == 0.5


def test_evaluate_scores_the_optimization_mode(pipeline, no_denoiser):
    import datasets

    from scorehoi_diffusers.data.schema import params_to_fields
    from scorehoi_diffusers.evaluation import evaluate

    params = initial_params()
    columns = {name: list(value) for name, value in params_to_fields(params).items()}
    columns.update(human_contact=[np.zeros(pipeline.body_model.num_downsampled, np.float32)] * 2,
                   object_contact=[np.zeros(64, np.float32)] * 2, floor_contact=[0.0, 0.0],
                   object_name=["box"] * 2, sample_id=["a", "b"])
    dataset = datasets.Dataset.from_dict(columns)
    kwargs = dict(mode="optimization", num_cycles=1, num_surface_samples=100, guidance_config=CONFIG)
    small = evaluate(pipeline, dataset, step_size=1e-9, **kwargs)
    large = evaluate(pipeline, dataset, step_size=0.05, **kwargs)
    assert small["mode"] == "optimization" and small["step_size"] == 1e-9 and small["num_cycles"] == 1
    assert small["cd_object"] != large["cd_object"]


def test_a_diverging_step_size_is_an_error_not_a_result(pipeline):
    with pytest.raises(ValueError, match="`step_size`=1e\\+12 made gradient descent diverge"):
        run(pipeline, step_size=1e12)


def test_a_body_grown_past_the_bound_is_an_error(pipeline, monkeypatch):
    import scorehoi_diffusers.optimization_baseline as baseline

    monkeypatch.setattr(baseline, "MAX_BODY_EXTENT", 0.01)
    with pytest.raises(ValueError, match="a body over 0.01 m"):
        run(pipeline)
