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
