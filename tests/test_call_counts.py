"""A latency guard that cannot flake: how many times one pipeline call runs each expensive part.

Wall time depends on the machine and its load; the number of network evaluations and body-model passes does
not. A change that adds a denoiser pass per step, a full SMPL-H mesh per cycle, or a loop over the samples of
a batch shows up here as a count.
"""
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils._python_dispatch import TorchDispatchMode

from scorehoi_diffusers import ScoreHOIPipeline
from scorehoi_diffusers.cli import DEFAULT_EXAMPLES, DEFAULT_PIPELINE
from scorehoi_diffusers.pipelines.noise_prediction import NoisePrediction

EXAMPLE = DEFAULT_EXAMPLES / "synthetic_ball"


@pytest.fixture(scope="module")
def pipe():
    pipeline = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture
def counts(pipe, monkeypatch):
    """Counters, filled as the pipeline runs, of the passes of each model and of the body's skinning."""
    counts = {"denoiser": 0, "regressor": 0, "contact_estimator": 0, "body_full_mesh": 0, "body_subset_skinning": 0}

    def counter(name):
        def hook(*args, **kwargs):
            counts[name] += 1
        return hook

    handles = [getattr(pipe, name).register_forward_pre_hook(counter(name))
               for name in ("denoiser", "regressor", "contact_estimator")]
    handles.append(pipe.body_model.register_forward_pre_hook(counter("body_full_mesh")))
    skin_subset = pipe.body_model.skin_subset

    def counted_skin_subset(*args, **kwargs):
        counts["body_subset_skinning"] += 1
        return skin_subset(*args, **kwargs)

    monkeypatch.setattr(pipe.body_model, "skin_subset", counted_skin_subset)
    yield counts
    for handle in handles:
        handle.remove()


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("num_cycles", [1, 2])
def test_passes_per_pipeline_call(pipe, counts, batch, num_cycles):
    picture = lambda name: np.asarray(Image.open(EXAMPLE / name))  # noqa: E731
    t_start, stride = 50, 5
    pipe(image=[picture("image.png")] * batch, human_mask=[picture("human_mask.png")] * batch,
         object_mask=[picture("object_mask.png")] * batch, object="ball", num_cycles=num_cycles, t_start=t_start,
         stride=stride, generator=torch.Generator().manual_seed(0))
    steps = t_start // stride
    iterations = pipe.default_guidance_config().inversion_iterations
    # Per cycle: 1 + k denoiser passes per inversion step (k fixed-point iterations, the guidance config's
    # inversion_iterations, 1 in the shipped pipeline without keypoints) and one per guided step; the guidance
    # skins the body subset once per guided step and the cycle's end once more (loss and contact refresh share it).
    # The full mesh is made once, at the end. None of it grows with the batch.
    assert iterations == 1
    assert counts == {
        "denoiser": num_cycles * (2 + iterations) * steps,
        "regressor": 1,
        "contact_estimator": 1 + num_cycles,
        "body_full_mesh": 1,
        "body_subset_skinning": 1 + num_cycles * (steps + 1),
    }


class OperationCounter(TorchDispatchMode):
    """Counts the ATen operations run inside it (views included): the guided step's fixed cost per call."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.count += 1
        return func(*args, **(kwargs or {}))


# Operations of one guidance gradient (decode, subset skinning, signed distances, guidance loss and its backward)
# and of one denoiser pass, measured on this example when the budget was set (1821 and 218) plus headroom. At
# batch 1 each operation costs microseconds whatever its size, so these counts are the step's latency.
GRADIENT_OPERATION_BUDGET = 2000
DENOISER_OPERATION_BUDGET = 240


def test_operations_per_guided_step_stay_within_budget(pipe, monkeypatch):
    picture = lambda name: np.asarray(Image.open(EXAMPLE / name))  # noqa: E731
    captured = {}
    gradient = type(pipe).guidance_gradient

    def capture(self, *args):
        captured.setdefault("args", args)
        return gradient(self, *args)

    monkeypatch.setattr(type(pipe), "guidance_gradient", capture)
    pipe(image=picture("image.png"), human_mask=picture("human_mask.png"), object_mask=picture("object_mask.png"),
         object="ball", num_cycles=1, generator=torch.Generator().manual_seed(0))
    latents, noise, timestep = captured["args"][:3]
    with OperationCounter() as operations:
        gradient(pipe, *captured["args"])
    assert 0 < operations.count <= GRADIENT_OPERATION_BUDGET, operations.count
    condition = pipe.denoiser.encode_condition(torch.zeros(1, 64, pipe.denoiser.config.image_feature_dim))
    with OperationCounter() as operations:
        NoisePrediction(pipe.denoiser, condition)(latents, timestep)
    assert 0 < operations.count <= DENOISER_OPERATION_BUDGET, operations.count
