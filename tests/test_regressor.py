"""ScoreHOIRegressor and ScoreHOIContactEstimator: shapes, batch independence, gradients, image and geometry use,
the pipeline-facing bound estimator, save/load, input errors.

Most tests use a tiny config on 64² crops for speed; one runs the default config on a 256² crop.
BatchNorm couples the samples of a batch in training mode, so batch independence is checked in eval mode.
"""
import json

import pytest
import roma
import torch

from scorehoi_diffusers.body import BodyModel
from scorehoi_diffusers.contacts import Contacts, ReconstructionState
from scorehoi_diffusers.models.contact_estimator import ScoreHOIContactEstimator, sample_image_features
from scorehoi_diffusers.models.denoiser import ScoreHOIDenoiser
from scorehoi_diffusers.models.regressor import (
    ScoreHOIRegressor,
    camera_translation_to_crop,
    crop_to_camera_translation,
    rest_pose_x0,
)
from scorehoi_diffusers.params import X0_DIM, HOIParams

SIZE = 64
TINY_REGRESSOR = dict(
    embedding_size=8, hidden_sizes=(8, 16, 16, 32), hidden_size=32, num_attention_heads=2, num_query_tokens=2,
    head_hidden_size=64, image_feature_dim=24,
)
TINY_CONTACT = dict(feature_dim=32, hidden_size=32, num_attention_heads=2, num_frequencies=4)
NUM_BODY = 40


def build(cls, seed: int, **config):
    """A model with seeded initialisation, leaving the global RNG as it was."""
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return cls(**config)


def randn(*shape, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def crop_intrinsics(batch: int, size: int = SIZE, focal: float = 1.5) -> torch.Tensor:
    K = torch.tensor([[focal * size, 0.0, (size - 1) / 2], [0.0, focal * size, (size - 1) / 2], [0.0, 0.0, 1.0]])
    return K.expand(batch, 3, 3).clone()


def inputs(batch: int, seed: int = 0, size: int = SIZE):
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randn(batch, 5, size, size, generator=generator)
    keypoints = 0.3 * torch.randn(batch, 64, 3, generator=generator)
    return pixels, keypoints, crop_intrinsics(batch, size)


def geometry(batch: int, seed: int = 0):
    """Body points (B, S, 3) around the pelvis, object keypoints near them, pelvis 3 m ahead."""
    generator = torch.Generator().manual_seed(seed)
    body = 0.4 * torch.randn(batch, NUM_BODY, 3, generator=generator)
    objects = 0.2 * torch.randn(batch, 64, 3, generator=generator) + torch.tensor([0.3, 0.0, -0.2])
    camera = torch.tensor([0.1, -0.1, 3.0]) + 0.1 * torch.randn(batch, 3, generator=generator)
    return body, objects, camera


@pytest.fixture(scope="module")
def regressor():
    return build(ScoreHOIRegressor, 0, **TINY_REGRESSOR).eval()


@pytest.fixture(scope="module")
def estimator():
    return build(ScoreHOIContactEstimator, 1, num_body_points=NUM_BODY, **TINY_CONTACT).eval()


def test_default_config_shapes_rest_pose_and_denoiser_condition():
    model = build(ScoreHOIRegressor, 0).eval()
    pixels, keypoints, K = inputs(2, size=256)
    with torch.no_grad():
        out = model(pixels, keypoints, K)
    assert out.x0.shape == (2, X0_DIM)
    assert out.camera_translation.shape == (2, 3)
    assert out.image_tokens.shape == (2, 64, 256)
    assert out.feature_map.shape == (2, 256, 8, 8)
    # Untrained: the rest pose, the pelvis on the crop centre's ray at the prior depth.
    assert torch.allclose(out.x0, rest_pose_x0().expand(2, -1), atol=0.1)
    expected_depth = model.config.camera_extent_prior * K[:, 0, 0] / 256
    assert torch.allclose(out.camera_translation[:, 2], expected_depth, rtol=0.05)
    assert out.camera_translation[:, :2].abs().max() < 0.05 * expected_depth.min()
    # The image tokens are exactly what the default denoiser takes as its condition.
    denoiser = build(ScoreHOIDenoiser, 0)
    condition = denoiser.encode_condition(image_tokens=out.image_tokens, object_keypoints=keypoints)
    assert condition.batch_size == 2


def test_camera_parameterisation_round_trip():
    generator = torch.Generator().manual_seed(0)
    K = crop_intrinsics(5, size=96)
    K[:, 0, 1] = 3.0  # skew and an off-centre principal point
    K[:, 0, 2] += 7.0
    translation = torch.randn(5, 3, generator=generator) * 0.5 + torch.tensor([0.0, 0.0, 4.0])
    crop = camera_translation_to_crop(translation, K, (80, 96), 2.0)
    assert torch.allclose(crop_to_camera_translation(crop, K, (80, 96), 2.0), translation, atol=1e-5)
    # (u, v) = (0, 0) is the crop centre in pixel coordinates (pixel centres at integers).
    centre = crop_to_camera_translation(torch.zeros(1, 3), K[:1], (80, 96), 2.0)
    pixel = (centre / centre[:, 2:]) @ K[0].T
    assert torch.allclose(pixel[0, :2], torch.tensor([47.5, 39.5]), atol=1e-4)
    assert torch.allclose(centre[0, 2], 2.0 * K[0, 0, 0] / 96)
    with pytest.raises(ValueError, match="camera_translation"):
        camera_translation_to_crop(-translation, K, (80, 96), 2.0)


def test_regressor_batch_independence_in_eval_mode(regressor):
    pixels, keypoints, K = inputs(3)
    with torch.no_grad():
        batched = regressor(pixels, keypoints, K)
        alone = regressor(pixels[1:2], keypoints[1:2], K[1:2])
        other = pixels.clone()
        other[[0, 2]] = randn(2, 5, SIZE, SIZE, seed=5)
        changed = regressor(other, keypoints, K)
    for name in ("x0", "camera_translation", "image_tokens", "feature_map"):
        assert torch.allclose(batched[name][1:2], alone[name], atol=1e-5), name
        assert torch.allclose(batched[name][1], changed[name][1], atol=1e-5), name
    # Training mode uses batch statistics (BatchNorm), so there the samples are coupled: the reason for eval mode.
    train_model = build(ScoreHOIRegressor, 0, **TINY_REGRESSOR).train()
    with torch.no_grad():
        assert not torch.allclose(train_model(pixels, keypoints, K).x0[1], train_model(other, keypoints, K).x0[1])


def test_image_tokens_follow_the_image(regressor):
    pixels, keypoints, K = inputs(2)
    with torch.no_grad():
        base = regressor(pixels, keypoints, K)
        masks_moved = pixels.clone()
        masks_moved[:, 3:] = torch.roll(pixels[:, 3:], shifts=16, dims=-1)
        moved = regressor(masks_moved, keypoints, K)
    assert (moved.image_tokens - base.image_tokens).abs().amax(dim=(1, 2)).min() > 1e-3
    assert (moved.feature_map - base.feature_map).abs().amax(dim=(1, 2, 3)).min() > 1e-3


def test_contact_estimator_batch_independence(estimator):
    body, objects, camera = geometry(3)
    feature_map = randn(3, 32, 4, 4)
    K = crop_intrinsics(3)
    with torch.no_grad():
        batched = estimator(body, objects, camera, K, feature_map, (SIZE, SIZE))
        alone = estimator(body[2:], objects[2:], camera[2:], K[2:], feature_map[2:], (SIZE, SIZE))
    for name in ("human_logits", "object_logits", "floor_logits"):
        assert torch.allclose(batched[name][2:], alone[name], atol=1e-5), name


def test_gradients_reach_every_parameter_group():
    regressor = build(ScoreHOIRegressor, 0, **TINY_REGRESSOR).train()
    estimator = build(ScoreHOIContactEstimator, 1, num_body_points=NUM_BODY, **TINY_CONTACT).train()
    pixels, keypoints, K = inputs(2)
    body, objects, _ = geometry(2)
    out = regressor(pixels, keypoints, K)
    contact = estimator(body, objects, out.camera_translation, K, out.feature_map, (SIZE, SIZE))
    generator = torch.Generator().manual_seed(1)
    target = lambda t: torch.randn(t.shape, generator=generator)  # noqa: E731
    loss = (
        (out.x0 - target(out.x0)).square().mean()
        + (out.camera_crop - target(out.camera_crop)).square().mean()
        + (out.image_tokens * target(out.image_tokens)).mean()
        + sum(
            torch.nn.functional.binary_cross_entropy_with_logits(logits, (target(logits) > 0).float())
            for logits in (contact.human_logits, contact.object_logits, contact.floor_logits)
        )
    )
    loss.backward()
    for model in (regressor, estimator):
        for name, parameter in model.named_parameters():
            assert parameter.grad is not None, name
            assert torch.isfinite(parameter.grad).all(), name
            assert parameter.grad.abs().max() > 0, name
    groups = {
        "backbone": regressor.backbone, "keypoint_encoder": regressor.keypoint_encoder, "fusion": regressor.fusion,
        "x0_head": regressor.x0_head, "camera_head": regressor.camera_head, "contact": estimator.transformer,
    }
    for name, module in groups.items():
        assert sum(p.grad.norm() for p in module.parameters()) > 0, name


def test_bound_estimator_on_a_reconstruction_state(fake_smplh_path):
    body_model = BodyModel(model_path=str(fake_smplh_path))
    model = build(ScoreHOIContactEstimator, 2, num_body_points=body_model.num_downsampled, **TINY_CONTACT).eval()
    params = HOIParams.identity(2)
    params.global_orient = roma.random_rotmat(2, generator=torch.Generator().manual_seed(0))
    body_points, _ = body_model.skin_subset(params)
    object_points = 0.2 * torch.randn(2, 64, 3, generator=torch.Generator().manual_seed(1))
    state = ReconstructionState(params, body_points, object_points, torch.zeros(2, body_points.shape[1]),
                                torch.tensor([0.0, -1.0, 0.0]))
    bound = model.bind(randn(2, 32, 4, 4), crop_intrinsics(2), (SIZE, SIZE))
    contacts = bound(state)
    assert isinstance(contacts, Contacts)
    assert contacts.human.shape == (2, body_model.num_downsampled)
    assert contacts.object.shape == (2, 64) and contacts.floor.shape == (2,)
    for value in (contacts.human, contacts.object, contacts.floor):
        assert not value.requires_grad and value.min() >= 0 and value.max() <= 1
    wrong = build(ScoreHOIContactEstimator, 2, num_body_points=body_model.num_downsampled + 1, **TINY_CONTACT)
    with pytest.raises(ValueError, match="num_body_points"):
        wrong.bind(randn(2, 32, 4, 4), crop_intrinsics(2), (SIZE, SIZE))(state)
    with pytest.raises(ValueError, match="batch size"):
        model.bind(randn(3, 32, 4, 4), crop_intrinsics(3), (SIZE, SIZE))(state)


def test_contacts_use_geometry_and_image(estimator):
    body, objects, camera = geometry(2)
    K = crop_intrinsics(2)
    feature_map = randn(2, 32, 4, 4, seed=3)
    with torch.no_grad():
        base = estimator(body, objects, camera, K, feature_map, (SIZE, SIZE))
        moved_body = body.clone()
        moved_body[:, :5] += torch.tensor([0.05, 0.0, 0.0])
        moved = estimator(moved_body, objects, camera, K, feature_map, (SIZE, SIZE))
        new_image = estimator(body, objects, camera, K, feature_map.flip(-1), (SIZE, SIZE))
    assert (moved.human_logits - base.human_logits).abs().amax(dim=1).min() > 1e-4
    assert (moved.object_logits - base.object_logits).abs().amax(dim=1).min() > 1e-4
    assert (new_image.human_logits - base.human_logits).abs().amax(dim=1).min() > 1e-4


def test_sample_image_features_pixel_convention():
    height, width = 6, 8
    # A feature map at pixel resolution whose two channels hold each pixel's (u, v) coordinate.
    v, u = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                          indexing="ij")
    feature_map = torch.stack([u, v])[None] + 1.0  # + 1 so that "outside" (0) is distinguishable
    K = torch.tensor([[[10.0, 0.0, 3.0], [0.0, 10.0, 2.0], [0.0, 0.0, 1.0]]])
    pixels = torch.tensor([[2.0, 3.0], [4.25, 1.5], [7.0, 5.0]])
    depth = 2.0
    points = torch.cat([(pixels - K[0, :2, 2]) / 10.0 * depth, torch.full((3, 1), depth)], dim=1)[None]
    behind = torch.tensor([[[0.0, 0.0, -1.0]]])
    sampled = sample_image_features(feature_map, torch.cat([points, behind], dim=1), K, (height, width))
    assert torch.allclose(sampled[0, :3], pixels + 1.0, atol=1e-5)
    assert torch.equal(sampled[0, 3], torch.zeros(2))


def test_save_and_load_are_bit_identical(tmp_path):
    regressor = build(ScoreHOIRegressor, 0, **TINY_REGRESSOR)
    estimator = build(ScoreHOIContactEstimator, 1, num_body_points=NUM_BODY, **TINY_CONTACT)
    pixels, keypoints, K = inputs(2)
    with torch.no_grad():
        regressor.train()(pixels, keypoints, K)  # non-default BatchNorm running statistics
    for model, folder in ((regressor.eval(), tmp_path / "regressor"), (estimator.eval(), tmp_path / "contact")):
        model.save_pretrained(folder)
        assert (folder / "diffusion_pytorch_model.safetensors").is_file()
        loaded = type(model).from_pretrained(folder)
        config, reloaded_config = (json.loads(m.to_json_string()) for m in (model, loaded))
        reloaded_config.pop("_name_or_path")
        assert reloaded_config == config
        saved, restored = model.state_dict(), loaded.state_dict()
        assert saved.keys() == restored.keys()
        for name in saved:
            assert torch.equal(saved[name], restored[name]), name
        assert not loaded.training
    loaded = ScoreHOIRegressor.from_pretrained(tmp_path / "regressor")
    body, objects, camera = geometry(2)
    with torch.no_grad():
        assert torch.equal(loaded(pixels, keypoints, K).x0, regressor(pixels, keypoints, K).x0)
        contact = ScoreHOIContactEstimator.from_pretrained(tmp_path / "contact")
        feature_map = randn(2, 32, 4, 4)
        assert torch.equal(contact(body, objects, camera, K, feature_map, (SIZE, SIZE)).human_logits,
                           estimator(body, objects, camera, K, feature_map, (SIZE, SIZE)).human_logits)


def test_bad_inputs_name_the_argument(regressor, estimator):
    pixels, keypoints, K = inputs(2)
    with pytest.raises(ValueError, match="`pixel_values`"):
        regressor(pixels[:, :3], keypoints, K)
    with pytest.raises(ValueError, match="`pixel_values`"):
        regressor(pixels[:, :, :16, :16], keypoints, K)
    nan_pixels = pixels.clone()
    nan_pixels[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="`pixel_values`"):
        regressor(nan_pixels, keypoints, K)
    with pytest.raises(ValueError, match="`object_keypoints`"):
        regressor(pixels, keypoints[..., :2], K)
    with pytest.raises(ValueError, match="`object_keypoints`"):
        regressor(pixels, keypoints[:1], K)
    with pytest.raises(ValueError, match="`intrinsics`"):
        regressor(pixels, keypoints, K[:, :2])
    with pytest.raises(TypeError, match="`pixel_values`"):
        regressor(pixels.numpy(), keypoints, K)

    body, objects, camera = geometry(2)
    feature_map = randn(2, 32, 4, 4)
    args = dict(body_points=body, object_points=objects, camera_translation=camera, intrinsics=K,
                feature_map=feature_map, image_size=(SIZE, SIZE))
    bad = {
        "body_points": body[:, :-1],
        "object_points": objects[:1],
        "camera_translation": camera[:, :2],
        "intrinsics": K[:1],
        "feature_map": feature_map[:, :16],
        "image_size": (SIZE,),
    }
    for name, value in bad.items():
        with pytest.raises(ValueError, match=name):
            estimator(**{**args, name: value})
