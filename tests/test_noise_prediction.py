"""NoisePrediction: the denoiser's ε under one condition, and classifier-free guidance on it (`condition_scale`)."""
import pytest
import torch

from scorehoi_diffusers.pipelines.noise_prediction import NoisePrediction


def inputs(pipe, batch: int = 2):
    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(batch, 16, pipe.denoiser.config.image_feature_dim, generator=generator)
    keypoints = torch.randn(batch, 64, 3, generator=generator) * 0.1
    latents = torch.randn(batch, 331, generator=generator)
    return tokens, keypoints, latents


@pytest.mark.parametrize("scale", [0.0, 2.0, 4.0])
def test_condition_scale_is_classifier_free_guidance(pipe, scale):
    tokens, keypoints, latents = inputs(pipe)
    denoiser = pipe.denoiser
    with torch.no_grad():
        conditional = NoisePrediction.from_inputs(denoiser, tokens, keypoints)(latents, 25)
        unconditional = NoisePrediction(denoiser, denoiser.encode_condition())(latents, 25)
        guided = NoisePrediction.from_inputs(denoiser, tokens, keypoints, condition_scale=scale)(latents, 25)
    assert not torch.allclose(conditional, unconditional)
    torch.testing.assert_close(guided, unconditional + scale * (conditional - unconditional))


def test_scale_one_is_the_conditional_prediction_in_one_pass(pipe, monkeypatch):
    tokens, keypoints, latents = inputs(pipe)
    passes = []
    forward = type(pipe.denoiser).forward
    counted = lambda self, *args, **kwargs: passes.append(1) or forward(self, *args, **kwargs)  # noqa: E731
    monkeypatch.setattr(type(pipe.denoiser), "forward", counted)
    with torch.no_grad():
        one = NoisePrediction.from_inputs(pipe.denoiser, tokens, keypoints)(latents, 25)
        direct = pipe.denoiser(latents, torch.tensor(25), condition=pipe.denoiser.encode_condition(tokens, keypoints))
        NoisePrediction.from_inputs(pipe.denoiser, tokens, keypoints, condition_scale=2.0)(latents, 25)
    assert torch.equal(one, direct.sample)
    assert len(passes) == 1 + 1 + 2


def test_scale_other_than_one_needs_the_null_condition(pipe):
    tokens, keypoints, _ = inputs(pipe)
    with pytest.raises(ValueError, match="needs `unconditional`"):
        NoisePrediction(pipe.denoiser, pipe.denoiser.encode_condition(tokens, keypoints), condition_scale=2.0)


@pytest.mark.parametrize("value", [-1.0, float("nan"), float("inf"), True, "2"])
def test_bad_condition_scale_is_named(pipe, value):
    from test_pipeline import holding_params

    with pytest.raises(ValueError, match="`condition_scale`") as error:
        pipe(initial_params=holding_params(1), object="box", num_cycles=1, condition_scale=value)
    assert "\n" not in str(error.value)


def test_condition_scale_changes_a_conditioned_refinement(pipe):
    from test_pipeline import holding_params

    tokens = torch.randn(1, 16, pipe.denoiser.config.image_feature_dim, generator=torch.Generator().manual_seed(1))
    outputs = [pipe(initial_params=holding_params(1), object="box", num_cycles=1, image_tokens=tokens,
                    condition_scale=scale).params.body_pose for scale in (1.0, 1.0, 4.0)]
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], outputs[2])
