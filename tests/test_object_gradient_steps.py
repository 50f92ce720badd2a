"""The object refined by gradient steps while the prior denoises the body (`object_refinement="gradient"`)."""
import pytest
import torch
from test_pipeline import hand_contacts, holding_params

from scorehoi_diffusers.guidance import GuidanceConfig
from scorehoi_diffusers.optimization_baseline import DEFAULT_STEP_SIZE
from scorehoi_diffusers.params import OBJECT_ROTATION_SLICE, OBJECT_SLICE, OBJECT_TRANSLATION_SLICE
from scorehoi_diffusers.pipelines.object_gradient_steps import ObjectGradientSteps


def test_object_slice_is_rotation_then_translation():
    assert (OBJECT_SLICE.start, OBJECT_SLICE.stop) == (OBJECT_ROTATION_SLICE.start, OBJECT_TRANSLATION_SLICE.stop)
    assert OBJECT_SLICE.stop - OBJECT_SLICE.start == 9


def test_with_guidance_off_the_object_does_not_move_and_the_body_does(pipe):
    params = holding_params(2, gap=0.05)
    start = pipe.codec.decode(pipe.codec.encode(params))
    kwargs = dict(initial_params=params, object="box", num_cycles=2, guidance_scale=0.0)
    gradient = pipe(**kwargs, object_refinement="gradient").params
    prior = pipe(**kwargs).params
    assert torch.equal(gradient.object_rotation, start.object_rotation)
    assert torch.equal(gradient.object_translation, start.object_translation)
    assert not torch.allclose(prior.object_translation, start.object_translation, atol=1e-6)
    # The body is still denoised by the prior, here as much as in the paper's scheme.
    assert not torch.allclose(gradient.body_pose, start.body_pose, atol=1e-5)


def test_object_steps_descend_the_guidance_loss(pipe, body):
    params = holding_params(1, gap=0.12)
    contacts = hand_contacts(body, params)
    config = GuidanceConfig(contact=1.0, penetration=0.1, floor=0.0)
    kwargs = dict(initial_params=params, object="box", contacts=contacts, num_cycles=3, refresh_contacts=False,
                  guidance_config=config)
    unguided = pipe(**kwargs, guidance_scale=0.0, object_refinement="gradient")
    guided = pipe(**kwargs, object_refinement="gradient")
    # The box starts 12 cm in front of the hands; its own steps move it (unguided, it stays put) and the contact
    # term falls by a third (0.245 -> 0.144 when this was written).
    moved = (guided.params.object_translation - unguided.params.object_translation).norm()
    assert moved > 0.01
    assert guided.guidance_term_history["contact"][-1] < 0.75 * unguided.guidance_term_history["contact"][-1]


def test_step_moves_the_object_by_the_clipped_gradient_and_guides_only_the_body(pipe):
    from scorehoi_diffusers.objects import load_object

    params = holding_params(2, gap=0.05)
    template = load_object("box")
    contacts = hand_contacts(pipe.body_model, params)
    config = GuidanceConfig(contact=1.0, penetration=0.1, floor=0.0)
    x0 = pipe.codec.encode(params)
    pipe.scheduler.set_refinement_timesteps(50, 5)
    latents = x0 + 0.1 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    steps = ObjectGradientSteps(pipe, x0, step_size=0.01)
    body_gradient = steps.guidance_gradient(latents, noise, 50, template, params.camera_translation, contacts, {},
                                            config)
    # The object's gradient is that of the loss on x̂0 with the object estimate put in.
    x0_hat = pipe.scheduler.predict_original_sample(noise, 50, latents)
    x0_hat[:, OBJECT_SLICE] = x0[:, OBJECT_SLICE]
    expected = pipe.guidance_x0_gradient(x0_hat, template, params.camera_translation, contacts, {}, config)
    assert torch.allclose(steps.object, x0[:, OBJECT_SLICE] - 0.01 * expected[:, OBJECT_SLICE], atol=1e-6)
    assert expected[:, OBJECT_SLICE].abs().sum() > 0
    assert torch.equal(body_gradient[:, OBJECT_SLICE], torch.zeros(2, 9))
    scale = pipe.scheduler.alphas_cumprod[50] ** 0.5
    outside = torch.ones(x0.shape[1], dtype=torch.bool)
    outside[OBJECT_SLICE] = False
    assert torch.allclose(body_gradient[:, outside], expected[:, outside] / scale, atol=1e-6)
    # Replacement: the object entries at t' are the estimate noised with the step's own noise; exact at t' = 0.
    replaced = steps.replace(latents, noise, 45)
    alpha = pipe.scheduler.alphas_cumprod[45]
    assert torch.allclose(replaced[:, OBJECT_SLICE],
                          alpha.sqrt() * steps.object + (1 - alpha).sqrt() * noise[:, OBJECT_SLICE])
    assert torch.equal(replaced[:, outside], latents[:, outside])
    assert torch.equal(steps.replace(latents, noise, 0)[:, OBJECT_SLICE], steps.object)


def test_the_step_size_is_the_optimisation_baselines(pipe, monkeypatch):
    sizes = []
    original = ObjectGradientSteps.__init__

    def record(self, pipeline, x0, step_size):
        sizes.append(step_size)
        original(self, pipeline, x0, step_size)

    monkeypatch.setattr(ObjectGradientSteps, "__init__", record)
    pipe(initial_params=holding_params(1), object="box", num_cycles=2, object_refinement="gradient")
    assert sizes == [DEFAULT_STEP_SIZE, DEFAULT_STEP_SIZE]  # one estimate per cycle, the baseline's step


def test_same_generator_same_output(pipe):
    state = torch.get_rng_state()
    outs = [pipe(initial_params=holding_params(2, gap=0.05), object="box", num_cycles=2, eta=0.5,
                 object_refinement="gradient", generator=torch.Generator().manual_seed(seed)).params
            for seed in (3, 3, 4)]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(outs[0].body_pose, outs[1].body_pose)
    assert torch.equal(outs[0].object_translation, outs[1].object_translation)
    assert not torch.equal(outs[0].body_pose, outs[2].body_pose)


@pytest.mark.parametrize("value", ["diffusion", None, 1])
def test_bad_object_refinement_is_named(pipe, value):
    with pytest.raises(ValueError, match="`object_refinement` must be one of") as error:
        pipe(initial_params=holding_params(1), object="box", num_cycles=1, object_refinement=value)
    assert "\n" not in str(error.value)
