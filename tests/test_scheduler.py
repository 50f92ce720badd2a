"""Tests for GuidedDDIMScheduler: equivalence with DDIMScheduler, exact inversion, guidance formula, loading."""

import json

import pytest
import torch
from diffusers import DDIMScheduler

from scorehoi_diffusers.params import X0_DIM
from scorehoi_diffusers.schedulers import GuidedDDIMScheduler, scheduling_guided_ddim

DIM = X0_DIM


def _ddim_twin(scheduler: GuidedDDIMScheduler) -> DDIMScheduler:
    return DDIMScheduler(**{k: v for k, v in scheduler.config.items() if not k.startswith("_")})


def _noised(scheduler, x0, noise, t):
    alpha = scheduler.alphas_cumprod[t].double()
    return alpha.sqrt() * x0 + (1 - alpha).sqrt() * noise


def test_defaults():
    scheduler = GuidedDDIMScheduler()
    assert scheduler.config.num_train_timesteps == 1000
    assert scheduler.config.beta_schedule == "squaredcos_cap_v2"
    assert scheduler.config.prediction_type == "epsilon"
    assert scheduler.config.clip_sample is False
    assert hasattr(scheduling_guided_ddim, "SchedulerMixin")


def test_refinement_grid_and_step_size():
    scheduler = GuidedDDIMScheduler()
    assert scheduler.refinement_timesteps(50, 5).tolist() == list(range(0, 51, 5))
    scheduler.set_refinement_timesteps(t_start=50, stride=5)
    assert scheduler.timesteps.tolist() == list(range(50, 0, -5))
    assert scheduler.inversion_timesteps.tolist() == list(range(0, 50, 5))
    assert scheduler.timesteps.dtype == torch.long
    # plain set_timesteps gives t = 0, s, 2s, ... (descending) and clears the inversion grid
    scheduler.set_timesteps(100)
    assert scheduler.timesteps.tolist() == list(range(990, -1, -10))
    assert scheduler.inversion_timesteps is None


@pytest.mark.parametrize("guidance", ["none", "zero"])
def test_unguided_step_equals_ddim(guidance):
    generator = torch.Generator().manual_seed(0)
    scheduler = GuidedDDIMScheduler()
    ddim = _ddim_twin(scheduler)
    scheduler.set_refinement_timesteps(t_start=50, stride=5)
    ddim.set_timesteps(1000 // 5)
    # the refinement grid and the whole 1000-step DDIM grid of the same stride
    for timesteps in (scheduler.timesteps, ddim.timesteps):
        sample = torch.randn(4, DIM, generator=generator)
        for t in timesteps:
            eps = torch.randn(4, DIM, generator=generator)
            gradient = torch.zeros_like(sample) if guidance == "zero" else None
            ours = scheduler.step(eps, t, sample, guidance_gradient=gradient, guidance_scale=3.0)
            theirs = ddim.step(eps, t, sample)
            torch.testing.assert_close(ours.prev_sample, theirs.prev_sample, atol=1e-6, rtol=0)
            torch.testing.assert_close(ours.pred_original_sample, theirs.pred_original_sample, atol=1e-6, rtol=0)
            sample = theirs.prev_sample


@pytest.mark.parametrize("t_start, stride", [(50, 5), (995, 5), (900, 20)])
def test_inversion_then_denoising_round_trip(t_start, stride):
    """With the exact noise as the model output, inversion reaches the forward-noised sample, denoising comes back."""
    generator = torch.Generator().manual_seed(1)
    scheduler = GuidedDDIMScheduler()
    scheduler.set_refinement_timesteps(t_start=t_start, stride=stride)
    x0 = torch.randn(3, DIM, generator=generator, dtype=torch.float64)
    noise = torch.randn(3, DIM, generator=generator, dtype=torch.float64)
    start = _noised(scheduler, x0, noise, 0)

    sample = start
    for t in scheduler.inversion_timesteps:
        out = scheduler.invert_step(noise, t, sample)
        torch.testing.assert_close(out.pred_original_sample, x0, atol=1e-4, rtol=0)
        sample = out.next_sample
    torch.testing.assert_close(sample, _noised(scheduler, x0, noise, t_start), atol=1e-4, rtol=0)

    for t in scheduler.timesteps:
        out = scheduler.step(noise, t, sample)
        torch.testing.assert_close(out.pred_original_sample, x0, atol=1e-4, rtol=0)
        sample = out.prev_sample
    torch.testing.assert_close(sample, start, atol=1e-4, rtol=0)


def test_inversion_round_trip_float32_refinement_grid():
    generator = torch.Generator().manual_seed(2)
    scheduler = GuidedDDIMScheduler()
    scheduler.set_refinement_timesteps()
    x0 = torch.randn(8, DIM, generator=generator)
    noise = torch.randn(8, DIM, generator=generator)
    start = _noised(scheduler, x0, noise, 0).float()
    sample = start
    for t in scheduler.inversion_timesteps:
        sample = scheduler.invert_step(noise, t, sample).next_sample
    for t in scheduler.timesteps:
        sample = scheduler.step(noise, t, sample).prev_sample
    assert sample.dtype == torch.float32
    torch.testing.assert_close(sample, start, atol=1e-4, rtol=0)


def test_invert_step_next_timestep_and_errors():
    generator = torch.Generator().manual_seed(3)
    scheduler = GuidedDDIMScheduler()
    x0 = torch.randn(2, DIM, generator=generator, dtype=torch.float64)
    noise = torch.randn(2, DIM, generator=generator, dtype=torch.float64)
    with pytest.raises(ValueError, match="set_refinement_timesteps"):
        scheduler.invert_step(noise, 10, _noised(scheduler, x0, noise, 10))
    # an explicit next timestep needs no schedule
    next_sample = scheduler.invert_step(noise, 10, _noised(scheduler, x0, noise, 10), next_timestep=37).next_sample
    torch.testing.assert_close(next_sample, _noised(scheduler, x0, noise, 37), atol=1e-6, rtol=0)
    next_sample, pred_x0 = scheduler.invert_step(noise, 10, _noised(scheduler, x0, noise, 10), 37, return_dict=False)
    torch.testing.assert_close(pred_x0, x0, atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="next_timestep"):
        scheduler.invert_step(noise, 10, x0, next_timestep=10)
    with pytest.raises(ValueError, match="next_timestep"):
        scheduler.invert_step(noise, 10, x0, next_timestep=1000)
    with pytest.raises(ValueError, match="shape"):
        scheduler.invert_step(noise[:, :10], 10, x0, next_timestep=20)


def test_guided_step_matches_formula():
    generator = torch.Generator().manual_seed(4)
    scheduler = GuidedDDIMScheduler()
    scheduler.set_refinement_timesteps(t_start=50, stride=5)
    sample = torch.randn(4, DIM, generator=generator, dtype=torch.float64)
    eps = torch.randn(4, DIM, generator=generator, dtype=torch.float64)
    gradient = torch.randn(4, DIM, generator=generator, dtype=torch.float64)
    t, scale = 30, 2.5
    alpha_t = scheduler.alphas_cumprod[t].double()
    alpha_prev = scheduler.alphas_cumprod[t - 5].double()
    eps_hat = eps + (1 - alpha_t).sqrt() * scale * gradient
    x0_hat = (sample - (1 - alpha_t).sqrt() * eps_hat) / alpha_t.sqrt()
    expected = alpha_prev.sqrt() * x0_hat + (1 - alpha_prev).sqrt() * eps_hat

    out = scheduler.step(eps, t, sample, guidance_gradient=gradient, guidance_scale=scale)
    torch.testing.assert_close(out.prev_sample, expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.pred_original_sample, x0_hat, atol=1e-6, rtol=0)
    # the guidance moves x̂0 against the gradient: x̂0 changes by -(1 - ᾱ_t) / √ᾱ_t · s · ∇L
    plain = scheduler.step(eps, t, sample)
    shift = out.pred_original_sample - plain.pred_original_sample
    torch.testing.assert_close(shift, -(1 - alpha_t) / alpha_t.sqrt() * scale * gradient, atol=1e-6, rtol=0)

    with pytest.raises(ValueError, match="shape"):
        scheduler.step(eps, t, sample, guidance_gradient=gradient[:, :5])


def test_guided_step_reduces_loss():
    """A guided step towards a target x̂0 lands closer to it than the unguided step."""
    generator = torch.Generator().manual_seed(6)
    scheduler = GuidedDDIMScheduler()
    scheduler.set_refinement_timesteps()
    sample = torch.randn(4, DIM, generator=generator)
    eps = torch.randn(4, DIM, generator=generator)
    target = torch.randn(4, DIM, generator=generator)
    t = 20
    x0_hat = scheduler.predict_original_sample(eps, t, sample)
    gradient = 2 * (x0_hat - target) / scheduler.alphas_cumprod[t].sqrt()  # ∇_{x_t} of |x̂0 − target|², ε fixed
    guided = scheduler.step(eps, t, sample, guidance_gradient=gradient, guidance_scale=0.1).pred_original_sample
    assert ((guided - target) ** 2).sum() < ((x0_hat - target) ** 2).sum()


def test_guidance_needs_epsilon_prediction():
    scheduler = GuidedDDIMScheduler(prediction_type="v_prediction")
    scheduler.set_refinement_timesteps()
    x = torch.zeros(1, DIM)
    with pytest.raises(ValueError, match="epsilon"):
        scheduler.step(x, 10, x, guidance_gradient=x)


@pytest.mark.parametrize(
    "t_start, stride, match",
    [(50, 7, "divide"), (52, 5, "multiple"), (1000, 5, "t_start"), (50, 0, "stride"), (3, 5, "t_start"),
     (50.0, 5, "t_start")],
)
def test_bad_refinement_grid_raises(t_start, stride, match):
    scheduler = GuidedDDIMScheduler()
    with pytest.raises(ValueError, match=match):
        scheduler.refinement_timesteps(t_start, stride)
    with pytest.raises(ValueError, match=match):
        scheduler.set_refinement_timesteps(t_start, stride)


def test_save_load_round_trip(tmp_path):
    scheduler = GuidedDDIMScheduler(num_train_timesteps=500)
    scheduler.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "scheduler_config.json").read_text())
    assert saved["_class_name"] == "GuidedDDIMScheduler"
    assert saved["beta_schedule"] == "squaredcos_cap_v2"

    loaded = GuidedDDIMScheduler.from_pretrained(tmp_path)
    assert isinstance(loaded, GuidedDDIMScheduler)
    assert {k: v for k, v in loaded.config.items() if not k.startswith("_")} == {
        k: v for k, v in scheduler.config.items() if not k.startswith("_")
    }
    torch.testing.assert_close(loaded.alphas_cumprod, scheduler.alphas_cumprod, atol=0, rtol=0)
    for s in (scheduler, loaded):
        s.set_refinement_timesteps(t_start=50, stride=10)
    x = torch.randn(2, DIM, generator=torch.Generator().manual_seed(7))
    torch.testing.assert_close(loaded.step(x, 50, x).prev_sample, scheduler.step(x, 50, x).prev_sample, atol=0, rtol=0)


def test_from_config_of_plain_ddim():
    ddim = DDIMScheduler(beta_schedule="squaredcos_cap_v2", clip_sample=False)
    guided = GuidedDDIMScheduler.from_config(ddim.config)
    assert isinstance(guided, GuidedDDIMScheduler)
    torch.testing.assert_close(guided.alphas_cumprod, ddim.alphas_cumprod, atol=0, rtol=0)
    # an explicit DDIM choice is kept, not replaced by our defaults
    linear = GuidedDDIMScheduler.from_config(DDIMScheduler(beta_schedule="linear").config)
    assert linear.config.beta_schedule == "linear"
    torch.testing.assert_close(linear.alphas_cumprod, DDIMScheduler().alphas_cumprod, atol=0, rtol=0)
    # a default-configured DDIM loads with our defaults
    assert GuidedDDIMScheduler.from_config(DDIMScheduler().config).config.beta_schedule == "squaredcos_cap_v2"


def test_plain_ddim_from_our_config_keeps_our_schedule():
    guided = GuidedDDIMScheduler()
    ddim = DDIMScheduler.from_config(guided.config)
    assert ddim.config.beta_schedule == "squaredcos_cap_v2" and ddim.config.clip_sample is False
    torch.testing.assert_close(ddim.alphas_cumprod, guided.alphas_cumprod, atol=0, rtol=0)
