"""DDIM inversion of a clean sample up the refinement grid: plain, or exact by fixed-point iterations.

Plain DDIM inversion steps ``t → t′`` with the noise predicted where it starts, ``ε(x_t, t)``, but the η = 0 denoising
step back ``t′ → t`` reads ``ε(x_t′, t′)``. The two differ, so an unguided round trip does not return to its start:
on the shipped prior a ground-truth sample's body joints move about 0.5 cm over two cycles of the default grid.
Exact inversion solves ``x_t′ = invert(x_t, ε(x_t′, t′))`` by fixed-point iterations, starting from the plain step;
then the step back from ``x_t′`` lands on ``x_t`` up to the iteration's residual. Each iteration costs one more
denoiser pass per inversion step, and the first step up from the clean sample converges slowly (on the shipped
prior each iteration leaves about half of its residual there at first and about 0.9 after ten, against a third or
less at every higher step; ``training/inversion_contraction.py``).

Direct inversion (Ju et al., "PnP Inversion: Boosting Diffusion-based Editing with 3 Lines of Code", ICLR 2024)
closes the round trip instead by bookkeeping: the inversion records its path ``x_{t_0}, …, x_{t_n}``, and each
denoising step ``t_i → t_{i-1}`` adds the gap between the recorded ``x_{t_{i-1}}`` and the unguided step back
from the recorded ``x_{t_i}`` (``inversion_offsets``). Without guidance the η = 0 denoising then retraces the path
to its start exactly (up to float rounding), whatever the inversion's own error; with guidance, the prior acts on
how far the guided state has left that path. The offsets are those of η = 0 steps: with η > 0 the step's fresh
noise takes it off the path, and with ``object_refinement="gradient"`` the object's entries are replaced after each
step, so neither returns exactly. It costs no extra denoiser pass: the noise at the path's top, which the inversion
reads for the last offset, is the first denoising step's.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..input_checks import is_int
from ..schedulers.scheduling_guided_ddim import GuidedDDIMScheduler

__all__ = ["InversionPath", "check_inversion_iterations", "cycle_inversion_iterations", "invert",
           "inversion_offsets"]


@dataclass
class InversionPath:
    """The states an inversion passed through, and the noise predicted at each.

    Attributes:
        timesteps (`list[int]`): the ascending grid ``t_0 < … < t_n``.
        samples (`list[torch.Tensor]`): ``x_{t_i}``, each `(B, D)`, for ``i = 0 … n``.
        noise (`list[torch.Tensor]`): ``ε(x_{t_i}, t_i)``, each `(B, D)`, for ``i = 0 … n``.
    """

    timesteps: list[int]
    samples: list[torch.Tensor]
    noise: list[torch.Tensor]


def check_inversion_iterations(inversion_iterations) -> None:
    """Raise a one-line ``ValueError`` unless ``inversion_iterations`` is an integer >= 0 or a non-empty sequence
    of them (one per cycle)."""
    schedule = inversion_iterations if isinstance(inversion_iterations, (list, tuple)) else [inversion_iterations]
    if not schedule or not all(is_int(k) and k >= 0 for k in schedule):
        raise ValueError(
            "`inversion_iterations` must be an integer >= 0 or a non-empty list of them, one per cycle (0: plain "
            "DDIM inversion; k: k fixed-point iterations per inversion step, for a round trip that returns to its "
            f"start), got {inversion_iterations!r}."
        )


def cycle_inversion_iterations(inversion_iterations: int | Sequence[int], cycle: int) -> int:
    """The iterations of cycle ``cycle`` (0-based): ``inversion_iterations`` itself when it is an integer, else its
    ``cycle``-th entry, the last one repeated for the cycles after the list (``[0, 0, 1]``: two plain cycles, then
    exact ones)."""
    if isinstance(inversion_iterations, (list, tuple)):
        return inversion_iterations[min(cycle, len(inversion_iterations) - 1)]
    return inversion_iterations


def invert(
    predict_noise: Callable[[torch.Tensor, int], torch.Tensor],
    scheduler: GuidedDDIMScheduler,
    sample: torch.Tensor,
    timesteps: Sequence[int],
    iterations: int = 0,
    on_step: Callable[[], None] | None = None,
    return_path: bool = False,
) -> torch.Tensor | InversionPath:
    """DDIM inversion of ``sample`` from ``timesteps[0]`` up to ``timesteps[-1]``.

    Per step ``t → t′``: ``x_t′ = invert_step(ε(x_t, t), t, x_t)``, then ``iterations`` times
    ``x_t′ = invert_step(ε(x_t′, t′), t, x_t)`` (the noise read at the candidate ``x_t′``, the step still taken from
    ``x_t``), whose fixed point is the exact inverse of the η = 0 step ``t′ → t``.

    Args:
        predict_noise (`callable`): ``predict_noise(latents (B, D), t) -> ε (B, D)``, e.g. a [`NoisePrediction`].
        scheduler ([`GuidedDDIMScheduler`]): its `invert_step` takes the steps.
        sample (`torch.Tensor` of shape `(B, D)`): the sample at ``timesteps[0]`` (the clean x0 when it is 0).
        timesteps (`Sequence[int]`): the ascending grid, e.g. ``[0, 5, …, 50]``.
        iterations (`int`, defaults to 0): fixed-point iterations per step; 0 is plain DDIM inversion. Iterations
            need ``prediction_type="epsilon"`` (the noise read at ``t′`` is applied at ``t``).
        on_step (`callable`, *optional*): called after every step, e.g. a progress bar's ``update``.
        return_path (`bool`, defaults to `False`): return the whole [`InversionPath`] instead of the last sample
            (one more denoiser pass, for the noise at the top, which a denoising from the top can reuse).

    Returns:
        `torch.Tensor` of shape `(B, D)`: the sample at ``timesteps[-1]``; or the [`InversionPath`] when
        ``return_path``.
    """
    check_inversion_iterations(iterations)
    if iterations > 0 and scheduler.config.prediction_type != "epsilon":
        raise ValueError(
            "`inversion_iterations` > 0 needs a scheduler with prediction_type='epsilon', got "
            f"{scheduler.config.prediction_type!r}; use 0."
        )
    samples, noises = [sample], []
    for t, t_next in zip(timesteps[:-1], timesteps[1:]):
        noise = predict_noise(sample, t)
        noises.append(noise)
        next_sample = scheduler.invert_step(noise, t, sample, next_timestep=t_next).next_sample
        for _iteration in range(iterations):
            noise = predict_noise(next_sample, t_next)
            next_sample = scheduler.invert_step(noise, t, sample, next_timestep=t_next).next_sample
        sample = next_sample
        samples.append(sample)
        if on_step is not None:
            on_step()
    if not return_path:
        return sample
    noises.append(predict_noise(sample, timesteps[-1]))
    return InversionPath(list(timesteps), samples, noises)


def inversion_offsets(scheduler: GuidedDDIMScheduler, path: InversionPath) -> dict[int, torch.Tensor]:
    """Direct inversion's correction of each denoising step (module docstring).

    Args:
        scheduler ([`GuidedDDIMScheduler`]): the scheduler whose η = 0 ``step`` the denoising takes; its refinement
            timesteps must be set to the path's grid.
        path ([`InversionPath`]): from ``invert(..., return_path=True)``.

    Returns:
        `dict[int, torch.Tensor]`: for each ``t_i`` (``i ≥ 1``), the `(B, D)` offset
        ``x_{t_{i-1}} − step(ε(x_{t_i}, t_i), t_i, x_{t_i})`` that the denoising step from ``t_i`` adds, so that
        an unguided step from a path state lands on the path's next state.
    """
    return {
        t: path.samples[i - 1] - scheduler.step(path.noise[i], t, path.samples[i]).prev_sample
        for i, t in enumerate(path.timesteps) if i > 0
    }
