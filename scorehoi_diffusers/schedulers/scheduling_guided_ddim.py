"""DDIM with DDIM inversion and score guidance: the sampler of ScoreHOI's refinement cycles.

One refinement cycle runs on the grid `t = 0, s, 2s, …, t_start`: DDIM inversion upward from the
current estimate at `t = 0` to `t_start` ([`~GuidedDDIMScheduler.invert_step`]), then guided DDIM denoising back down
to `t = 0` ([`~GuidedDDIMScheduler.step`] with `guidance_gradient`).
"""

import numbers
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from diffusers.configuration_utils import register_to_config
from diffusers.schedulers.scheduling_ddim import DDIMScheduler, DDIMSchedulerOutput

# diffusers' pipeline loader looks `SchedulerMixin` up in the module that defines a scheduler class; a custom
# scheduler whose module lacks it cannot be loaded by `DiffusionPipeline.from_pretrained`.
from diffusers.schedulers.scheduling_utils import SchedulerMixin  # noqa: F401
from diffusers.utils import BaseOutput

from ..strict_config import StrictConfigMixin

__all__ = ["GuidedDDIMScheduler", "GuidedDDIMInversionOutput"]


# The arguments whose default here differs from `DDIMScheduler`'s.
_DEFAULTS_DIFFERING_FROM_DDIM = ("beta_schedule", "clip_sample")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


@dataclass
class GuidedDDIMInversionOutput(BaseOutput):
    """
    Output of [`GuidedDDIMScheduler.invert_step`].

    Args:
        next_sample (`torch.Tensor` of shape `(B, D)`):
            The sample at the next, noisier timestep `t′ > t`; the model input of the next inversion step.
        pred_original_sample (`torch.Tensor` of shape `(B, D)`):
            The predicted clean sample `x̂0` at timestep `t`.
    """

    next_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None = None


class GuidedDDIMScheduler(StrictConfigMixin, DDIMScheduler):
    """
    [`DDIMScheduler`] with DDIM inversion and score-guided steps, as used by ScoreHOI's refinement cycles.

    With `guidance_gradient=None` (or zero), [`~GuidedDDIMScheduler.step`] is exactly [`DDIMScheduler.step`]. The
    defaults follow ScoreHOI: 1000 training steps, the cosine (`"squaredcos_cap_v2"`) schedule, ε-prediction, no
    clipping, η = 0 (the caller's `eta`, default 0). `timestep_spacing="leading"` makes `set_timesteps(1000 // s)` give
    `t = 0, s, 2s, …` and `step` at `t` land on `t − s`.

    `set_alpha_to_one` defaults to `True` (as in [`DDIMScheduler`]): it only matters for a step *from* `t = 0`, which
    the refinement grid never takes (its last step goes `s → 0`, so refinement and the inversion round trip do not
    depend on it); in a full sampling run it makes the final step land on the clean `x̂0` instead of on the `t = 0`
    noise level, which for this schedule still holds `√(1 − ᾱ_0) ≈ 0.0064` of the predicted noise.

    The arguments are those of [`DDIMScheduler`]; only the defaults differ, so any DDIM config loads with
    `GuidedDDIMScheduler.from_config(ddim.config)` and vice versa.
    """

    @register_to_config
    def __init__(
        self,
        num_train_timesteps: int = 1000,
        beta_start: float = 0.0001,
        beta_end: float = 0.02,
        beta_schedule: str = "squaredcos_cap_v2",
        trained_betas: np.ndarray | list[float] | None = None,
        clip_sample: bool = False,
        set_alpha_to_one: bool = True,
        steps_offset: int = 0,
        prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon",
        thresholding: bool = False,
        dynamic_thresholding_ratio: float = 0.995,
        clip_sample_range: float = 1.0,
        sample_max_value: float = 1.0,
        timestep_spacing: Literal["leading", "trailing", "linspace"] = "leading",
        rescale_betas_zero_snr: bool = False,
    ):
        super().__init__(
            num_train_timesteps=num_train_timesteps,
            beta_start=beta_start,
            beta_end=beta_end,
            beta_schedule=beta_schedule,
            trained_betas=trained_betas,
            clip_sample=clip_sample,
            set_alpha_to_one=set_alpha_to_one,
            steps_offset=steps_offset,
            prediction_type=prediction_type,
            thresholding=thresholding,
            dynamic_thresholding_ratio=dynamic_thresholding_ratio,
            clip_sample_range=clip_sample_range,
            sample_max_value=sample_max_value,
            timestep_spacing=timestep_spacing,
            rescale_betas_zero_snr=rescale_betas_zero_snr,
        )
        # `from_config` drops the arguments listed in `_use_default_values` and lets the target class fill in its own
        # defaults; ours differ from DDIMScheduler's for these, so they must travel with an in-memory config too.
        used_defaults = self.config.get("_use_default_values", [])
        used_defaults = [k for k in used_defaults if k not in _DEFAULTS_DIFFERING_FROM_DDIM]
        self.register_to_config(_use_default_values=used_defaults)
        # Set by `set_refinement_timesteps`: the timesteps `invert_step` is called at, ascending.
        self.inversion_timesteps = None

    def set_timesteps(self, num_inference_steps: int, device: str | torch.device = None):
        """
        [`DDIMScheduler.set_timesteps`]; it defines a denoising schedule only, so it clears `inversion_timesteps`.
        """
        super().set_timesteps(num_inference_steps, device=device)
        self.inversion_timesteps = None

    def refinement_timesteps(
        self, t_start: int = 50, stride: int = 5, device: str | torch.device = None
    ) -> torch.LongTensor:
        """
        The refinement grid `t = 0, s, 2s, …, t_start`, ascending.

        A refinement cycle inverts upward along it (`invert_step` at every entry but the last) and then denoises
        downward along it (`step` at every entry but the first, i.e. at `t_start, …, s`).

        Args:
            t_start (`int`, defaults to 50):
                The noisiest timestep of the cycle. Must be a multiple of `stride` and below `num_train_timesteps`.
            stride (`int`, defaults to 5):
                The step size `s`. Must divide `num_train_timesteps` (the DDIM step size is
                `num_train_timesteps // num_inference_steps`).
            device (`str | torch.device`, *optional*):
                The device of the returned tensor.

        Returns:
            `torch.LongTensor` of shape `(t_start // stride + 1,)`.
        """
        num_train_timesteps = self.config.num_train_timesteps
        if not _is_int(stride) or stride < 1:
            raise ValueError(f"`stride` must be a positive int, got {stride!r}.")
        stride = int(stride)
        if num_train_timesteps % stride != 0:
            raise ValueError(
                f"`stride`={stride} must divide `num_train_timesteps`={num_train_timesteps}, so that DDIM steps of "
                f"`num_train_timesteps // num_inference_steps` land on the grid; choose a divisor such as 5, 10 or 20."
            )
        if not _is_int(t_start) or not stride <= t_start < num_train_timesteps:
            raise ValueError(
                f"`t_start` must be an int in [{stride}, {num_train_timesteps - 1}] (at least one step of `stride`), "
                f"got {t_start!r}."
            )
        if t_start % stride != 0:
            raise ValueError(
                f"`t_start`={t_start} must be a multiple of `stride`={stride}, e.g. {t_start - t_start % stride}."
            )
        return torch.arange(0, int(t_start) + 1, stride, dtype=torch.long, device=device)

    def set_refinement_timesteps(self, t_start: int = 50, stride: int = 5, device: str | torch.device = None):
        """
        Prepares one refinement cycle on the grid of [`~GuidedDDIMScheduler.refinement_timesteps`].

        Sets the DDIM step size to `stride` (`set_timesteps(num_train_timesteps // stride)`), then
        `self.timesteps = [t_start, t_start − s, …, s]` (where `step` is called, descending) and
        `self.inversion_timesteps = [0, s, …, t_start − s]` (where `invert_step` is called, ascending):

        ```py
        scheduler.set_refinement_timesteps(t_start=50, stride=5)
        for t in scheduler.inversion_timesteps:
            x = scheduler.invert_step(model(x, t).sample, t, x).next_sample
        for t in scheduler.timesteps:
            x = scheduler.step(model(x, t).sample, t, x, guidance_gradient=grad(x, t)).prev_sample
        ```

        Args:
            t_start (`int`, defaults to 50): see [`~GuidedDDIMScheduler.refinement_timesteps`].
            stride (`int`, defaults to 5): see [`~GuidedDDIMScheduler.refinement_timesteps`].
            device (`str | torch.device`, *optional*): the device of the timesteps.
        """
        grid = self.refinement_timesteps(t_start, stride, device=device)
        self.set_timesteps(self.config.num_train_timesteps // stride, device=device)
        self.timesteps = grid[1:].flip(0)
        self.inversion_timesteps = grid[:-1]

    def _original_and_epsilon(
        self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(x̂0, ε̂)` at `timestep` from the model output, as in step 3 of [`DDIMScheduler.step`] (no clipping)."""
        if model_output.shape != sample.shape:
            raise ValueError(
                f"`model_output` {tuple(model_output.shape)} and `sample` {tuple(sample.shape)} must have one shape."
            )
        alpha_prod_t = self.alphas_cumprod[timestep]
        beta_prod_t = 1 - alpha_prod_t
        if self.config.prediction_type == "epsilon":
            pred_original_sample = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
            pred_epsilon = model_output
        elif self.config.prediction_type == "sample":
            pred_original_sample = model_output
            pred_epsilon = (sample - alpha_prod_t ** (0.5) * pred_original_sample) / beta_prod_t ** (0.5)
        elif self.config.prediction_type == "v_prediction":
            pred_original_sample = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
            pred_epsilon = (alpha_prod_t**0.5) * model_output + (beta_prod_t**0.5) * sample
        else:
            raise ValueError(
                f"prediction_type given as {self.config.prediction_type} must be one of `epsilon`, `sample`, or"
                " `v_prediction`"
            )
        return pred_original_sample, pred_epsilon

    def _check_timestep(self, timestep: int | torch.Tensor, name: str = "timestep") -> int:
        timestep = int(timestep)
        if not 0 <= timestep < self.config.num_train_timesteps:
            raise ValueError(f"`{name}` must be in [0, {self.config.num_train_timesteps - 1}], got {timestep}.")
        return timestep

    def predict_original_sample(
        self, model_output: torch.Tensor, timestep: int | torch.Tensor, sample: torch.Tensor
    ) -> torch.Tensor:
        """
        The predicted clean sample `x̂0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t` (for ε-prediction; other prediction types as
        in [`DDIMScheduler.step`]), without clipping.

        Args:
            model_output (`torch.Tensor` of shape `(B, D)`): the model output at `timestep`.
            timestep (`int` or 0-d `torch.Tensor`): the current timestep `t`.
            sample (`torch.Tensor` of shape `(B, D)`): `x_t`.

        Returns:
            `torch.Tensor` of shape `(B, D)`.
        """
        return self._original_and_epsilon(model_output, self._check_timestep(timestep), sample)[0]

    def step(
        self,
        model_output: torch.Tensor,
        timestep: int,
        sample: torch.Tensor,
        eta: float = 0.0,
        use_clipped_model_output: bool = False,
        generator: torch.Generator | None = None,
        variance_noise: torch.Tensor | None = None,
        return_dict: bool = True,
        guidance_gradient: torch.Tensor | None = None,
        guidance_scale: float | torch.Tensor = 1.0,
    ) -> DDIMSchedulerOutput | tuple:
        """
        One DDIM step `t → t − s` ([`DDIMScheduler.step`]), optionally score-guided.

        With `guidance_gradient = ∇_{x_t} L` (the gradient of a loss to *minimise*, the model's ε held constant), the
        noise prediction becomes `ε̂ = ε + √(1 − ᾱ_t) · guidance_scale · ∇_{x_t} L` (classifier guidance with
        `log p(y | x_t) = −L`) and the DDIM update uses `ε̂`. For a loss on `x̂0`, `∇_{x_t} L = ∇_{x̂0} L / √ᾱ_t`
        (`x̂0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t` with ε held constant); `ScoreHOIPipeline.guidance_gradient` computes it.

        Args:
            model_output, timestep, sample, eta, use_clipped_model_output, generator, variance_noise, return_dict:
                As in [`DDIMScheduler.step`].
            guidance_gradient (`torch.Tensor` of shape `(B, D)`, *optional*):
                `∇_{x_t} L`, same shape as `sample`. `None` gives the plain DDIM step. Requires
                `prediction_type="epsilon"`.
            guidance_scale (`float` or `torch.Tensor` broadcastable to `(B, D)`, defaults to 1.0):
                The guidance weight `s_g`.

        Returns:
            [`~schedulers.scheduling_ddim.DDIMSchedulerOutput`] or `tuple` `(prev_sample, pred_original_sample)`.
        """
        if guidance_gradient is not None:
            if self.config.prediction_type != "epsilon":
                raise ValueError(
                    "`guidance_gradient` needs `prediction_type='epsilon'` (guidance adds to the predicted noise), "
                    f"got prediction_type={self.config.prediction_type!r}."
                )
            if guidance_gradient.shape != sample.shape:
                raise ValueError(
                    f"`guidance_gradient` {tuple(guidance_gradient.shape)} must have the shape of `sample` "
                    f"{tuple(sample.shape)}."
                )
            beta_prod_t = 1 - self.alphas_cumprod[self._check_timestep(timestep)]
            model_output = model_output + beta_prod_t ** (0.5) * guidance_scale * guidance_gradient
        return super().step(
            model_output,
            timestep,
            sample,
            eta=eta,
            use_clipped_model_output=use_clipped_model_output,
            generator=generator,
            variance_noise=variance_noise,
            return_dict=return_dict,
        )

    def invert_step(
        self,
        model_output: torch.Tensor,
        timestep: int | torch.Tensor,
        sample: torch.Tensor,
        next_timestep: int | torch.Tensor | None = None,
        return_dict: bool = True,
    ) -> GuidedDDIMInversionOutput | tuple:
        """
        One DDIM inversion step `t → t′ > t`: `x̂0 = (x_t − √(1 − ᾱ_t) ε) / √ᾱ_t`, then
        `x_t′ = √ᾱ_t′ · x̂0 + √(1 − ᾱ_t′) · ε`. It is the exact inverse of the η = 0 [`~GuidedDDIMScheduler.step`]
        `t′ → t` when the model output is the same at both ends. `x̂0` is not clipped (clipping would make the step
        non-invertible).

        Args:
            model_output (`torch.Tensor` of shape `(B, D)`): the model output at `timestep`.
            timestep (`int` or 0-d `torch.Tensor`): the current timestep `t`.
            sample (`torch.Tensor` of shape `(B, D)`): `x_t`.
            next_timestep (`int` or 0-d `torch.Tensor`, *optional*):
                `t′`; defaults to `t + num_train_timesteps // num_inference_steps` (the stride set by
                `set_refinement_timesteps` or `set_timesteps`).
            return_dict (`bool`, defaults to `True`):
                Whether to return a [`GuidedDDIMInversionOutput`] or a tuple `(next_sample, pred_original_sample)`.

        Returns:
            [`GuidedDDIMInversionOutput`] or `tuple`.
        """
        timestep = self._check_timestep(timestep)
        if next_timestep is None:
            if self.num_inference_steps is None:
                raise ValueError(
                    "Number of inference steps is 'None': run 'set_refinement_timesteps' (or 'set_timesteps') first, "
                    "or pass `next_timestep`."
                )
            next_timestep = timestep + self.config.num_train_timesteps // self.num_inference_steps
        next_timestep = self._check_timestep(next_timestep, "next_timestep")
        if next_timestep <= timestep:
            raise ValueError(f"`next_timestep`={next_timestep} must be larger than `timestep`={timestep}.")

        pred_original_sample, pred_epsilon = self._original_and_epsilon(model_output, timestep, sample)
        alpha_prod_t_next = self.alphas_cumprod[next_timestep]
        next_sample = (
            alpha_prod_t_next ** (0.5) * pred_original_sample + (1 - alpha_prod_t_next) ** (0.5) * pred_epsilon
        )

        if not return_dict:
            return (next_sample, pred_original_sample)
        return GuidedDDIMInversionOutput(next_sample=next_sample, pred_original_sample=pred_original_sample)
