import json

import datasets
import numpy as np
import pytest
import roma
import torch

from scorehoi_diffusers.body import BodyModel
from scorehoi_diffusers.data.schema import params_to_fields
from scorehoi_diffusers.evaluation import NoisyGroundTruth, _standard_error, evaluate, format_table
from scorehoi_diffusers.metrics import (
    align_reconstruction,
    chamfer_distance,
    contact_precision_recall,
    f_score,
    harmonic_f_score,
    object_floor_distance,
    penetration_depth,
    penetration_volume,
    procrustes_similarity,
    reconstruction_contacts,
    sample_surface,
)
from scorehoi_diffusers.models.denoiser import ScoreHOIDenoiser
from scorehoi_diffusers.objects import load_object
from scorehoi_diffusers.params import HOIParams
from scorehoi_diffusers.pipelines.pipeline_scorehoi import ScoreHOIPipeline
from scorehoi_diffusers.schedulers.scheduling_guided_ddim import GuidedDDIMScheduler

SQUARE_FACES = np.array([[0, 1, 2], [0, 2, 3]])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # These tensors are tiny: one thread is as fast, and immune to OpenMP spinning on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def square(side: float, height: float = 0.0) -> np.ndarray:
    """A ``side`` x ``side`` square in the z = height plane, (4, 3)."""
    return np.array([[0, 0, height], [side, 0, height], [side, side, height], [0, side, height]], dtype=np.float64)


def known_similarity(seed=0):
    rng = np.random.default_rng(seed)
    rotation = roma.rotvec_to_rotmat(torch.tensor([0.4, -1.3, 2.2], dtype=torch.float64)).numpy()
    return rng.normal(size=(60, 3)), 1.7, rotation, np.array([0.1, 2.0, -3.0])


# ---------------------------------------------------------------------------------------------- alignment


def test_procrustes_recovers_a_known_similarity():
    source, scale, rotation, translation = known_similarity()
    target = scale * source @ rotation.T + translation
    fitted_scale, fitted_rotation, fitted_translation = procrustes_similarity(source, target)
    np.testing.assert_allclose(fitted_scale, scale, atol=1e-12)
    np.testing.assert_allclose(fitted_rotation, rotation, atol=1e-12)
    np.testing.assert_allclose(fitted_translation, translation, atol=1e-12)


def test_procrustes_is_batched_and_never_reflects():
    source, *_ = known_similarity()
    mirrored = source * np.array([-1.0, 1.0, 1.0])
    _, rotation, _ = procrustes_similarity(np.stack([source, source]), np.stack([source, mirrored]))
    np.testing.assert_allclose(rotation[0], np.eye(3), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rotation[1]), 1.0, atol=1e-12)


def test_align_reconstruction_uses_one_transform_for_both_meshes():
    points, scale, rotation, translation = known_similarity()
    human, obj = points[:40], points[40:]
    gt_human, gt_object = (scale * p @ rotation.T + translation for p in (human, obj))
    aligned_human, aligned_object = align_reconstruction(human, obj, gt_human, gt_object)
    np.testing.assert_allclose(aligned_human, gt_human, atol=1e-10)
    np.testing.assert_allclose(aligned_object, gt_object, atol=1e-10)
    # Moving the object alone cannot be undone: a single similarity keeps the human-object placement.
    aligned_human, aligned_object = align_reconstruction(human, obj + [0.5, 0, 0], gt_human, gt_object)
    assert np.abs(aligned_object - gt_object).max() > 0.1
    with pytest.raises(ValueError, match="topology"):
        align_reconstruction(human[:-1], obj, gt_human, gt_object)


# ---------------------------------------------------------------------------------------------- surfaces


def test_surface_samples_are_seeded_area_weighted_and_on_the_mesh():
    # Two triangles with areas 0.5 and 3: the small one gets about 1/7 of the samples.
    vertices = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [3, 0, 0], [0, 3, 0]], dtype=np.float64)
    faces = np.array([[0, 1, 2], [1, 3, 4]])
    samples = sample_surface(vertices, faces, count=20000, seed=3)
    np.testing.assert_array_equal(samples, sample_surface(vertices, faces, count=20000, seed=3))
    assert not np.array_equal(samples, sample_surface(vertices, faces, count=20000, seed=4))
    np.testing.assert_allclose(samples[:, 2], 0.0)
    in_small = samples[:, 0] + samples[:, 1] <= 1
    assert abs(in_small.mean() - 1 / 7) < 0.01
    batched = sample_surface(np.stack([vertices, vertices * 2]), faces, count=100, seed=0)
    np.testing.assert_allclose(batched[1], 2 * batched[0])


def test_identical_meshes_score_zero_chamfer_and_full_f_score():
    points = sample_surface(square(1.0), SQUARE_FACES, seed=0)
    assert chamfer_distance(points, points) == 0.0
    assert f_score(points, points) == 1.0


def test_plane_shifted_along_its_normal_gives_the_known_chamfer():
    # 2 cm each way, summed: 4 cm. With the same seed every sample's nearest neighbour is its twin.
    plane = sample_surface(square(1.0), SQUARE_FACES, seed=0)
    shifted = sample_surface(square(1.0, height=0.02), SQUARE_FACES, seed=0)
    assert chamfer_distance(plane, shifted) == pytest.approx(4.0, abs=1e-9)
    assert f_score(plane, shifted) == 0.0  # every point is 2 cm > 1 cm away
    # Independent samples of a small square: dense enough that lateral offsets barely add.
    plane = sample_surface(square(0.1), SQUARE_FACES, seed=1)
    shifted = sample_surface(square(0.1, height=0.02), SQUARE_FACES, seed=2)
    assert chamfer_distance(plane, shifted) == pytest.approx(4.0, abs=0.05)
    batched = chamfer_distance(np.stack([plane, plane]), np.stack([plane, shifted]))
    np.testing.assert_allclose(batched, [0.0, chamfer_distance(plane, shifted)])


def test_f_score_counts_points_within_the_threshold():
    gt = np.zeros((4, 3))
    gt[:, 0] = [0.0, 1.0, 2.0, 3.0]
    pred = gt.copy()
    pred[2:, 1] = 0.05  # two of four predicted points are 5 cm off: P = R = 1/2
    assert f_score(pred, gt) == pytest.approx(0.5)
    assert f_score(pred, gt, threshold=0.06) == pytest.approx(1.0)


# ---------------------------------------------------------------------------------------------- contact


def test_contact_precision_recall_skip_rules_and_f_from_the_means():
    predicted = np.array([[1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 1, 0]], dtype=bool)
    truth = np.array([[1, 0, 0, 0], [1, 1, 0, 0], [0, 0, 0, 0]], dtype=np.float32)
    precision, recall = contact_precision_recall(predicted, truth)
    np.testing.assert_allclose(precision, [0.5, np.nan, 0.0])
    np.testing.assert_allclose(recall, [1.0, 0.0, np.nan])
    f = harmonic_f_score(np.nanmean(precision), np.nanmean(recall))
    assert f == pytest.approx(2 * 0.25 * 0.5 / 0.75)
    assert harmonic_f_score(0.0, 0.0) == 0.0
    with pytest.raises(ValueError, match="same downsampled"):
        contact_precision_recall(predicted[:, :3], truth)


@pytest.fixture(scope="module")
def box():
    return load_object("box")  # 0.4 x 0.3 x 0.3 m, centred, +y up


def test_reconstruction_contacts_use_the_signed_distance(box):
    # 4 cm above the top face (in contact), 6 cm above (not), 5 cm inside (in contact).
    points = torch.tensor([[[0.0, 0.19, 0.0], [0.0, 0.21, 0.0], [0.0, 0.10, 0.0]]])
    eye, shift = torch.eye(3)[None], torch.tensor([[1.0, -2.0, 3.0]])
    contacts = reconstruction_contacts(points + shift[:, None], box, eye, shift)
    np.testing.assert_array_equal(contacts, [[True, False, True]])


# ---------------------------------------------------------------------------------------------- physics


def test_penetration_depth_of_a_point_one_cm_inside_a_box(box):
    translation = np.array([[0.2, 0.1, 2.5]])
    vertices = np.array([[[0.0, 0.14, 0.0], [0.0, 0.30, 0.0], [0.1, 0.5, 0.0]]]) + translation[:, None]
    depth = penetration_depth(vertices, box, np.eye(3)[None], translation)
    np.testing.assert_allclose(depth, [1.0], atol=1e-4)
    np.testing.assert_allclose(penetration_depth(vertices[:, 1:], box, np.eye(3)[None], translation), [0.0])


def test_penetration_volume_of_a_sheet_pressed_into_a_box(box):
    # A 10 cm x 10 cm sheet 1 cm under the top face: 100 cm² x 1 cm = 100 cm³.
    sheet = np.array([[-0.05, 0.14, -0.05], [0.05, 0.14, -0.05], [0.05, 0.14, 0.05], [-0.05, 0.14, 0.05]])
    outside = sheet + [0.0, 0.1, 0.0]
    volume = penetration_volume(np.stack([sheet, outside]), SQUARE_FACES, box, np.stack([np.eye(3)] * 2),
                                np.zeros((2, 3)), count=2000, seed=0)
    np.testing.assert_allclose(volume, [100.0, 0.0], atol=0.05)


def test_object_floor_distance_along_the_up_axis():
    # Camera y points down, so the floor is at the largest y; the object's bottom floats 3 cm above it.
    body = np.array([[[0.0, -0.7, 3.0], [0.1, 1.0, 3.0], [0.0, 0.2, 3.1]]])
    obj = np.array([[[0.5, 0.97, 3.0], [0.5, 0.6, 3.0]]])
    np.testing.assert_allclose(object_floor_distance(body, obj), [3.0], atol=1e-9)
    # A per-sample up axis (e.g. a tilted camera's): along +x the lowest points are x = 0 and x = 0.5.
    np.testing.assert_allclose(object_floor_distance(body, obj, up_axis=[[-1.0, 0.0, 0.0]]), [40.0], atol=1e-9)


# ---------------------------------------------------------------------------------------------- the loop


def random_scene_params(batch: int, seed: int) -> HOIParams:
    generator = torch.Generator().manual_seed(seed)
    params = HOIParams.identity(batch)
    params.body_pose = roma.rotvec_to_rotmat(0.2 * torch.randn(batch, 21, 3, generator=generator))
    params.betas = 0.5 * torch.randn(batch, 10, generator=generator)
    params.object_translation = torch.tensor([0.0, 0.0, 0.3]) + 0.05 * torch.randn(batch, 3, generator=generator)
    return params


@pytest.fixture(scope="module")
def small_setup(fake_smplh_path, box):
    body = BodyModel(model_path=str(fake_smplh_path))
    pipeline = ScoreHOIPipeline(ScoreHOIDenoiser(), GuidedDDIMScheduler(), body)
    pipeline.set_progress_bar_config(disable=True)
    params = random_scene_params(3, seed=0)
    with torch.no_grad():
        vertices = body(params, frame="pelvis").downsampled_vertices
    contacts = reconstruction_contacts(vertices, box, params.object_rotation, params.object_translation)
    columns = {name: list(value) for name, value in params_to_fields(params).items()}
    columns.update(
        human_contact=list(contacts.astype(np.float32)),
        object_contact=[np.zeros(64, np.float32)] * 3,
        floor_contact=[1.0, 0.0, 1.0],
        object_name=["box"] * 3,
        sample_id=["a", "b", "c"],
    )
    return pipeline, datasets.Dataset.from_dict(columns)


def without_timing(results):
    return {k: v for k, v in results.items() if k != "seconds_per_image"}


def test_evaluate_is_deterministic_and_json_serialisable(small_setup):
    pipeline, dataset = small_setup
    kwargs = dict(mode="full", num_cycles=1, batch_size=2, num_surface_samples=500)
    first = evaluate(pipeline, dataset, seed=0, **kwargs)
    second = evaluate(pipeline, dataset, seed=0, **kwargs)
    assert without_timing(first) == without_timing(second)
    other = evaluate(pipeline, dataset, seed=1, **kwargs)
    assert other["cd_human"] != first["cd_human"]
    json.dumps(first, allow_nan=False)
    assert first["protocol"] == "noisy_gt" and first["num_samples"] == 3 and first["counts"]["floor_distance"] == 2
    assert first["cd_human"] > 0 and first["seconds_per_image"] > 0
    errors = first["standard_errors"]
    assert {"cd_human", "cd_object", "penetration_depth"} <= set(errors) and errors["cd_human"] > 0
    table = format_table([first, other])
    assert table.count("\n| full | 1 |") == 2 and "CD_h (cm)" in table and "seed 0" in table and "seed 1" in table


def test_standard_error_ignores_missing_samples():
    assert _standard_error(np.array([1.0, 2.0, 3.0, np.nan])) == pytest.approx(1 / np.sqrt(3))
    assert _standard_error(np.array([4.0, np.inf])) is None


def test_evaluate_scores_the_ground_truth_as_perfect(small_setup):
    # A noise-free "estimate" without refinement is the ground truth itself.
    pipeline, dataset = small_setup
    exact = NoisyGroundTruth(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    results = evaluate(pipeline, dataset, mode="regressor", initial_estimate_fn=exact, num_surface_samples=500)
    assert results["protocol"] == "custom" and results["num_cycles"] == 0
    assert results["cd_human"] < 1e-3 and results["cd_object"] < 1e-3
    assert results["fscore_human"] == 1.0 and results["fscore_object"] == 1.0
    assert results["contact_precision"] == 1.0 and results["contact_recall"] == 1.0 and results["contact_f"] == 1.0
    assert results["mpjpe"] < 1e-4 and results["pa_mpjpe"] < 1e-4
    assert results["facing_error"] < 1e-3 and results["facing_flipped"] == 0.0


def test_evaluate_rejects_bad_arguments(small_setup):
    pipeline, dataset = small_setup
    with pytest.raises(ValueError, match="mode"):
        evaluate(pipeline, dataset, mode="guided")
    with pytest.raises(ValueError, match="num_samples"):
        evaluate(pipeline, dataset, num_samples=10)
    with pytest.raises(ValueError, match="split"):
        evaluate(pipeline, datasets.DatasetDict(train=dataset), split="test")


def test_evaluate_takes_the_up_axis_from_a_floor_plane_column(small_setup, box):
    pipeline, dataset = small_setup
    exact = NoisyGroundTruth(0, 0.0, 0.0, 0.0, 0.0, 0.0)
    tilted = dataset.add_column("floor_plane", [[1.0, 0.0, 0.0, 0.0]] * len(dataset))
    results = evaluate(pipeline, tilted, mode="regressor", initial_estimate_fn=exact, num_surface_samples=100)
    params = random_scene_params(3, seed=0)
    with torch.no_grad():
        body = pipeline.body_model(params, frame="camera").vertices
    obj = box.pose(box.vertices, params.object_rotation, params.object_translation + params.camera_translation)
    expected = object_floor_distance(body, obj, up_axis=[1.0, 0.0, 0.0])[[0, 2]].mean()  # floor contact: 0 and 2
    assert results["floor_distance"] == pytest.approx(expected, abs=1e-3)
    default = evaluate(pipeline, dataset, mode="regressor", initial_estimate_fn=exact, num_surface_samples=100)
    assert abs(default["floor_distance"] - results["floor_distance"]) > 1.0


class RecordingPipeline:
    """Passes everything to a pipeline and records the keyword arguments and outputs of its calls."""

    def __init__(self, pipeline):
        self.pipeline, self.calls = pipeline, []

    def __getattr__(self, name):
        return getattr(self.pipeline, name)

    def __call__(self, **kwargs):
        output = self.pipeline(**kwargs)
        self.calls.append((kwargs, output))
        return output


def test_pictures_in_evaluation_is_pipe_image(monkeypatch):
    """The pictures-in protocol calls ``pipeline(image=...)`` with nothing estimated outside it, and its
    "regressor" row is the estimate of ``prepare_initial_estimate``."""
    from scorehoi_diffusers.cli import DEFAULT_PIPELINE
    from scorehoi_diffusers.data.synthetic import synthetic_split
    from scorehoi_diffusers.evaluation import RegressorEstimate

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    shipped = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    shipped.set_progress_bar_config(disable=True)
    dataset = synthetic_split("test", 2, seed=0, image_size=96, body=shipped.body_model)
    recording = RecordingPipeline(shipped)
    evaluate(recording, dataset, split=None, mode="regressor", initial_estimate_fn=RegressorEstimate(recording),
             num_surface_samples=100)
    assert recording.calls
    for kwargs, output in recording.calls:
        assert kwargs["image"] is not None
        assert all(kwargs[name] is None for name in ("initial_params", "contacts", "image_tokens",
                                                     "contact_estimator"))
        pictures = shipped.image_processor.preprocess(kwargs["image"], kwargs["human_mask"], kwargs["object_mask"],
                                                      kwargs["bbox"], kwargs["intrinsics"])
        params, _, _ = shipped.prepare_initial_estimate(pictures, kwargs["object"])
        assert torch.equal(output.initial_params.body_pose, params.body_pose)
        assert torch.equal(output.initial_params.camera_translation, params.camera_translation)


def test_paired_differences_match_samples_by_index_and_the_compare_command(small_setup, tmp_path, capsys):
    from scorehoi_diffusers import cli
    from scorehoi_diffusers.evaluation import paired_differences

    pipeline, dataset = small_setup
    kwargs = dict(num_cycles=1, batch_size=2, num_surface_samples=300)
    full = evaluate(pipeline, dataset, mode="full", **kwargs)
    regressor = evaluate(pipeline, dataset, mode="regressor", **kwargs)
    assert sorted(full["per_sample"]["index"]) == [0, 1, 2]
    # Reorder one run's samples: pairs must follow the dataset index, not the position.
    shuffled = {**regressor, "per_sample": {k: v[::-1] for k, v in regressor["per_sample"].items()}}
    diff = paired_differences(full, shuffled)["cd_human"]
    expected = np.array(full["per_sample"]["cd_human"]) - np.array(regressor["per_sample"]["cd_human"])
    assert diff["mean"] == pytest.approx(expected.mean()) and diff["count"] == 3
    assert diff["standard_error"] == pytest.approx(expected.std(ddof=1) / np.sqrt(3))
    assert paired_differences(full, full)["cd_object"]["mean"] == 0.0
    # Contact F is paired sample by sample from each sample's precision and recall.
    rows = [{"index": [0, 1, 2], "contact_precision": [1.0, 0.5, None], "contact_recall": [1.0, 0.5, 0.2]},
            {"index": [0, 1, 2], "contact_precision": [0.5, 0.0, 1.0], "contact_recall": [1.0, 0.0, 1.0]}]
    f_diff = paired_differences({"per_sample": rows[0]}, {"per_sample": rows[1]})["contact_f"]
    assert f_diff["count"] == 2 and f_diff["mean"] == pytest.approx(((1 - 2 / 3) + (0.5 - 0)) / 2)

    path = tmp_path / "results.json"
    path.write_text(json.dumps([regressor, full]))
    assert cli.main(["compare", str(path), "full", "regressor"]) == 0
    assert "cd_human" in capsys.readouterr().out
    assert cli.main(["compare", str(path), "prior", "regressor"]) == 2
    assert "no results of mode 'prior'" in capsys.readouterr().err


def test_keypoint_reprojection_error_uses_visible_points_with_a_body_point():
    from scorehoi_diffusers.metrics import keypoint_reprojection_error

    detected = np.zeros((2, 33, 2))
    projected = np.zeros((2, 33, 2))
    projected[0, 0] = (3.0, 4.0)  # 5 px off
    projected[0, 1] = np.nan  # no body point: skipped even though visible
    projected[1, 2] = (30.0, 40.0)  # 50 px off, but not visible
    visibility = np.ones((2, 33))
    visibility[1, 2] = 0.2
    error = keypoint_reprojection_error(projected, detected, visibility, box_height=[100.0, 200.0])
    np.testing.assert_allclose(error, [100 * 5.0 / 32 / 100.0, 0.0])
    assert np.isnan(keypoint_reprojection_error(projected, detected, np.zeros((2, 33)), 100.0)).all()
    with pytest.raises(ValueError, match="`box_height` must be positive"):
        keypoint_reprojection_error(projected, detected, visibility, 0.0)
    with pytest.raises(ValueError, match="must be \\(B, N, 2\\)"):
        keypoint_reprojection_error(projected[:, :, :1], detected, visibility, 100.0)


def test_silhouette_iou():
    from scorehoi_diffusers.metrics import silhouette_iou

    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    a[:, :5] = True
    b[:, 2:6] = True
    assert silhouette_iou(a, b) == 30 / 60
    assert silhouette_iou(a, a) == 1.0 and silhouette_iou(b & False, b & False) == 0.0
    with pytest.raises(ValueError, match="must have one shape"):
        silhouette_iou(a, b[:5])
