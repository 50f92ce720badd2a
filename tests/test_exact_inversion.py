"""Exact (fixed-point) DDIM inversion: `ddim_inversion.invert` and the pipeline's `inversion_iterations`."""
import pytest
import torch

from scorehoi_diffusers import GuidedDDIMScheduler, ScoreHOIPipeline
from scorehoi_diffusers.cli import DEFAULT_PIPELINE
from scorehoi_diffusers.data.synthetic import sample_params
from scorehoi_diffusers.pipelines.ddim_inversion import invert
from scorehoi_diffusers.pipelines.noise_prediction import NoisePrediction

GRID = list(range(0, 51, 5))


def toy_noise(latents: torch.Tensor, timestep: int) -> torch.Tensor:
    """A smooth ε that depends on both the sample and the timestep, as a denoiser's does."""
    return torch.tanh(0.8 * latents + 0.01 * timestep) - 0.3 * latents.flip(-1)


def denoise(scheduler: GuidedDDIMScheduler, latents: torch.Tensor, predict) -> torch.Tensor:
    """Unguided η = 0 DDIM denoising from the top of ``GRID`` back to 0."""
    for t in reversed(GRID[1:]):
        latents = scheduler.step(predict(latents, t), t, latents).prev_sample
    return latents


def run_counting_passes(pipe, monkeypatch, num_cycles: int, **kwargs) -> tuple:
    """``pipe`` on one held-still sample of the box: its output and how many denoiser passes it made."""
    from test_pipeline import holding_params

    passes = []
    original = NoisePrediction.__call__
    with monkeypatch.context() as patch:
        patch.setattr(NoisePrediction, "__call__", lambda self, *args: passes.append(1) or original(self, *args))
        output = pipe(initial_params=holding_params(1), object="box", num_cycles=num_cycles, **kwargs)
    return output, len(passes)


def test_fixed_point_iterations_make_denoising_return_to_the_start(scheduler):
    x0 = torch.randn(3, 331, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    errors = [(denoise(scheduler, invert(toy_noise, scheduler, x0, GRID, k), toy_noise) - x0).abs().max().item()
              for k in (0, 1, 3)]
    assert errors[0] > 1e-3
    assert errors[1] < errors[0] / 5
    assert errors[2] < errors[0] * 1e-5


def test_zero_iterations_is_plain_ddim_inversion(scheduler):
    x0 = torch.randn(2, 331, generator=torch.Generator().manual_seed(1))
    plain = x0
    for t, t_next in zip(GRID[:-1], GRID[1:]):
        plain = scheduler.invert_step(toy_noise(plain, t), t, plain, next_timestep=t_next).next_sample
    assert torch.equal(invert(toy_noise, scheduler, x0, GRID), plain)


def test_iterations_cost_one_noise_prediction_each(scheduler):
    calls = []

    def counted(latents, timestep):
        calls.append(timestep)
        return toy_noise(latents, timestep)

    invert(counted, scheduler, torch.zeros(1, 331), GRID, 2)
    assert calls[:3] == [0, 5, 5] and len(calls) == 3 * (len(GRID) - 1)


@pytest.mark.parametrize("value", [-1, 1.5, True, "2", [], [0, -1], (1, 0.5)])
def test_bad_inversion_iterations_are_named(pipe, value):
    from test_pipeline import holding_params

    with pytest.raises(ValueError, match="`inversion_iterations` must be an integer >= 0") as error:
        pipe(initial_params=holding_params(1), object="box", num_cycles=1, inversion_iterations=value)
    assert "\n" not in str(error.value)


def test_iterations_need_epsilon_prediction():
    scheduler = GuidedDDIMScheduler(prediction_type="v_prediction")
    with pytest.raises(ValueError, match="prediction_type='epsilon'"):
        invert(toy_noise, scheduler, torch.zeros(1, 331), GRID, 1)


def test_same_generator_same_output_with_iterations(pipe):
    from test_pipeline import holding_params

    state = torch.get_rng_state()
    outs = [pipe(initial_params=holding_params(2), object="box", num_cycles=2, eta=0.5, inversion_iterations=2,
                 generator=torch.Generator().manual_seed(seed)).params.body_pose for seed in (3, 3, 4)]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], outs[2])


def test_denoiser_passes_per_call(pipe, monkeypatch):
    _, passes = run_counting_passes(pipe, monkeypatch, 2, inversion_iterations=3)
    steps = len(GRID) - 1
    assert passes == 2 * (steps * (1 + 3) + steps)


def test_the_guidance_config_gives_the_default_and_the_argument_overrides_it(pipe, monkeypatch):
    """No argument: the guidance config's ``inversion_iterations``; an argument (0 included) wins over it."""
    from scorehoi_diffusers import GuidanceConfig

    def passes(**kwargs) -> int:
        return run_counting_passes(pipe, monkeypatch, 1, **kwargs)[1]

    steps = len(GRID) - 1
    exact = GuidanceConfig(inversion_iterations=2)
    assert passes() == 2 * steps  # the test pipeline's config: plain inversion
    assert passes(guidance_config=exact) == steps * (1 + 2) + steps
    assert passes(guidance_config={"inversion_iterations": 2}) == steps * (1 + 2) + steps
    assert passes(guidance_config=exact, inversion_iterations=0) == 2 * steps
    assert passes(inversion_iterations=1) == steps * (1 + 1) + steps


def test_shipped_pipeline_inverts_exactly_without_keypoints_only():
    """The shipped defaults: one fixed-point iteration without keypoints (chosen on validation scenes by
    ``training/exact_inversion.py``'s rule), plain inversion with them (not tested with keypoints)."""
    pipe = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    assert pipe.default_guidance_config().inversion_iterations == 1
    assert pipe.default_guidance_config(keypoints=True).inversion_iterations == 0


def test_a_schedule_gives_each_cycle_its_iterations_and_repeats_its_last(pipe, monkeypatch):
    """``[0, 0, 1]``: plain inversion in cycles 1-2 (so N = 2 is today's plain result), one iteration after them."""

    def run(num_cycles, iterations):
        out, passes = run_counting_passes(pipe, monkeypatch, num_cycles, inversion_iterations=iterations)
        return out.params.body_pose, passes

    steps = len(GRID) - 1
    plain_two, plain_passes = run(2, 0)
    scheduled_two, scheduled_passes = run(2, [0, 0, 1])
    assert torch.equal(plain_two, scheduled_two) and scheduled_passes == plain_passes == 2 * 2 * steps
    scheduled_four, passes = run(4, [0, 0, 1])
    assert passes == 2 * 2 * steps + 2 * 3 * steps  # cycles 3 and 4 take the last entry, 1
    plain_four, _ = run(4, 0)
    assert not torch.equal(scheduled_four, plain_four)


def test_shipped_prior_round_trip_of_a_ground_truth_sample_stays_put():
    """Issue 17's check: a ground-truth sample, inverted and denoised with guidance off, must not move."""
    pipe = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    truth, _, _ = sample_params(4, seed=0, objects=["ball"], split="train", start=20000)
    before = pipe.body_model(truth).joints[:, :22]

    def drift(iterations: int) -> float:
        out = pipe(initial_params=truth, object="ball", num_cycles=2, guidance_scale=0.0,
                   inversion_iterations=iterations)
        after = pipe.body_model(out.params).joints[:, :22]
        return ((after - after[:, :1]) - (before - before[:, :1])).norm(dim=-1).mean().item()

    plain, exact = drift(0), drift(2)
    assert plain > 1e-3  # metres: plain DDIM inversion moves the joints by millimetres
    assert exact < plain / 10
