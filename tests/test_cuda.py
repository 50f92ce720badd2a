"""The pipeline on a CUDA device: runs only where torch sees a GPU (CI has none; the lent GPU machine runs it)."""
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

NUM_SAMPLES = 6


@pytest.fixture(scope="module")
def shipped_pipelines():
    from scorehoi_diffusers import ScoreHOIPipeline
    from scorehoi_diffusers.cli import DEFAULT_PIPELINE

    cpu = ScoreHOIPipeline.from_pretrained(str(DEFAULT_PIPELINE))
    cuda = ScoreHOIPipeline.from_pretrained(str(DEFAULT_PIPELINE)).to("cuda")
    for pipeline in (cpu, cuda):
        pipeline.set_progress_bar_config(disable=True)
    return cpu, cuda


@pytest.mark.parametrize("keypoints", [None, "simulated"])
def test_evaluation_on_cuda_matches_the_cpu(shipped_pipelines, keypoints):
    """Same scenes, same seeds: the full method's metrics on the GPU agree with the CPU's to float noise."""
    from scorehoi_diffusers.data.synthetic import synthetic_split
    from scorehoi_diffusers.evaluation import RegressorEstimate, evaluate

    results = []
    for pipeline in shipped_pipelines:
        data = synthetic_split("test", NUM_SAMPLES, seed=0, image_size=192, body=pipeline.body_model,
                               progress=False)
        results.append(evaluate(pipeline, data, split=None, mode="full", num_cycles=2, seed=0,
                                initial_estimate_fn=RegressorEstimate(pipeline, keypoints, 0)))
    on_cpu, on_cuda = results
    for name in ("cd_human", "cd_object", "mpjpe", "pa_mpjpe", "penetration_depth"):
        assert np.isfinite(on_cuda[name]), name
        assert on_cuda[name] == pytest.approx(on_cpu[name], rel=0.02, abs=0.02), name
