"""Shared fixtures: a small synthetic SMPL-H-format file so body tests need no licensed data, the stand-in body, and
a small random-weight pipeline on it."""
import sys
from pathlib import Path

import numpy as np
import pytest
import trimesh

from scorehoi_diffusers.skeleton import LANDMARK_NAMES, PARENTS

# The asset generators in tools/ are tested too; they live outside the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def masks(size=(64, 64)):
    """``(human, object)`` bool masks of a ``size`` picture: a standing person and an object overlapping it."""
    human = np.zeros(size, bool)
    human[8:56, 20:40] = True
    obj = np.zeros(size, bool)
    obj[30:45, 35:55] = True
    return human, obj


def fake_smplh_arrays_on_mesh(
    vertices: np.ndarray, faces: np.ndarray, rng: np.random.Generator, num_betas: int = 10,
    posedirs_scale: float = 0.005,
) -> dict:
    """A random but valid SMPL-H-format body on a given mesh: random joints, a sparse joint regressor, distance
    skinning weights, random shape (and, with ``posedirs_scale`` > 0, pose-corrective) directions."""
    num_vertices = len(vertices)
    joints = rng.uniform(-0.5, 0.5, size=(52, 3)) * np.array([0.6, 1.6, 0.3])
    regressor = rng.uniform(size=(52, num_vertices)) * (rng.uniform(size=(52, num_vertices)) < 0.05)
    regressor[:, 0] += 1e-3
    regressor /= regressor.sum(1, keepdims=True)
    distance = np.linalg.norm(vertices[:, None] - joints[None], axis=-1)
    weights = np.exp(-distance / 0.05)
    weights /= weights.sum(1, keepdims=True)
    parents = np.array(PARENTS, dtype=np.int64)
    shapedirs = rng.normal(scale=0.01, size=(num_vertices, 3, num_betas))
    posedirs_shape = (num_vertices, 3, 51 * 9)
    posedirs = rng.normal(scale=posedirs_scale, size=posedirs_shape) if posedirs_scale else np.zeros(posedirs_shape)
    return {
        "v_template": vertices,
        "f": np.asarray(faces, dtype=np.int64),
        "shapedirs": shapedirs,
        "posedirs": posedirs,
        "J_regressor": regressor,
        "weights": weights,
        "kintree_table": np.stack([np.where(parents < 0, 4294967295, parents), np.arange(52)]).astype(np.int64),
        "hands_componentsl": np.eye(45),
        "hands_componentsr": np.eye(45),
        "hands_meanl": rng.normal(scale=0.2, size=45),
        "hands_meanr": rng.normal(scale=0.2, size=45),
        "landmark_names": np.array(LANDMARK_NAMES),
        "landmark_indices": rng.choice(num_vertices, len(LANDMARK_NAMES), replace=False).astype(np.int64),
    }


def make_fake_smplh_arrays(seed: int = 0) -> dict:
    """A random but valid SMPL-H-format body: icosphere mesh, random weights, non-zero pose correctives."""
    rng = np.random.default_rng(seed)
    mesh = trimesh.creation.icosphere(subdivisions=3)
    return fake_smplh_arrays_on_mesh(mesh.vertices * np.array([0.3, 0.9, 0.2]), mesh.faces, rng)


@pytest.fixture(scope="session")
def fake_smplh_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("smplh") / "SMPLH_NEUTRAL.npz"
    np.savez(path, **make_fake_smplh_arrays())
    return path


@pytest.fixture(scope="module")
def untrained_pipeline(fake_smplh_path):
    """A ``ScoreHOIPipeline`` with a freshly initialised denoiser (torch seed 0) and the fake SMPL-H body, progress
    bars off: for tests of the guidance and the optimisation baseline, which never need a trained prior."""
    import torch

    from scorehoi_diffusers.body import BodyModel
    from scorehoi_diffusers.models.denoiser import ScoreHOIDenoiser
    from scorehoi_diffusers.pipelines.pipeline_scorehoi import ScoreHOIPipeline
    from scorehoi_diffusers.schedulers.scheduling_guided_ddim import GuidedDDIMScheduler

    torch.manual_seed(0)
    pipe = ScoreHOIPipeline(ScoreHOIDenoiser(), GuidedDDIMScheduler(), BodyModel(model_path=str(fake_smplh_path)))
    pipe.set_progress_bar_config(disable=True)
    return pipe


@pytest.fixture(scope="module")
def body():
    """The stand-in body, built once per test module."""
    from scorehoi_diffusers import BodyModel

    return BodyModel()


@pytest.fixture(scope="module")
def pipe(body):
    """A pipeline with a small random-weight denoiser (``test_pipeline.small_denoiser``) on the stand-in body."""
    from test_pipeline import small_denoiser

    from scorehoi_diffusers import GuidedDDIMScheduler, ScoreHOIPipeline

    pipeline = ScoreHOIPipeline(small_denoiser(), GuidedDDIMScheduler(), body)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline


@pytest.fixture
def one_torch_thread():
    """Run the test on one torch thread (the ``scorehoi`` CLI's default), then restore the count: the keypoint fit's
    Adam steps turn the last-bit differences between thread counts into visible ones (README, "Determinism")."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def scheduler():
    """A `GuidedDDIMScheduler` set to the default refinement grid, t_start 50, stride 5."""
    from scorehoi_diffusers import GuidedDDIMScheduler

    scheduler = GuidedDDIMScheduler()
    scheduler.set_refinement_timesteps(50, 5)
    return scheduler
