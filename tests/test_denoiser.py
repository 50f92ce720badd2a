"""Tests for ScoreHOIDenoiser: shapes, a live condition path, condition cache and dropout, saving, independence."""

import pytest
import torch

from scorehoi_diffusers.models import X0_PARTS, ConditionCache, ScoreHOIDenoiser
from scorehoi_diffusers.models import denoiser as denoiser_module
from scorehoi_diffusers.params import X0_DIM

B, NI, FEAT = 4, 10, 32


def _randomised(model: ScoreHOIDenoiser, seed: int = 0) -> ScoreHOIDenoiser:
    """Fills the zero-initialised parameters (adaLN-Zero gates, output head, biases) with random values, so that
    every path of the model reaches the output, as in a trained model."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            if not parameter.any():
                parameter.copy_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model


def _model(**config) -> ScoreHOIDenoiser:
    """A small randomised model; its default init is seeded without leaking into the global RNG."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = ScoreHOIDenoiser(**{"image_feature_dim": FEAT, "num_condition_latents": 8, **config})
    return _randomised(model)


@pytest.fixture
def model():
    return _model().eval()


def _public(config) -> dict:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def _inputs(seed: int = 1, batch: int = B):
    generator = torch.Generator().manual_seed(seed)
    sample = torch.randn(batch, X0_DIM, generator=generator)
    image = torch.randn(batch, NI, FEAT, generator=generator)
    keypoints = 0.3 * torch.randn(batch, 64, 3, generator=generator)
    return sample, image, keypoints


def test_parts_cover_x0_once():
    columns = sorted(c for part in X0_PARTS.values() for c in part)
    assert columns == list(range(X0_DIM))
    assert len(X0_PARTS) == 12
    # SMPL-H left hand: index, middle, pinky, ring, thumb from joint 22; pinky + ring are joints 28..33.
    assert X0_PARTS["left_hand_pinky_ring"] == tuple(range(6 * 28, 6 * 34))
    assert X0_PARTS["right_arm"][:6] == tuple(range(6 * 14, 6 * 15))  # R_collar
    assert X0_PARTS["object_pose"] == tuple(range(312, 321))
    assert hasattr(denoiser_module, "ModelMixin")


def test_output_shape_and_zero_init():
    fresh = ScoreHOIDenoiser(image_feature_dim=FEAT).eval()
    sample, image, keypoints = _inputs()
    out = fresh(sample, 10, image_tokens=image, object_keypoints=keypoints)
    assert out.sample.shape == (B, X0_DIM)
    assert not out.sample.any()  # adaLN-Zero output head
    (tuple_out,) = fresh(sample, 10, return_dict=False)
    assert tuple_out.shape == (B, X0_DIM)


def test_parameter_count():
    assert sum(p.numel() for p in ScoreHOIDenoiser().parameters()) < 10_000_000


def test_condition_changes_output_and_only_then(model):
    sample, image, keypoints = _inputs()
    _, other_image, other_keypoints = _inputs(seed=2)
    with torch.no_grad():
        base = model(sample, 25, image_tokens=image, object_keypoints=keypoints).sample
        same = model(sample, 25, image_tokens=image.clone(), object_keypoints=keypoints.clone()).sample
        new_image = model(sample, 25, image_tokens=other_image, object_keypoints=keypoints).sample
        new_keypoints = model(sample, 25, image_tokens=image, object_keypoints=other_keypoints).sample
        unconditional = model(sample, 25).sample
    assert torch.equal(base, same)
    for changed in (new_image, new_keypoints, unconditional):
        assert ((changed - base).abs().amax(dim=1) > 1e-3).all()  # every sample's output moves


def test_timestep_changes_output_and_broadcasts(model):
    sample, image, keypoints = _inputs()
    condition = model.encode_condition(image, keypoints)
    with torch.no_grad():
        at_10 = model(sample, 10, condition=condition).sample
        at_500 = model(sample, 500, condition=condition).sample
        per_sample = model(sample, torch.full((B,), 10), condition=condition).sample
        mixed = model(sample, torch.tensor([10, 500, 10, 500]), condition=condition).sample
    assert ((at_500 - at_10).abs().amax(dim=1) > 1e-3).all()
    torch.testing.assert_close(per_sample, at_10, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(mixed[1::2], at_500[1::2], atol=1e-5, rtol=1e-5)


def test_gradients_reach_condition_encoders():
    model = _model(condition_dropout_prob=0.0)
    model.train()
    sample, image, keypoints = _inputs()
    model(sample, 25, image_tokens=image, object_keypoints=keypoints).sample.square().mean().backward()
    parameters = dict(model.named_parameters())
    encoders = (
        "image_proj.1.weight", "keypoint_mlp.0.weight", "condition_resampler.latents", "condition_to_kv.weight"
    )
    for name in encoders:
        grad = parameters[name].grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_cached_condition_equals_on_the_fly(model):
    sample, image, keypoints = _inputs()
    with torch.no_grad():
        condition = model.encode_condition(image, keypoints)
        assert isinstance(condition, ConditionCache) and condition.batch_size == B
        cached = model(sample, 25, condition=condition).sample
        cached_again = model(sample, 30, condition=condition).sample
        on_the_fly = model(sample, 25, image_tokens=image, object_keypoints=keypoints).sample
    assert torch.equal(cached, on_the_fly)
    assert not torch.equal(cached, cached_again)  # the cache does not freeze the timestep


def test_dropped_samples_equal_unconditional(model):
    sample, image, keypoints = _inputs()
    drop = torch.tensor([True, False, True, False])
    with torch.no_grad():
        dropped = model(sample, 25, image_tokens=image, object_keypoints=keypoints, drop_mask=drop).sample
        conditional = model(sample, 25, image_tokens=image, object_keypoints=keypoints).sample
        unconditional = model(sample, 25, condition=model.encode_condition()).sample
    torch.testing.assert_close(dropped[drop], unconditional[drop], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(dropped[~drop], conditional[~drop], atol=1e-5, rtol=1e-5)
    assert (dropped[drop] - conditional[drop]).abs().max() > 1e-3


def test_training_dropout_uses_the_generator_only():
    model = _model(condition_dropout_prob=0.5)
    sample, image, keypoints = _inputs(batch=16)
    with torch.no_grad():
        model.eval()
        conditional = model(sample, 25, image_tokens=image, object_keypoints=keypoints).sample
        unconditional = model(sample, 25).sample
        model.train()
        global_state = torch.get_rng_state()
        first = model(sample, 25, image_tokens=image, object_keypoints=keypoints,
                      generator=torch.Generator().manual_seed(3)).sample
        second = model(sample, 25, image_tokens=image, object_keypoints=keypoints,
                       generator=torch.Generator().manual_seed(3)).sample
        assert torch.equal(torch.get_rng_state(), global_state)
    assert torch.equal(first, second)
    is_unconditional = (first - unconditional).abs().amax(dim=1) < 1e-5
    is_conditional = (first - conditional).abs().amax(dim=1) < 1e-5
    assert (is_unconditional ^ is_conditional).all()  # each sample is either dropped or kept, as a whole
    assert 0 < is_unconditional.sum() < 16


def test_eval_mode_never_drops():
    model = _model(condition_dropout_prob=1.0)
    model.eval()
    sample, image, keypoints = _inputs()
    with torch.no_grad():
        conditional = model(sample, 25, image_tokens=image, object_keypoints=keypoints).sample
        unconditional = model(sample, 25).sample
        model.train()
        all_dropped = model(sample, 25, image_tokens=image, object_keypoints=keypoints).sample
    assert ((conditional - unconditional).abs().amax(dim=1) > 1e-3).all()
    torch.testing.assert_close(all_dropped, unconditional, atol=1e-5, rtol=1e-5)


def test_batch_independence(model):
    sample, image, keypoints = _inputs()
    with torch.no_grad():
        batched = model(sample, 25, image_tokens=image, object_keypoints=keypoints).sample
        for i in range(B):
            alone = model(sample[i : i + 1], 25, image_tokens=image[i : i + 1], object_keypoints=keypoints[i : i + 1])
            torch.testing.assert_close(alone.sample[0], batched[i], atol=1e-5, rtol=1e-5)
        # changing one sample's input leaves the others' outputs unchanged
        changed = sample.clone()
        changed[0] += 1.0
        other = model(changed, 25, image_tokens=image, object_keypoints=keypoints).sample
    torch.testing.assert_close(other[1:], batched[1:], atol=1e-5, rtol=1e-5)
    assert (other[0] - batched[0]).abs().max() > 1e-3


def test_shared_condition_broadcasts(model):
    sample, image, keypoints = _inputs()
    with torch.no_grad():
        shared = model(sample, 25, condition=model.encode_condition(image[:1], keypoints[:1])).sample
        repeated = model(sample, 25, image_tokens=image[:1].expand(B, -1, -1),
                         object_keypoints=keypoints[:1].expand(B, -1, -1)).sample
    torch.testing.assert_close(shared, repeated, atol=1e-5, rtol=1e-5)


def test_deterministic(model):
    sample, image, keypoints = _inputs()
    with torch.no_grad():
        outputs = [model(sample, 25, image_tokens=image, object_keypoints=keypoints).sample for _ in range(3)]
    assert torch.equal(outputs[0], outputs[1]) and torch.equal(outputs[0], outputs[2])


def test_save_load_bit_identical(model, tmp_path):
    model.save_pretrained(tmp_path)
    assert (tmp_path / "diffusion_pytorch_model.safetensors").is_file()
    assert (tmp_path / "config.json").is_file()
    loaded = ScoreHOIDenoiser.from_pretrained(tmp_path).eval()
    assert _public(loaded.config) == _public(model.config)
    sample, image, keypoints = _inputs()
    with torch.no_grad():
        expected = model(sample, 25, image_tokens=image, object_keypoints=keypoints).sample
        got = loaded(sample, 25, image_tokens=image, object_keypoints=keypoints).sample
    assert torch.equal(expected, got)


def test_bad_inputs_raise(model):
    sample, image, keypoints = _inputs()
    with pytest.raises(ValueError, match="sample"):
        model(sample[:, :300], 25)
    with pytest.raises(ValueError, match="image_feature_dim"):
        model(sample, 25, image_tokens=torch.zeros(B, NI, FEAT + 1))
    with pytest.raises(ValueError, match="object_keypoints"):
        model(sample, 25, object_keypoints=torch.zeros(B, 64, 2))
    with pytest.raises(ValueError, match="NaN"):
        model(sample, 25, object_keypoints=torch.full((B, 64, 3), float("nan")))
    with pytest.raises(ValueError, match="batch size"):
        model(sample, 25, image_tokens=image[:2], object_keypoints=keypoints)
    with pytest.raises(ValueError, match="batch size"):
        model(sample, 25, condition=model.encode_condition(image[:2]))
    with pytest.raises(ValueError, match="not both"):
        model(sample, 25, condition=model.encode_condition(image), image_tokens=image)
    with pytest.raises(ValueError, match="timestep"):
        model(sample, torch.zeros(B + 1), condition=model.encode_condition(image))
    with pytest.raises(ValueError, match="divisible"):
        ScoreHOIDenoiser(hidden_size=100, num_attention_heads=3)
