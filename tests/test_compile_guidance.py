"""`compile_guidance`: the guidance loss traces into one graph (forward and backward) and gives the eager gradient.

The tests compile with the ``aot_eager`` backend: it runs dynamo and AOTAutograd exactly as inductor would (graph
breaks, the traced backward) without generating C++, which would take about a minute per graph on a CPU.
"""
from dataclasses import replace

import numpy as np
import pytest
import torch
from PIL import Image

from scorehoi_diffusers import ScoreHOIPipeline
from scorehoi_diffusers.cli import DEFAULT_EXAMPLES, DEFAULT_PIPELINE
from scorehoi_diffusers.skeleton import NUM_BLAZEPOSE

EXAMPLE = DEFAULT_EXAMPLES / "synthetic_ball"


def picture(name):
    return np.asarray(Image.open(EXAMPLE / name))


def captured_gradient_arguments(pipe, **kwargs):
    """The arguments of the first ``guidance_x0_gradient`` of a short pipeline call."""
    captured = {}
    gradient = type(pipe).guidance_x0_gradient

    def capture(self, *args, **kw):
        captured.setdefault("call", (args, kw))
        return gradient(self, *args, **kw)

    type(pipe).guidance_x0_gradient = capture
    try:
        pipe(image=picture("image.png"), human_mask=picture("human_mask.png"), object_mask=picture("object_mask.png"),
             object="ball", num_cycles=1, t_start=10, stride=5, generator=torch.Generator().manual_seed(0), **kwargs)
    finally:
        type(pipe).guidance_x0_gradient = gradient
    return captured["call"]


@pytest.fixture
def fresh_pipe():
    pipeline = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


# Without keypoints the coverage term off, with keypoints on: both graphs, each with the camera input or without.
@pytest.mark.parametrize("with_keypoints, mask_coverage", [(False, 0.0), (True, 100.0)])
def test_compiled_guidance_is_one_graph_with_the_eager_gradient(fresh_pipe, with_keypoints, mask_coverage):
    torch._dynamo.reset()
    # The keypoint guidance (its Gaussian pose prior term too) with keypoints, the guidance without them otherwise.
    defaults = fresh_pipe.default_guidance_config(keypoints=with_keypoints)
    kwargs = {"guidance_config": replace(defaults, mask_coverage=mask_coverage)}
    if with_keypoints:
        height, width = picture("image.png").shape[:2]
        rng = np.random.default_rng(0)
        uv = rng.uniform([0.3 * width, 0.2 * height], [0.7 * width, 0.8 * height], size=(NUM_BLAZEPOSE, 2))
        kwargs["keypoints"] = np.concatenate([uv, np.ones((NUM_BLAZEPOSE, 1))], 1).astype(np.float32)
    args, kw = captured_gradient_arguments(fresh_pipe, **kwargs)
    camera = args[7] if len(args) > 7 else kw.get("camera")
    assert (camera is not None) == with_keypoints  # the camera translation is a second input to differentiate
    start = None if camera is None else camera.translation.clone()

    def gradient():
        if camera is not None:
            camera.translation = start.clone()
        result = fresh_pipe.guidance_x0_gradient(*args, **kw)
        return result, None if camera is None else camera.translation.clone()

    eager, eager_camera = gradient()
    config = args[5] if len(args) > 5 else kw["guidance_config"]
    assert config.mask_coverage == mask_coverage
    if mask_coverage > 0:  # the term is in the gradient
        if camera is not None:
            camera.translation = start.clone()
        without = fresh_pipe.guidance_x0_gradient(*args[:5], replace(config, mask_coverage=0.0), *args[6:], **kw)
        assert not torch.allclose(without, eager, rtol=1e-3, atol=1e-6)
    assert (config.pose_prior > 0) == with_keypoints
    fresh_pipe._pose_prior = None  # as in a new process: the prior's file not read yet when compiling
    fresh_pipe.compile_guidance(backend="aot_eager", fullgraph=True)  # fullgraph: a graph break is an error
    compiled, compiled_camera = gradient()
    assert eager.abs().max() > 0
    torch.testing.assert_close(compiled, eager, rtol=1e-4, atol=1e-5)
    if camera is not None:
        torch.testing.assert_close(compiled_camera, eager_camera, rtol=1e-4, atol=1e-6)
    repeated, _ = gradient()
    assert torch.equal(repeated, compiled)


def test_compiled_guidance_runs_the_pipeline(fresh_pipe):
    torch._dynamo.reset()
    inputs = dict(image=picture("image.png"), human_mask=picture("human_mask.png"),
                  object_mask=picture("object_mask.png"), object="ball", num_cycles=1, t_start=10, stride=5)
    eager = fresh_pipe(**inputs, generator=torch.Generator().manual_seed(0)).body_vertices
    fresh_pipe.compile_guidance(backend="aot_eager", fullgraph=True)
    compiled = fresh_pipe(**inputs, generator=torch.Generator().manual_seed(0)).body_vertices
    assert fresh_pipe._compiled_guidance_objective is not None
    torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-4)  # metres: float32 rounding, not a change
