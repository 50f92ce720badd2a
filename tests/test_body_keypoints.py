"""Keypoint input of the learned parts: crop normalisation, the encoder, exact warm starts, errors."""
import pytest
import torch

from scorehoi_diffusers.models.body_keypoints import (
    BodyKeypointEncoder,
    crop_keypoints,
    image_to_crop_keypoints,
    with_body_keypoints,
)
from scorehoi_diffusers.models.denoiser import ScoreHOIDenoiser
from scorehoi_diffusers.models.regressor import ScoreHOIRegressor

SMALL_REGRESSOR = dict(embedding_size=8, hidden_sizes=(8, 8, 16, 16), hidden_size=32, num_attention_heads=2,
                       head_hidden_size=32, image_feature_dim=16)
SMALL_DENOISER = dict(hidden_size=32, num_layers=1, num_attention_heads=2, image_feature_dim=16,
                      num_condition_latents=4, timestep_embedding_dim=16)


def _keypoints(batch=2, seed=0):
    generator = torch.Generator().manual_seed(seed)
    keypoints = torch.rand(batch, 33, 3, generator=generator)
    keypoints[..., :2] = keypoints[..., :2] * 1.6 - 0.8
    return keypoints


def test_crop_keypoints_normalise_and_drop_what_is_outside_or_unreported():
    keypoints = torch.zeros(1, 33, 3)
    keypoints[0, 0] = torch.tensor([-0.5, 63.5, 1.0])  # left edge, bottom edge of a 64 px crop
    keypoints[0, 1] = torch.tensor([31.5, 31.5, 0.7])  # centre
    keypoints[0, 2] = torch.tensor([70.0, 10.0, 0.9])  # outside
    keypoints[0, 3] = torch.tensor([10.0, 10.0, 0.0])  # not reported
    normalised = crop_keypoints(keypoints, (64, 64))
    torch.testing.assert_close(normalised[0, 0], torch.tensor([-1.0, 1.0, 1.0]))
    torch.testing.assert_close(normalised[0, 1], torch.tensor([0.0, 0.0, 0.7]))
    assert (normalised[0, 2:] == 0).all()


def test_image_to_crop_keypoints_follow_the_crop_camera():
    intrinsics = torch.tensor([[[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]]])
    zoom, offset = 0.25, torch.tensor([-40.0, -20.0])
    crop_intrinsics = intrinsics.clone()
    crop_intrinsics[0, :2] = intrinsics[0, :2] * zoom
    crop_intrinsics[0, :2, 2] += offset
    keypoints = torch.zeros(1, 33, 3)
    keypoints[0, :, 0], keypoints[0, :, 1], keypoints[0, :, 2] = 300.0, 250.0, 0.8
    expected = crop_keypoints(torch.tensor([[[300 * zoom - 40, 250 * zoom - 20, 0.8]]]).expand(1, 33, 3), (64, 64))
    torch.testing.assert_close(image_to_crop_keypoints(keypoints, intrinsics, crop_intrinsics, (64, 64)), expected)


def test_encoder_starts_at_zero_and_learns():
    encoder = BodyKeypointEncoder(16, 8)
    keypoints = _keypoints()
    assert torch.equal(encoder(keypoints), torch.zeros(2, 8))
    encoder(keypoints).sum().backward()
    assert encoder.mlp[-1].weight.grad.abs().sum() > 0


@pytest.mark.parametrize("with_keypoints_first", [False, True])
def test_warm_start_with_keypoints_computes_what_the_model_did(with_keypoints_first):
    torch.manual_seed(0)
    regressor = ScoreHOIRegressor(**SMALL_REGRESSOR).eval()
    extended = with_body_keypoints(regressor)
    assert extended.config.body_keypoints and with_body_keypoints(extended) is extended
    pixels, objects = torch.randn(2, 5, 64, 64), torch.randn(2, 64, 3) * 0.2
    intrinsics = torch.tensor([[80.0, 0, 32], [0, 80.0, 32], [0, 0, 1]]).expand(2, 3, 3)
    with torch.no_grad():
        before = regressor(pixels, objects, intrinsics)
        after = extended(pixels, objects, intrinsics, body_keypoints=_keypoints() if with_keypoints_first else None)
    assert torch.equal(before.x0, after.x0) and torch.equal(before.image_tokens, after.image_tokens)

    denoiser = ScoreHOIDenoiser(**SMALL_DENOISER).eval()
    extended = with_body_keypoints(denoiser)
    tokens = torch.randn(2, 4, 16)
    with torch.no_grad():
        plain = denoiser(torch.randn(2, 331, generator=torch.Generator().manual_seed(1)), 10, image_tokens=tokens,
                         object_keypoints=objects).sample
        keyed = extended(torch.randn(2, 331, generator=torch.Generator().manual_seed(1)), 10, image_tokens=tokens,
                         object_keypoints=objects, body_keypoints=_keypoints()).sample
    assert torch.equal(plain, keyed)


def test_trained_keypoint_layers_change_the_output(tmp_path):
    torch.manual_seed(0)
    denoiser = ScoreHOIDenoiser(**SMALL_DENOISER, body_keypoints=True).eval()
    torch.nn.init.normal_(denoiser.body_keypoint_encoder.mlp[-1].weight, std=0.1)
    denoiser.save_pretrained(tmp_path)
    loaded = ScoreHOIDenoiser.from_pretrained(tmp_path).eval()
    tokens, objects = torch.randn(1, 4, 16), torch.randn(1, 64, 3)
    with torch.no_grad():
        first = loaded.encode_condition(tokens, objects, body_keypoints=_keypoints(1, 0))
        second = loaded.encode_condition(tokens, objects, body_keypoints=_keypoints(1, 1))
    assert loaded.config.body_keypoints and not torch.equal(first.values, second.values)


def test_bad_keypoint_inputs_get_clear_errors():
    regressor = ScoreHOIRegressor(**SMALL_REGRESSOR).eval()
    pixels, objects = torch.randn(1, 5, 64, 64), torch.randn(1, 64, 3)
    intrinsics = torch.eye(3)[None]
    with pytest.raises(ValueError, match="built without keypoint input"):
        regressor(pixels, objects, intrinsics, body_keypoints=_keypoints(1))
    with pytest.raises(ValueError, match="`body_keypoints` must have shape"):
        with_body_keypoints(regressor)(pixels, objects, intrinsics, body_keypoints=torch.zeros(1, 17, 3))
    denoiser = ScoreHOIDenoiser(**SMALL_DENOISER, body_keypoints=True)
    with pytest.raises(ValueError, match="give those too"):
        denoiser.encode_condition(body_keypoints=_keypoints(1))
    with pytest.raises(ValueError, match="disagree on the batch size"):
        denoiser.encode_condition(object_keypoints=objects, body_keypoints=_keypoints(2))
    with pytest.raises(TypeError, match="`body_keypoints` must be True or False"):
        ScoreHOIDenoiser(**SMALL_DENOISER, body_keypoints=1)
    with pytest.raises(ValueError, match="`keypoints` must have shape"):
        crop_keypoints(torch.zeros(1, 33, 2), (64, 64))
    with pytest.raises(TypeError, match="ScoreHOIRegressor or ScoreHOIDenoiser"):
        with_body_keypoints(torch.nn.Linear(2, 2))
