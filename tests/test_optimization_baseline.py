"""The "w/o diffusion" ablation: gradient descent on the guidance loss, the pipeline's step budget, no denoiser."""
import numpy as np
import pytest
import torch

import scorehoi_diffusers.optimization_baseline as baseline
from scorehoi_diffusers.cli import build_parser
from scorehoi_diffusers.contacts import Contacts
from scorehoi_diffusers.evaluation import ABLATION_MODES, format_table
from scorehoi_diffusers.guidance import GuidanceConfig
from scorehoi_diffusers.optimization_baseline import DEFAULT_STEP_SIZE, GuidanceOptimization
from scorehoi_diffusers.params import HOIParams, axis_angle_to_matrix
from scorehoi_diffusers.pipelines.pipeline_output import ScoreHOIPipelineOutput
from scorehoi_diffusers.pipelines.pipeline_scorehoi import ScoreHOIPipeline

# Contact and penetration only: the object starts half inside the body, so the loss has somewhere to go.
CONFIG = GuidanceConfig(scale=1.0, contact=0.5, penetration=1.0, floor=0.0)


@pytest.fixture(scope="module")
def pipeline(untrained_pipeline):
    return untrained_pipeline


def initial_params(batch: int = 2) -> HOIParams:
    params = HOIParams.identity(batch)
    params.object_translation = torch.tensor([[0.0, 0.0, 0.05], [0.05, 0.0, 0.1]])[:batch]
    return params


@pytest.fixture
def no_denoiser(pipeline, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the optimisation baseline called the denoiser")

    monkeypatch.setattr(pipeline.denoiser, "forward", refuse)


def run(pipeline, step_size=DEFAULT_STEP_SIZE, pose_prior_weight=None, **kwargs):
    kwargs = {"num_cycles": 2, "guidance_config": CONFIG, "initial_params": initial_params(), **kwargs}
    return GuidanceOptimization(pipeline, step_size, pose_prior_weight)(object="box", **kwargs)


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


@pytest.mark.parametrize("add_contacts", [True, False])
def test_refreshes_contacts_as_the_pipeline_does(pipeline, no_denoiser, add_contacts):
    """The same contact handling: each cycle's labels are the estimator's latest (``add_contacts=True``) or their
    running minimum (``False``: contacts are released, never added)."""
    calls = []

    def estimator(state):
        batch, count = state.body_points.shape[:2]
        human = torch.zeros(batch, count)
        human[:, len(calls)::5] = 1.0
        calls.append(human)
        return Contacts(human=human, object=torch.ones(batch, state.object_points.shape[1]), floor=torch.ones(batch))

    output = run(pipeline, num_cycles=2, contact_estimator=estimator, add_contacts=add_contacts)
    assert len(calls) == 3
    expected = calls[1] if add_contacts else torch.minimum(calls[0], calls[1])
    torch.testing.assert_close(output.contact_history[1].human, expected)
    assert output.contacts.human.sum() == (calls[2].sum() if add_contacts else 0)


@pytest.mark.parametrize("step_size", [0.0, -1.0, float("nan"), float("inf"), True, "0.1"])
def test_rejects_bad_step_sizes(pipeline, step_size):
    with pytest.raises(ValueError, match="`step_size` must be a finite number > 0"):
        GuidanceOptimization(pipeline, step_size)


@pytest.mark.parametrize("weight", [-1.0, float("nan"), float("inf"), True, "0.1"])
def test_rejects_bad_pose_prior_weights(pipeline, weight):
    with pytest.raises(ValueError, match="`pose_prior_weight` must be a finite number >= 0"):
        GuidanceOptimization(pipeline, pose_prior_weight=weight)
    with pytest.raises(TypeError, match="`pose_prior` must be a GaussianPosePrior"):
        GuidanceOptimization(pipeline, pose_prior="prior.safetensors")


def test_defaults_are_the_validation_choices_for_the_input(pipeline):
    assert GuidanceOptimization(pipeline).settings(keypoints=False) == (
        baseline.DEFAULT_STEP_SIZE, baseline.DEFAULT_POSE_PRIOR_WEIGHT
    )
    assert GuidanceOptimization(pipeline).settings(keypoints=True) == (
        baseline.KEYPOINT_STEP_SIZE, baseline.KEYPOINT_POSE_PRIOR_WEIGHT
    )
    assert GuidanceOptimization(pipeline, 0.1, 0.0).settings(keypoints=True) == (0.1, 0.0)


def bent_params(batch: int = 2) -> HOIParams:
    """``initial_params`` with every body joint bent by 1.5 rad about x: a pose far from any training pose."""
    params = initial_params(batch)
    bend = torch.tensor([1.5, 0.0, 0.0])
    params.body_pose = axis_angle_to_matrix(bend.expand(batch, 21, 3)).contiguous()
    return params


def test_the_pose_prior_pulls_the_body_pose_towards_training_poses(pipeline, no_denoiser, monkeypatch):
    def optimise(weight):
        optimization = GuidanceOptimization(pipeline, 1e-4, weight)
        output = optimization(initial_params=bent_params(), object="box", num_cycles=2, guidance_config=CONFIG)
        return optimization, output

    _, without = optimise(0.0)
    optimization, with_prior = optimise(1.0)
    prior = optimization.pose_prior
    assert (prior(with_prior.params.body_pose) < prior(without.params.body_pose) - 1.0).all()
    history = with_prior.guidance_term_history["pose_prior"]
    assert history.shape == (2, 2) and (history[1] < history[0]).all()
    assert "pose_prior" not in without.guidance_term_history
    # Weight 0 never touches the prior, so the baseline without it is what it was before the prior existed.
    monkeypatch.setattr(GuidanceOptimization, "pose_prior_gradient", lambda *args: pytest.fail("prior used"))
    _, again = optimise(0.0)
    assert torch.equal(again.body_vertices, without.body_vertices)


def test_rejects_bad_arguments_as_the_pipeline_does(pipeline):
    with pytest.raises(ValueError, match="`num_cycles`"):
        run(pipeline, num_cycles=-1)


def test_evaluate_and_the_cli_have_the_mode():
    assert "optimization" in ABLATION_MODES
    table = format_table([{"mode": "optimization", "num_cycles": 2, "step_size": 0.1}])
    assert "w/o diffusion (optimisation only)" in table
    args = build_parser().parse_args(["evaluate", "--mode", "optimization", "--step-size", "0.5"])
    assert args.mode == "optimization" and args.step_size == 0.5 and args.pose_prior_weight is None
    args = build_parser().parse_args(["evaluate", "--mode", "optimization", "--pose-prior-weight", "0.01"])
    assert args.pose_prior_weight == 0.01


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
    assert small["pose_prior_weight"] == baseline.DEFAULT_POSE_PRIOR_WEIGHT  # no keypoints: that default
    prior = evaluate(pipeline, dataset, step_size=1e-9, pose_prior_weight=0.5, **kwargs)
    assert prior["pose_prior_weight"] == 0.5
    assert small["cd_object"] != large["cd_object"]


def test_a_diverging_step_size_is_an_error_not_a_result(pipeline):
    with pytest.raises(ValueError, match="`step_size`=1e\\+12 made gradient descent diverge"):
        run(pipeline, step_size=1e12)


def test_a_body_grown_past_the_bound_is_an_error(pipeline, monkeypatch):
    monkeypatch.setattr(baseline, "MAX_BODY_EXTENT", 0.01)
    with pytest.raises(ValueError, match="a body over 0.01 m"):
        run(pipeline)


def test_a_photo_without_masks_starts_where_the_pipeline_starts():
    """Like the pipeline, the baseline takes a photo with only an object box (the detector finds the person and
    its keypoints, GrabCut cuts the object); with no cycles both return the same start."""
    import json

    from scorehoi_diffusers.cli import DEFAULT_EXAMPLES, DEFAULT_PIPELINE, load_example

    pipe = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    folder = DEFAULT_EXAMPLES / "cameraman"
    box = json.loads((folder / "example.json").read_text())["object_box"]
    image = load_example(folder)["image"]
    ours = GuidanceOptimization(pipe)(image=image, object="stool", object_box=box, num_cycles=0)
    theirs = pipe(image=image, object="stool", object_box=box, num_cycles=0)
    assert torch.isfinite(ours.body_vertices).all()
    torch.testing.assert_close(ours.body_vertices, theirs.body_vertices, rtol=0, atol=0)
    with pytest.raises(ValueError, match="object_box") as error:
        GuidanceOptimization(pipe)(image=image, object="stool", num_cycles=0)
    assert "\n" not in str(error.value)
