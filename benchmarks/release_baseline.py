"""A refinement loop shaped like the ScoreHOI release, as a speed baseline (random weights; timing only).

What makes the release slow, reproduced on our own components:

* a ~362 M-parameter residual-MLP denoiser (sinusoidal time embedding, a 2048-d condition vector: an image
  feature plus an embedding of the 64 object keypoints, residual blocks of width ~4096 with time scale-shift), run
  with the condition re-embedded at every step;
* its loop: ``num_cycles`` (20 in the release) cycles of DDIM inversion ``0 → t_start`` and guided DDIM
  denoising back, ``t_start = 50``, stride 5, i.e. 10 + 10 denoiser calls per cycle;
* in every guided step a FULL SMPL-H forward (smplx, through :meth:`BodyModel.forward`) and its backward,
  with the downsampled body vertices picked by a Python loop over the batch.

The guidance terms themselves are ours (:func:`~scorehoi_diffusers.guidance.guidance_loss`, contact to
the 64 keypoints as the release did); they are a small share of the cost either way.
"""
from __future__ import annotations

import math

import torch
from torch import nn

from scorehoi_diffusers.body import BodyModel
from scorehoi_diffusers.contacts import Contacts
from scorehoi_diffusers.guidance import GuidanceConfig, GuidanceInputs, guidance_loss
from scorehoi_diffusers.objects import ObjectTemplate
from scorehoi_diffusers.params import X0_DIM, HOIParamCodec, HOIParams
from scorehoi_diffusers.schedulers.scheduling_guided_ddim import GuidedDDIMScheduler

IMAGE_FEATURE_DIM = 2048
NUM_KEYPOINTS = 64


def _sinusoidal(timestep: torch.Tensor, dim: int) -> torch.Tensor:
    """``(B,)`` timesteps to ``(B, dim)`` sin/cos features."""
    half = dim // 2
    frequencies = torch.exp(-math.log(10000.0) * torch.arange(half, dtype=torch.float32) / (half - 1))
    angles = timestep.float()[:, None] * frequencies[None]
    features = torch.cat([angles.sin(), angles.cos()], dim=-1)
    return nn.functional.pad(features, (0, dim - 2 * half))


class _ResidualBlock(nn.Module):
    """Time scale-shift, then ``state + MLP(state → width (+ condition) → width → width → state)``."""

    def __init__(self, state_dim: int, width: int, time_dim: int, condition_dim: int):
        super().__init__()
        self.time = nn.Sequential(nn.SiLU(), nn.Linear(time_dim, 2 * state_dim))
        self.norm = nn.LayerNorm(state_dim)
        self.state_in = nn.Linear(state_dim, width)
        self.condition_in = nn.Linear(condition_dim, width)
        self.hidden = nn.Sequential(nn.GELU(), nn.Linear(width, width), nn.GELU(), nn.Linear(width, width), nn.GELU())
        self.out = nn.Linear(width, state_dim)

    def forward(self, state: torch.Tensor, time: torch.Tensor, condition: torch.Tensor) -> torch.Tensor:
        scale, shift = self.time(time).chunk(2, dim=-1)
        state = state * (1 + scale) + shift
        hidden = self.state_in(self.norm(state)) + self.condition_in(condition)
        return state + self.out(self.hidden(hidden))


class ReleaseShapedDenoiser(nn.Module):
    """ε-prediction residual MLP of the release's size; with the defaults 362.1 M parameters.

    Args:
        width: hidden width of the blocks.
        num_blocks: residual blocks.
    """

    def __init__(self, width: int = 4064, num_blocks: int = 8):
        super().__init__()
        time_dim = 4 * X0_DIM
        self.time_dim = time_dim
        self.time_mlp = nn.Sequential(nn.Linear(X0_DIM, time_dim), nn.GELU(), nn.Linear(time_dim, time_dim))
        self.keypoint_embedding = nn.Linear(NUM_KEYPOINTS * 3, IMAGE_FEATURE_DIM)
        self.state_in = nn.Linear(X0_DIM, X0_DIM)
        self.blocks = nn.ModuleList(
            [_ResidualBlock(X0_DIM, width, time_dim, IMAGE_FEATURE_DIM) for _ in range(num_blocks)]
        )
        self.state_out = nn.Linear(X0_DIM, X0_DIM)

    def forward(
        self, sample: torch.Tensor, timestep: int, image_feature: torch.Tensor, keypoints: torch.Tensor
    ) -> torch.Tensor:
        """``sample (B, 331)``, ``image_feature (B, 2048)``, ``keypoints (B, 64, 3)`` → ε ``(B, 331)``."""
        batch = sample.shape[0]
        time = self.time_mlp(_sinusoidal(torch.full((batch,), timestep), X0_DIM))
        condition = image_feature + self.keypoint_embedding(keypoints.reshape(batch, -1))
        state = self.state_in(sample)
        for block in self.blocks:
            state = block(state, time, condition)
        return self.state_out(state)


class ReleaseShapedRefiner:
    """The release's refinement loop around :class:`ReleaseShapedDenoiser` (see the module docstring).

    Args:
        body_model: SMPL-H body (full forward in every guided step).
        denoiser: the denoiser; a fresh random :class:`ReleaseShapedDenoiser` by default.
        guidance_config: term weights; the release's by default.
    """

    def __init__(self, body_model: BodyModel, denoiser: nn.Module = None, guidance_config: GuidanceConfig = None):
        self.body_model = body_model
        self.denoiser = (denoiser if denoiser is not None else ReleaseShapedDenoiser()).eval()
        self.scheduler = GuidedDDIMScheduler()
        self.codec = HOIParamCodec.default()
        self.config = guidance_config if guidance_config is not None else GuidanceConfig.release()

    def _guidance_gradient(self, x_t, noise, t, camera_translation, template, contacts) -> torch.Tensor:
        with torch.enable_grad():
            x_t = x_t.detach().requires_grad_(True)
            x0_hat = self.scheduler.predict_original_sample(noise.detach(), t, x_t)
            params = self.codec.decode(x0_hat, camera_translation)
            vertices = self.body_model(params, frame="pelvis").vertices  # full smplx forward
            # The release picks the downsampled vertices sample by sample.
            body_points = torch.stack(
                [vertices[b][self.body_model.downsample_index] for b in range(vertices.shape[0])]
            )
            keypoints = template.pose(template.keypoints, params.object_rotation, params.object_translation)
            sdf = template.signed_distance_posed(body_points, params.object_rotation, params.object_translation)
            inputs = GuidanceInputs(
                body_points=body_points, object_points=keypoints, body_object_sdf=sdf,
                human_contact=contacts.human, object_contact=contacts.object, floor_contact=contacts.floor,
            )
            loss, _ = guidance_loss(inputs, self.config)
            (gradient,) = torch.autograd.grad(loss.sum(), x_t)
        return gradient

    @torch.no_grad()
    def __call__(
        self,
        initial_params: HOIParams,
        template: ObjectTemplate,
        contacts: Contacts,
        image_feature: torch.Tensor,
        num_cycles: int = 20,
        t_start: int = 50,
        stride: int = 5,
    ) -> torch.Tensor:
        """Refine ``initial_params``; returns the final body vertices ``(B, V, 3)`` (camera space)."""
        camera_translation = initial_params.camera_translation
        keypoints = template.keypoints.expand(initial_params.batch_size, -1, -1)
        grid = self.scheduler.refinement_timesteps(t_start, stride).tolist()
        self.scheduler.set_refinement_timesteps(t_start, stride)
        x0 = self.codec.encode(initial_params)
        for _ in range(num_cycles):
            latents = x0
            for t, t_next in zip(grid[:-1], grid[1:]):
                noise = self.denoiser(latents, t, image_feature, keypoints)
                latents = self.scheduler.invert_step(noise, t, latents, next_timestep=t_next).next_sample
            for t in reversed(grid[1:]):
                noise = self.denoiser(latents, t, image_feature, keypoints)
                gradient = self._guidance_gradient(latents, noise, t, camera_translation, template, contacts)
                latents = self.scheduler.step(
                    noise, t, latents, guidance_gradient=gradient, guidance_scale=self.config.scale
                ).prev_sample
            x0 = latents
        final = self.codec.decode(x0, camera_translation)
        return self.body_model(final, frame="camera").vertices
