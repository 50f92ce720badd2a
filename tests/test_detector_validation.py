"""The validation scripts' real-detector source: the bundled detector's keypoints and person mask on each render."""
import sys
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from choose_keypoints import DetectorDetections, WithKeypoints  # noqa: E402

from scorehoi_diffusers.data.synthetic import generate_dataset  # noqa: E402


def _batch(rows):
    return {key: [row[key] for row in rows] for key in ("index", "image", "human_mask")}


def test_the_detector_replaces_keypoints_and_person_mask_and_runs_once_per_scene(monkeypatch):
    data = generate_dataset(2, seed=0, split="train", start=20000, image_size=192, progress=False)
    rows = [{**data[i], "index": i} for i in range(2)]  # evaluate() adds each scene's index to its batch
    blank = {"index": 7, "image": Image.new("RGB", (192, 192), (90, 90, 90)), "human_mask": rows[0]["human_mask"]}
    source = DetectorDetections()
    calls = []
    detect = source.detector.detect
    monkeypatch.setattr(source.detector, "detect", lambda image: calls.append(1) or detect(image))

    fields = source.pictures(_batch([*rows, blank]))
    keypoints, masks = fields["keypoints"], fields["human_mask"]
    assert keypoints.shape == (3, 33, 3) and len(masks) == 3
    # The renders: found, landmarks near the rendered person, the mask the detector's own, overlapping the render's.
    for row, found, mask in zip(rows, keypoints[:2], masks[:2]):
        rendered = np.asarray(row["human_mask"]) > 127
        detected = np.asarray(mask) > 127
        assert detected.shape == rendered.shape and not np.array_equal(detected, rendered)
        assert (detected & rendered).sum() > 0.5 * rendered.sum()
        seen = found[found[:, 2] > 0.5, :2].round().astype(int).clip(0, 191)
        assert len(seen) > 5 and rendered[seen[:, 1], seen[:, 0]].mean() > 0.5
    # The blank picture: nobody, so no keypoints and the rendered mask kept.
    assert source.missed == {7} and not keypoints[2].any() and masks[2] is blank["human_mask"]
    # A second setting on the same scenes detects nothing again.
    again = source.pictures(_batch([*rows, blank]))
    assert len(calls) == 3
    np.testing.assert_array_equal(again["keypoints"], keypoints)


def test_with_keypoints_merges_the_fields_a_detector_returns():
    class Estimate:
        def __call__(self, batch):
            return None, None, None, None, {"image": "pictures", "human_mask": "rendered"}

    class Source:
        def pictures(self, batch):
            return {"keypoints": "detected", "human_mask": "detector's"}

    *_, pictures = WithKeypoints(Estimate(), Source())({"index": [0]})
    assert pictures == {"image": "pictures", "human_mask": "detector's", "keypoints": "detected"}
