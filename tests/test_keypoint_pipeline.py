"""Keypoints through the pipeline and the evaluation: plumbing to keypoint-reading models, simulated detections."""
import numpy as np
import pytest
import torch

from scorehoi_diffusers import ScoreHOIPipeline
from scorehoi_diffusers.body import blazepose_points
from scorehoi_diffusers.camera import project_points
from scorehoi_diffusers.cli import DEFAULT_PIPELINE
from scorehoi_diffusers.data.schema import sample_to_params
from scorehoi_diffusers.data.simulated_detections import DetectionNoise
from scorehoi_diffusers.evaluation import RegressorEstimate
from scorehoi_diffusers.models.body_keypoints import with_body_keypoints
from scorehoi_diffusers.skeleton import BLAZEPOSE_FITTED


@pytest.fixture(scope="module")
def shipped_and_data():
    from scorehoi_diffusers.data.synthetic import synthetic_split

    pipeline = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    pipeline.set_progress_bar_config(disable=True)
    data = synthetic_split("test", 2, seed=0, image_size=96, body=pipeline.body_model)
    return pipeline, data


def _batch(data, rows):
    batch = dict(data[rows])
    batch["index"] = np.asarray(rows)
    return batch


def test_simulated_keypoints_are_the_projected_truth_without_noise_and_do_not_depend_on_batching(shipped_and_data):
    pipeline, data = shipped_and_data
    exact = RegressorEstimate(pipeline, "simulated", noise=DetectionNoise.none())(_batch(data, [0, 1]))[4]
    params = sample_to_params(_batch(data, [0, 1]))
    with torch.no_grad():
        output = pipeline.body_model(params, frame="camera")
    truth = project_points(blazepose_points(output.joints, output.landmarks),
                           torch.as_tensor(np.asarray(data[[0, 1]]["intrinsics"], dtype=np.float32)))
    fitted = torch.tensor(BLAZEPOSE_FITTED)
    seen = exact["keypoints"][:, fitted, 2] > 0
    torch.testing.assert_close(exact["keypoints"][:, fitted, :2][seen], truth[:, fitted][seen].float())

    estimate = RegressorEstimate(pipeline, "simulated", seed=3)
    both = estimate(_batch(data, [0, 1]))[4]["keypoints"]
    # The same draws (up to the body model's batched floating-point sums).
    torch.testing.assert_close(both[1:], estimate(_batch(data, [1]))[4]["keypoints"], atol=1e-3, rtol=0)
    other_seed = RegressorEstimate(pipeline, "simulated", seed=4)(_batch(data, [0, 1]))[4]["keypoints"]
    assert not torch.equal(both, other_seed)
    with pytest.raises(ValueError, match="`keypoints` must be one of"):
        RegressorEstimate(pipeline, "ground-truth")


def test_detected_pictures_replace_keypoints_and_person_mask_once_per_row(shipped_and_data, monkeypatch):
    from PIL import Image

    from scorehoi_diffusers.data.synthetic import generate_dataset

    pipeline, _ = shipped_and_data
    data = generate_dataset(2, seed=0, split="train", start=20000, image_size=192, body=pipeline.body_model,
                            progress=False)
    rows = [{**data[i], "index": i} for i in range(2)]
    blank = {"index": 7, "image": Image.new("RGB", (192, 192), (90, 90, 90)), "human_mask": rows[0]["human_mask"]}
    batch = {key: [row[key] for row in [*rows, blank]] for key in ("index", "image", "human_mask")}
    estimate = RegressorEstimate(pipeline, "detected")
    detected, calls = estimate.detected, []
    detect = detected.detector.detect
    monkeypatch.setattr(detected.detector, "detect", lambda image: calls.append(1) or detect(image))

    fields = detected(batch)
    keypoints, masks = fields["keypoints"], fields["human_mask"]
    assert keypoints.shape == (3, 33, 3) and len(masks) == 3
    # The renders: found, landmarks on the rendered person, the mask the detector's own and overlapping the render's.
    for row, found, mask in zip(rows, keypoints[:2], masks[:2]):
        rendered = np.asarray(row["human_mask"]) > 127
        mine = np.asarray(mask) > 127
        assert mine.shape == rendered.shape and not np.array_equal(mine, rendered)
        assert (mine & rendered).sum() > 0.5 * rendered.sum()
        seen = found[found[:, 2] > 0.5, :2].round().astype(int).clip(0, 191)
        assert len(seen) > 5 and rendered[seen[:, 1], seen[:, 0]].mean() > 0.5
    # The blank picture: nobody, so no keypoints and its own mask kept.
    assert detected.missed == {7} and not keypoints[2].any() and masks[2] is blank["human_mask"]
    # Another evaluation of the same rows detects nothing again.
    np.testing.assert_array_equal(detected(batch)["keypoints"], keypoints)
    assert len(calls) == 3
    # RegressorEstimate hands them to the pipeline in place of the dataset's mask.
    pictures = estimate({**dict(data[[0, 1]]), "index": np.arange(2)})[4]
    np.testing.assert_array_equal(pictures["keypoints"], keypoints[:2])
    assert pictures["human_mask"] == masks[:2]


def test_keypoints_reach_keypoint_reading_models_and_start_exactly_as_the_shipped_ones(shipped_and_data):
    shipped, data = shipped_and_data
    extended = ScoreHOIPipeline.from_pretrained(DEFAULT_PIPELINE)
    extended.set_progress_bar_config(disable=True)
    extended.regressor = with_body_keypoints(extended.regressor).eval()
    extended.denoiser = with_body_keypoints(extended.denoiser).eval()
    pictures = RegressorEstimate(shipped, "simulated")(_batch(data, [0, 1]))[4]
    kwargs = dict(object=data[0]["object_name"], num_cycles=1, output_type="pt")
    if data[0]["object_name"] != data[1]["object_name"]:
        pictures = {key: value[:1] for key, value in pictures.items()}
    plain = shipped(**pictures, **kwargs)
    keyed = extended(**pictures, **kwargs)  # zero-initialised keypoint layers: the same result
    assert torch.equal(plain.body_vertices, keyed.body_vertices)

    calls = {}
    original = extended.denoiser.encode_condition

    def record(*args, **kw):
        calls["body_keypoints"] = kw.get("body_keypoints")
        return original(*args, **kw)

    extended.denoiser.encode_condition = record
    with torch.no_grad():
        torch.nn.init.normal_(extended.regressor.body_keypoint_encoder.mlp[-1].weight, std=0.05)
    moved = extended(**pictures, **kwargs)
    assert not torch.equal(moved.initial_params.body_pose, plain.initial_params.body_pose)
    assert calls["body_keypoints"].shape == (len(pictures["image"]), 33, 3)
    without = extended(**{k: v for k, v in pictures.items() if k != "keypoints"}, **kwargs)
    assert not torch.equal(without.initial_params.body_pose, moved.initial_params.body_pose)


def test_bad_keypoints_are_refused_clearly(shipped_and_data):
    shipped, data = shipped_and_data
    pictures = RegressorEstimate(shipped)(_batch(data, [0]))[4]
    with pytest.raises(ValueError, match=r"`keypoints` must have shape \(33, 3\) or \(B, 33, 3\)"):
        shipped(**pictures, object=data[0]["object_name"], num_cycles=0, keypoints=np.zeros((17, 3)))
    with pytest.raises(ValueError, match="visibilities"):
        shipped(**pictures, object=data[0]["object_name"], num_cycles=0, keypoints=np.full((33, 3), 2.0))
    with pytest.raises(TypeError, match=r"`keypoints` must be a \(33, 3\) or \(B, 33, 3\) array"):
        shipped(**pictures, object=data[0]["object_name"], num_cycles=0, keypoints="nose")
