"""The validation scripts' keypoint sources: a detector's picture fields are merged into the pipeline's inputs."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "training"))
from choose_keypoints import WithKeypoints  # noqa: E402


class Estimate:
    def __call__(self, batch):
        return None, None, None, None, {"image": "pictures", "human_mask": "rendered"}


def test_a_source_returning_fields_replaces_them_and_a_simulator_adds_keypoints():
    *_, pictures = WithKeypoints(Estimate(), lambda batch: {"keypoints": "detected", "human_mask": "detector's"})({})
    assert pictures == {"image": "pictures", "human_mask": "detector's", "keypoints": "detected"}
    *_, pictures = WithKeypoints(Estimate(), lambda batch: "simulated")({})
    assert pictures == {"image": "pictures", "human_mask": "rendered", "keypoints": "simulated"}


def test_clothed_pictures_widen_the_detectors_mask_but_not_a_missed_pictures_own():
    import numpy as np
    from choose_keypoint_fit import ClothedPictures
    from PIL import Image

    person = np.zeros((100, 60), np.uint8)
    person[20:70, 20:40] = 255  # 50 px tall, 20 px wide

    class Detected:
        missed, by_row = {1}, {}

        def __call__(self, batch):
            return {"keypoints": "detected", "human_mask": [Image.fromarray(person)] * 2}

    fields = ClothedPictures(Detected(), 0.1)({"index": [0, 1]})
    widened, own = (np.asarray(mask) > 127 for mask in fields["human_mask"])
    assert fields["keypoints"] == "detected"
    assert np.array_equal(own, person > 127)  # the missed picture keeps its own mask
    columns, rows = np.flatnonzero(widened.any(axis=0)), np.flatnonzero(widened.any(axis=1))
    # A disk of radius 0.1 x 50 = 5 px: 5 px more on every side, the original inside.
    assert (columns[0], columns[-1], rows[0], rows[-1]) == (15, 44, 15, 74)
    assert widened[person > 127].all() and not widened[15, 15]  # corners rounded by the disk
