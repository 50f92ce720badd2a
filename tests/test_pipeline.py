import json
import os
from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import DiffusionPipeline

from scorehoi_diffusers import (
    BodyModel,
    Contacts,
    GuidanceConfig,
    GuidedDDIMScheduler,
    ScoreHOIDenoiser,
    ScoreHOIPipeline,
)
from scorehoi_diffusers.contacts import ProximityContactEstimator
from scorehoi_diffusers.guidance import guidance_loss
from scorehoi_diffusers.models.contact_estimator import ScoreHOIContactEstimator
from scorehoi_diffusers.models.regressor import ScoreHOIRegressor
from scorehoi_diffusers.objects import load_object
from scorehoi_diffusers.params import HOIParams, axis_angle_to_matrix

DOWN = torch.tensor([[1.0, 0, 0], [0, -1, 0], [0, 0, -1]])  # body y-up/facing +z -> OpenCV camera, facing it


def small_denoiser(seed: int = 0) -> ScoreHOIDenoiser:
    """The default denoiser with its zero-initialised output layer randomised, so the prior is not a no-op."""
    torch.manual_seed(seed)  # test-only: module init draws from the global RNG
    denoiser = ScoreHOIDenoiser(hidden_size=64, num_layers=2, num_condition_latents=8)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        denoiser.part_out_weight.normal_(0.0, 0.02, generator=generator)
        for block in denoiser.blocks:
            block.modulation_offset[[2, 5]] = 1.0  # open the residual gates
    return denoiser.eval()


def holding_params(batch: int, gap: float = 0.0) -> HOIParams:
    """Arms forward, a box in front of the chest; ``gap`` moves the box away from the body (metres)."""
    params = HOIParams.identity(batch)
    params.global_orient[:] = DOWN
    params.body_pose[:, 15] = axis_angle_to_matrix(torch.tensor([0.0, -1.3, 0.0]))  # left shoulder forward
    params.body_pose[:, 16] = axis_angle_to_matrix(torch.tensor([0.0, 1.3, 0.0]))  # right shoulder forward
    params.object_rotation[:] = DOWN
    params.object_translation[:] = torch.tensor([0.0, -0.25, -(0.35 + gap)])
    return params


def hand_contacts(body: BodyModel, params: HOIParams) -> Contacts:
    """Contacts on the downsampled vertices near the wrists (the hands)."""
    points, joints = body.skin_subset(params)
    wrists = joints[:, [20, 21]]
    near = (torch.cdist(points, wrists).amin(-1) < 0.12).float()
    batch = params.batch_size
    return Contacts(human=near, object=torch.zeros(batch, 64), floor=torch.zeros(batch))


def test_refinement_outputs_have_documented_shapes(pipe, body):
    params = holding_params(2)
    out = pipe(initial_params=params, object="box", num_cycles=2)
    assert out.body_vertices.shape == (2, body.num_vertices, 3)
    assert out.body_faces.shape[1] == 3
    assert out.object_vertices.shape[0] == 2 and out.object_faces.shape[1] == 3
    assert out.guidance_loss_history.shape == (2, 2)
    assert set(out.guidance_term_history) == {"contact", "penetration", "floor"}
    assert len(out.contact_history) == 2
    assert out.contacts.human.shape == (2, body.num_downsampled)
    assert isinstance(out.params, HOIParams) and isinstance(out.initial_params, HOIParams)
    # Camera space: the pelvis sits at the camera translation.
    assert abs(out.body_vertices[:, :, 2].mean().item() - 3.0) < 0.5


def test_zero_cycles_returns_the_initial_estimate(pipe):
    params = holding_params(1)
    out = pipe(initial_params=params, object="box", num_cycles=0)
    torch.testing.assert_close(out.params.body_pose, params.body_pose, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.params.object_translation, params.object_translation)


class RecordingEstimator:
    """Returns a different, known set of contacts at every call and remembers them."""

    def __init__(self):
        self.outputs = []

    def __call__(self, state):
        call = len(self.outputs)
        batch, count = state.body_points.shape[:2]
        human = torch.zeros(batch, count)
        human[:, call::7] = 1.0
        contacts = Contacts(human=human, object=torch.zeros(batch, state.object_points.shape[1]),
                            floor=torch.full((batch,), float(call % 2)))
        self.outputs.append(contacts)
        return contacts


def test_refreshed_contacts_are_the_ones_the_next_cycle_uses(pipe):
    estimator = RecordingEstimator()
    seen = {}

    def record(pipeline, step_index, timestep, callback_kwargs):
        seen.setdefault(step_index // 10, []).append(callback_kwargs["human_contact"].clone())
        return callback_kwargs

    out = pipe(initial_params=holding_params(1), object="box", num_cycles=3, contact_estimator=estimator,
               add_contacts=True, callback_on_step_end=record,
               callback_on_step_end_tensor_inputs=["latents", "human_contact"])
    # Call 0 gives the initial contacts; call c + 1 follows cycle c and must drive cycle c + 1.
    assert len(estimator.outputs) == 4
    for cycle in range(3):
        for used in seen[cycle]:
            torch.testing.assert_close(used, estimator.outputs[cycle].human)
        torch.testing.assert_close(out.contact_history[cycle].human, estimator.outputs[cycle].human)
    torch.testing.assert_close(out.contacts.human, estimator.outputs[3].human)


@pytest.mark.parametrize("add_contacts", [True, False])
@pytest.mark.parametrize("given_in", ["call", "guidance_config"])
def test_a_release_only_refresh_never_raises_a_label(pipe, add_contacts, given_in):
    """With ``add_contacts=False`` each cycle runs on the running minimum of the estimator's labels (a contact can
    be released, not added); with ``True`` on the estimator's latest labels. The call's argument and the guidance
    config's field (used when the argument is left out) say the same."""
    estimator = RecordingEstimator()
    setting = ({"add_contacts": add_contacts} if given_in == "call"
               else {"guidance_config": replace(pipe.default_guidance_config(), add_contacts=add_contacts)})
    out = pipe(initial_params=holding_params(1), object="box", num_cycles=3, contact_estimator=estimator, **setting)
    running = estimator.outputs[0].human
    for cycle in range(1, 4):
        running = torch.minimum(running, estimator.outputs[cycle].human)
        expected = estimator.outputs[cycle].human if add_contacts else running
        used = out.contact_history[cycle].human if cycle < 3 else out.contacts.human
        torch.testing.assert_close(used, expected)
    if not add_contacts:
        # The recording's labels move to other vertices at every call, so nothing stays in contact.
        assert out.contacts.human.sum() == 0 and out.contact_history[1].floor.sum() == 0


def test_released_by_takes_the_lower_label_and_keeps_nan():
    previous = Contacts(human=torch.tensor([[0.9, 0.2, float("nan"), 0.6]]), object=torch.tensor([[0.4, 0.1]]),
                        floor=torch.tensor([1.0]))
    refreshed = Contacts(human=torch.tensor([[0.5, 0.8, 0.3, float("nan")]]), object=torch.tensor([[0.7, 0.0]]),
                         floor=torch.tensor([0.0]))
    released = previous.released_by(refreshed)
    torch.testing.assert_close(released.human, torch.tensor([[0.5, 0.2, float("nan"), float("nan")]]),
                               equal_nan=True)
    torch.testing.assert_close(released.object, torch.tensor([[0.4, 0.0]]))
    torch.testing.assert_close(released.floor, torch.tensor([0.0]))


def test_frozen_contacts_keep_the_initial_ones(pipe):
    estimator = RecordingEstimator()
    out = pipe(initial_params=holding_params(1), object="box", num_cycles=2, contact_estimator=estimator,
               refresh_contacts=False)
    assert len(estimator.outputs) == 1
    for used in out.contact_history:
        torch.testing.assert_close(used.human, estimator.outputs[0].human)


def test_guidance_pulls_labelled_contacts_onto_the_object(pipe, body):
    params = holding_params(1, gap=0.12)
    contacts = hand_contacts(body, params)
    assert contacts.human.sum() > 5
    kwargs = dict(initial_params=params, object="box", contacts=contacts, num_cycles=3, refresh_contacts=False)
    unguided = pipe(**kwargs, guidance_scale=0.0)
    config = GuidanceConfig(contact=1.0, penetration=0.1, floor=0.0)
    guided = pipe(**kwargs, guidance_config=config, guidance_scale=20.0)
    before = unguided.guidance_term_history["contact"][-1]
    after = guided.guidance_term_history["contact"][-1]
    assert after.item() < 0.5 * before.item()


def test_output_types_and_tuple(pipe):
    params = holding_params(1)
    out_np = pipe(initial_params=params, object="ball", num_cycles=1, output_type="np")
    assert isinstance(out_np.body_vertices, np.ndarray) and isinstance(out_np.params["betas"], np.ndarray)
    assert isinstance(out_np.contacts["human"], np.ndarray)
    out_mesh = pipe(initial_params=params, object="ball", num_cycles=1, output_type="mesh")
    assert len(out_mesh.meshes) == 1 and len(out_mesh.meshes[0]["body"].faces) > 0
    as_tuple = pipe(initial_params=params, object="ball", num_cycles=1, return_dict=False)
    assert isinstance(as_tuple, tuple) and isinstance(as_tuple[0], HOIParams)
    with pytest.raises(ValueError, match="output_type"):
        pipe(initial_params=params, object="ball", output_type="pil")


def test_same_generator_same_output_and_global_rng_untouched(pipe):
    params = holding_params(2)
    state = torch.get_rng_state()
    outs = [
        pipe(initial_params=params, object="box", num_cycles=2, eta=0.5, generator=torch.Generator().manual_seed(s))
        for s in (3, 3, 4)
    ]
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(outs[0].body_vertices, outs[1].body_vertices)
    assert not torch.equal(outs[0].body_vertices, outs[2].body_vertices)


def test_batch_independence(pipe):
    params = HOIParams.cat([holding_params(1, gap=g) for g in (0.0, 0.1, 0.2)])
    joint = pipe(initial_params=params, object="box", num_cycles=2)
    alone = pipe(initial_params=params[1], object="box", num_cycles=2)
    torch.testing.assert_close(joint.body_vertices[1:2], alone.body_vertices, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(joint.object_vertices[1:2], alone.object_vertices, atol=1e-5, rtol=1e-5)


def test_nan_initial_params_are_named(pipe):
    params = holding_params(2)
    params.betas[1, 0] = float("nan")
    with pytest.raises(ValueError, match=r"samples \[1\]"):
        pipe(initial_params=params, object="box", num_cycles=1)


def test_required_inputs_are_explained(pipe):
    with pytest.raises(ValueError, match="`object` is required"):
        pipe(initial_params=holding_params(1))
    with pytest.raises(ValueError, match="initial_params"):
        pipe(object="box")
    with pytest.raises(ValueError, match="no regressor"):
        pipe(image=np.zeros((64, 64, 3), np.uint8), human_mask=np.ones((64, 64)), object_mask=np.ones((64, 64)),
             object="box")


def test_hub_layout_round_trip_offline(pipe, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipe.save_pretrained(tmp_path)
    index = json.loads((tmp_path / "model_index.json").read_text())
    assert index["_class_name"] == ["pipeline", "ScoreHOIPipeline"]
    assert (tmp_path / "pipeline.py").read_text().startswith("from scorehoi_diffusers import ScoreHOIPipeline")
    files = [p.name for p in tmp_path.rglob("*") if p.is_file()]
    assert not [f for f in files if f.endswith((".bin", ".pkl", ".pt", ".ckpt"))]
    assert "diffusion_pytorch_model.safetensors" in os.listdir(tmp_path / "denoiser")

    params = holding_params(2, gap=0.05)
    reference = pipe(initial_params=params, object="box", num_cycles=2)
    for loaded in (
        ScoreHOIPipeline.from_pretrained(tmp_path),
        DiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True),
    ):
        assert type(loaded).__name__ == "ScoreHOIPipeline"
        loaded.set_progress_bar_config(disable=True)
        again = loaded(initial_params=params, object="box", num_cycles=2)
        assert torch.equal(again.body_vertices, reference.body_vertices)
        assert torch.equal(again.object_vertices, reference.object_vertices)


def test_end_to_end_from_pictures(body):
    torch.manual_seed(0)  # test-only: module init draws from the global RNG
    regressor = ScoreHOIRegressor().eval()
    estimator = ScoreHOIContactEstimator(num_body_points=body.num_downsampled).eval()
    pipeline = ScoreHOIPipeline(small_denoiser(), GuidedDDIMScheduler(), body, regressor=regressor,
                                contact_estimator=estimator)
    pipeline.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (200, 160, 3), dtype=np.uint8) for _ in range(2)]
    human = np.zeros((200, 160), bool)
    human[40:180, 50:110] = True
    obj = np.zeros((200, 160), bool)
    obj[90:130, 90:140] = True
    out = pipeline(image=images, human_mask=[human, human], object_mask=[obj, obj], object="box", num_cycles=1)
    assert out.body_vertices.shape == (2, body.num_vertices, 3)
    assert torch.isfinite(out.body_vertices).all()
    # Both samples have the same masks but different pictures: the regressor's estimate depends on the picture.
    assert not torch.equal(out.initial_params.camera_translation[0], out.initial_params.camera_translation[1])
    assert out.contacts.human.shape == (2, body.num_downsampled)


def test_pipeline_with_regressor_saves_and_reloads(body, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    torch.manual_seed(1)  # test-only: module init draws from the global RNG
    pipeline = ScoreHOIPipeline(small_denoiser(), GuidedDDIMScheduler(), body, regressor=ScoreHOIRegressor().eval(),
                                contact_estimator=ScoreHOIContactEstimator(num_body_points=body.num_downsampled).eval())
    pipeline.save_pretrained(tmp_path)
    assert (tmp_path / "regressor" / "diffusion_pytorch_model.safetensors").is_file()
    loaded = DiffusionPipeline.from_pretrained(tmp_path, trust_remote_code=True)
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, (120, 100, 3), dtype=np.uint8)
    human = np.zeros((120, 100), bool)
    human[20:110, 30:70] = True
    obj = np.zeros((120, 100), bool)
    obj[60:90, 55:85] = True
    for p in (pipeline, loaded):
        p.set_progress_bar_config(disable=True)
    kwargs = dict(image=image, human_mask=human, object_mask=obj, object="box", num_cycles=1)
    torch.testing.assert_close(loaded(**kwargs).body_vertices, pipeline(**kwargs).body_vertices, atol=0, rtol=0)


def test_pipeline_guidance_config_is_the_default_and_survives_save(body, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    pipeline = ScoreHOIPipeline(small_denoiser(), GuidedDDIMScheduler(), body,
                                guidance={"scale": 7.0, "penetration": 1.0})
    pipeline.set_progress_bar_config(disable=True)
    assert pipeline.default_guidance_config() == GuidanceConfig(scale=7.0, penetration=1.0)
    params = holding_params(1, gap=0.1)
    explicit = pipeline(initial_params=params, object="box", num_cycles=1,
                        guidance_config=GuidanceConfig(scale=7.0, penetration=1.0))
    implicit = pipeline(initial_params=params, object="box", num_cycles=1)
    assert torch.equal(explicit.body_vertices, implicit.body_vertices)
    pipeline.save_pretrained(tmp_path)
    reloaded = ScoreHOIPipeline.from_pretrained(tmp_path)
    assert reloaded.default_guidance_config() == pipeline.default_guidance_config()
    with pytest.raises(ValueError, match="GuidanceConfig.scale"):
        ScoreHOIPipeline(small_denoiser(), GuidedDDIMScheduler(), body, guidance={"scale": -1.0})


def test_a_call_with_keypoints_defaults_to_the_keypoint_guidance(body, tmp_path, monkeypatch):
    """``keypoint_guidance`` is the default when keypoints are given (and survives saving); without keypoints, or
    when a pipeline has none, ``guidance`` is."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    plain, with_keypoints = {"scale": 7.0, "penetration": 1.0}, {"scale": 3.0, "add_contacts": False}
    pipeline = ScoreHOIPipeline(small_denoiser(), GuidedDDIMScheduler(), body, guidance=plain,
                                keypoint_guidance=with_keypoints)
    pipeline.set_progress_bar_config(disable=True)
    assert pipeline.default_guidance_config() == GuidanceConfig(**plain)
    assert pipeline.default_guidance_config(keypoints=True) == GuidanceConfig(**with_keypoints)
    generator = torch.Generator().manual_seed(0)
    keypoints = torch.cat([128 + 40 * torch.randn(33, 2, generator=generator), torch.ones(33, 1)], dim=1)
    intrinsics = torch.tensor([[500.0, 0.0, 128.0], [0.0, 500.0, 128.0], [0.0, 0.0, 1.0]])
    kwargs = dict(initial_params=holding_params(1, gap=0.1), object="box", num_cycles=1, intrinsics=intrinsics)

    def vertices(**extra):
        return pipeline(**kwargs, **extra).body_vertices

    implicit = vertices(keypoints=keypoints)
    assert torch.equal(implicit, vertices(keypoints=keypoints, guidance_config=GuidanceConfig(**with_keypoints)))
    assert not torch.equal(implicit, vertices(keypoints=keypoints, guidance_config=GuidanceConfig(**plain)))
    assert torch.equal(vertices(), vertices(guidance_config=GuidanceConfig(**plain)))
    pipeline.save_pretrained(tmp_path)
    reloaded = ScoreHOIPipeline.from_pretrained(tmp_path)
    assert reloaded.default_guidance_config(keypoints=True) == GuidanceConfig(**with_keypoints)
    alone = ScoreHOIPipeline(small_denoiser(), GuidedDDIMScheduler(), body, guidance=plain)
    assert alone.default_guidance_config(keypoints=True) == GuidanceConfig(**plain)
    with pytest.raises(ValueError, match="keypoint_guidance"):
        ScoreHOIPipeline(small_denoiser(), GuidedDDIMScheduler(), body, keypoint_guidance={"contacts": 1.0})


def pictures_pipeline(body, seed: int = 0):
    """A pipeline with a (random) regressor and learned contact estimator, and one picture with its masks."""
    torch.manual_seed(seed)  # test-only: module init draws from the global RNG
    pipeline = ScoreHOIPipeline(small_denoiser(), GuidedDDIMScheduler(), body, regressor=ScoreHOIRegressor().eval(),
                                contact_estimator=ScoreHOIContactEstimator(num_body_points=body.num_downsampled).eval())
    pipeline.set_progress_bar_config(disable=True)
    rng = np.random.default_rng(seed)
    human = np.zeros((120, 100), bool)
    human[20:110, 30:70] = True
    obj = np.zeros((120, 100), bool)
    obj[60:90, 55:85] = True
    return pipeline, dict(image=rng.integers(0, 255, (120, 100, 3), dtype=np.uint8), human_mask=human,
                          object_mask=obj, object="box")


class CountingEstimators:
    """Wraps ``contact_estimator.bind`` so that the bound estimators count their calls."""

    def __init__(self, model):
        self.calls = 0
        self.bind = model.bind

    def __call__(self, *args):
        bound = self.bind(*args)

        def counted(state):
            self.calls += 1
            return bound(state)

        return counted


@pytest.mark.parametrize("num_cycles", [0, 2])
def test_pictures_in_uses_the_learned_contact_estimator(body, num_cycles, monkeypatch):
    pipeline, pictures = pictures_pipeline(body)
    counter = CountingEstimators(pipeline.contact_estimator)
    monkeypatch.setattr(pipeline.contact_estimator, "bind", counter)
    out = pipeline(**pictures, num_cycles=num_cycles)
    assert counter.calls == num_cycles + 1  # the initial contacts, then one refresh per cycle
    # An explicit estimator replaces the learned one.
    counter.calls = 0
    explicit = pipeline(**pictures, num_cycles=num_cycles, contact_estimator=ProximityContactEstimator())
    assert counter.calls == 0
    assert not torch.equal(explicit.contacts.human, out.contacts.human)


def test_contact_estimator_of_another_body_falls_back_to_proximity(body, caplog):
    """A pipeline trained with one body and loaded with another (the user's SMPL-H) still reconstructs."""
    import logging

    pipeline, pictures = pictures_pipeline(body)
    mismatched = ScoreHOIContactEstimator(num_body_points=body.num_downsampled + 7).eval()
    pipeline.register_modules(contact_estimator=mismatched)
    with caplog.at_level(logging.WARNING, logger="scorehoi_diffusers.pipelines.pipeline_scorehoi"):
        out = pipeline(**pictures, num_cycles=1)
    assert any("proximity" in record.getMessage() for record in caplog.records)
    proximity = pipeline(**pictures, num_cycles=1, contact_estimator=ProximityContactEstimator())
    assert torch.equal(out.contacts.human, proximity.contacts.human)


def test_prepare_initial_estimate_is_what_pictures_in_starts_from(body):
    pipeline, pictures = pictures_pipeline(body, seed=1)
    batch = pipeline.image_processor.preprocess(pictures["image"], pictures["human_mask"], pictures["object_mask"])
    params, image_tokens, estimator = pipeline.prepare_initial_estimate(batch, load_object("box"))
    out = pipeline(**pictures, num_cycles=0)
    for name in ("global_orient", "body_pose", "betas", "object_rotation", "object_translation", "camera_translation"):
        assert torch.equal(getattr(out.initial_params, name), getattr(params, name)), name
    # With no cycles the output is that estimate (through the x0 encoding).
    torch.testing.assert_close(out.params.object_translation, params.object_translation, atol=1e-6, rtol=0)
    assert image_tokens.shape[0] == 1 and estimator is not None


def test_guidance_gradient_is_the_chain_rule_through_x0(pipe, body):
    """``guidance_gradient`` equals autograd of ``L(x̂0(x_t))`` with respect to ``x_t`` (ε held constant)."""
    params = holding_params(2, gap=0.05)
    template = load_object("box")
    contacts = hand_contacts(body, params)
    config = GuidanceConfig(scale=1.0, contact=0.5, penetration=1.0, floor=0.5, pose_prior=0.05)
    x0 = pipe.codec.encode(params)
    generator = torch.Generator().manual_seed(3)
    latents = x0 + 0.05 * torch.randn(x0.shape, generator=generator)
    noise = torch.randn(x0.shape, generator=generator)
    t = 20
    gradient = pipe.guidance_gradient(latents, noise, t, template, params.camera_translation, contacts, {}, config)

    x_t = latents.clone().requires_grad_(True)
    x0_hat = (x_t - (1 - pipe.scheduler.alphas_cumprod[t]) ** 0.5 * noise) / pipe.scheduler.alphas_cumprod[t] ** 0.5
    geometry = pipe._geometry(x0_hat, params.camera_translation, template)
    inputs = pipe._guidance_inputs(geometry, contacts, params.camera_translation, {}, config)
    assert inputs.pose_negative_log_likelihood is not None  # the pose prior's term is in the chain too
    (expected,) = torch.autograd.grad(guidance_loss(inputs, config)[0].sum(), x_t)
    assert gradient.abs().max() > 0
    torch.testing.assert_close(gradient, expected, rtol=1e-4, atol=1e-6)


def test_guidance_config_dict_is_the_config(pipe):
    params = holding_params(1, gap=0.05)
    fields = {"scale": 5.0, "penetration": 1.0, "contact": 0.2}
    from_dict = pipe(initial_params=params, object="box", num_cycles=1, guidance_config=fields)
    from_config = pipe(initial_params=params, object="box", num_cycles=1, guidance_config=GuidanceConfig(**fields))
    assert torch.equal(from_dict.body_vertices, from_config.body_vertices)


def test_callback_float64_latents_are_cast_back(pipe):
    params = holding_params(1, gap=0.05)

    def to_float64(pipeline, step_index, timestep, callback_kwargs):
        return {"latents": callback_kwargs["latents"].double()}

    plain = pipe(initial_params=params, object="box", num_cycles=1)
    cast = pipe(initial_params=params, object="box", num_cycles=1, callback_on_step_end=to_float64)
    assert cast.body_vertices.dtype == torch.float32
    assert torch.equal(cast.body_vertices, plain.body_vertices)  # float32 -> float64 -> float32 is exact


def test_guidance_scale_zero_takes_no_gradient(pipe, monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("guidance_gradient was called with guidance_scale=0")

    monkeypatch.setattr(pipe, "guidance_gradient", fail)
    pipe(initial_params=holding_params(1), object="box", num_cycles=1, guidance_scale=0.0)
