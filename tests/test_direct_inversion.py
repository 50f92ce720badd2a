"""Direct inversion: `ddim_inversion.inversion_offsets` and the guidance config's ``direct_inversion``."""
import pytest
import torch
from test_exact_inversion import GRID, denoise, run_counting_passes, toy_noise

from scorehoi_diffusers import GuidanceConfig, ScoreHOIPipeline
from scorehoi_diffusers.cli import DEFAULT_PIPELINE
from scorehoi_diffusers.data.synthetic import sample_params
from scorehoi_diffusers.pipelines.ddim_inversion import InversionPath, inversion_offsets, invert


def denoise_with_offsets(scheduler, path: InversionPath, predict) -> torch.Tensor:
    """Unguided η = 0 denoising from the path's top, each step plus its offset."""
    offsets, latents = inversion_offsets(scheduler, path), path.samples[-1]
    for t in reversed(GRID[1:]):
        latents = scheduler.step(predict(latents, t), t, latents).prev_sample + offsets[t]
    return latents


def test_the_path_holds_every_state_and_the_noise_read_there(scheduler):
    x0 = torch.randn(2, 331, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    path = invert(toy_noise, scheduler, x0, GRID, 1, return_path=True)
    assert path.timesteps == GRID and len(path.samples) == len(path.noise) == len(GRID)
    assert torch.equal(path.samples[0], x0)
    assert torch.equal(path.samples[-1], invert(toy_noise, scheduler, x0, GRID, 1))
    for t, sample, noise in zip(GRID, path.samples, path.noise):
        assert torch.equal(noise, toy_noise(sample, t))


@pytest.mark.parametrize("iterations", [0, 1])
def test_offsets_make_unguided_denoising_retrace_the_path_exactly(scheduler, iterations):
    """Whatever the inversion's own error (plain inversion: millimetres-scale here), the round trip closes."""
    x0 = torch.randn(3, 331, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    path = invert(toy_noise, scheduler, x0, GRID, iterations, return_path=True)
    without = (denoise(scheduler, path.samples[-1], toy_noise) - x0).abs().max().item()
    with_offsets = (denoise_with_offsets(scheduler, path, toy_noise) - x0).abs().max().item()
    assert without > 1e-6
    assert with_offsets < 1e-12


def test_offsets_are_zero_when_the_inversion_is_already_exact(scheduler):
    """A noise prediction that depends on neither sample nor timestep makes plain inversion exact: nothing to
    correct."""
    x0 = torch.randn(2, 331, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    path = invert(lambda latents, t: torch.full_like(latents, 0.3), scheduler, x0, GRID, return_path=True)
    assert max(offset.abs().max().item() for offset in inversion_offsets(scheduler, path).values()) < 1e-12


def test_direct_inversion_costs_no_extra_denoiser_pass(pipe, monkeypatch):
    """The noise the inversion reads at the path's top is reused by the first denoising step (were it the wrong
    noise, the round trips below would not close)."""
    steps = len(GRID) - 1
    _, plain = run_counting_passes(pipe, monkeypatch, 2, guidance_config=GuidanceConfig())
    _, direct = run_counting_passes(pipe, monkeypatch, 2, guidance_config=GuidanceConfig(direct_inversion=True))
    assert plain == direct == 2 * 2 * steps


def test_an_old_config_without_the_field_loads_with_direct_inversion_off():
    config = GuidanceConfig.from_dict({"scale": 10.0, "inversion_iterations": 1})
    assert config.direct_inversion is False


def test_direct_inversion_changes_the_guided_result_but_stays_deterministic(pipe):
    from test_pipeline import holding_params

    def run(direct: bool, seed: int = 0) -> torch.Tensor:
        config = GuidanceConfig(scale=10.0, direct_inversion=direct)
        return pipe(initial_params=holding_params(2), object="box", num_cycles=2, guidance_config=config, eta=0.5,
                    generator=torch.Generator().manual_seed(seed)).params.body_pose

    assert torch.equal(run(True), run(True))
    assert not torch.equal(run(True), run(False))


@pytest.mark.parametrize("value", [1, "yes", None])
def test_a_non_boolean_direct_inversion_is_named(value):
    with pytest.raises(ValueError, match="GuidanceConfig.direct_inversion must be True or False"):
        GuidanceConfig(direct_inversion=value)


def test_shipped_prior_round_trip_with_direct_inversion_returns_the_truth():
    """Issue 17's round trip, with direct inversion: guidance off, the ground truth comes back to float precision,
    where plain inversion moves the joints by millimetres."""
    pipe = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipe.set_progress_bar_config(disable=True)
    truth, _, _ = sample_params(4, seed=0, objects=["ball"], split="train", start=20000)
    before = pipe.body_model(truth).joints[:, :22]

    def drift(direct: bool) -> float:
        config = GuidanceConfig(direct_inversion=direct, inversion_iterations=0)
        out = pipe(initial_params=truth, object="ball", num_cycles=2, guidance_scale=0.0, guidance_config=config)
        after = pipe.body_model(out.params).joints[:, :22]
        return ((after - after[:, :1]) - (before - before[:, :1])).norm(dim=-1).max().item()

    assert drift(False) > 1e-3  # metres
    assert drift(True) < 1e-6
