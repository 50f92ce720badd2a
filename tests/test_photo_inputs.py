"""Masks left out are made from the photo: the person's by a (replaceable) detector, the object's from a box."""
import numpy as np
import pytest
import torch

from scorehoi_diffusers import GuidedDDIMScheduler, ScoreHOIPipeline
from scorehoi_diffusers.body import BodyModel
from scorehoi_diffusers.models.regressor import ScoreHOIRegressor
from scorehoi_diffusers.object_mask import object_mask_from_box
from scorehoi_diffusers.person_detection import PersonDetection, box_of
from scorehoi_diffusers.pipelines.photo_inputs import resolve_photo_inputs
from tests.test_pipeline import small_denoiser

SHAPE = (120, 160)


def person(rows: slice, cols: slice, shape=SHAPE, seed: int = 0) -> PersonDetection:
    mask = np.zeros(shape, bool)
    mask[rows, cols] = True
    rng = np.random.default_rng(seed)
    keypoints = rng.uniform(0, min(shape), (33, 2)).astype(np.float32)
    return PersonDetection(keypoints, rng.uniform(0, 1, 33).astype(np.float32), mask, box_of(mask))


class FakeDetector:
    """A detector through the interface: answers with fixed people and records the pictures it saw."""

    def __init__(self, *people: PersonDetection):
        self.people = list(people)
        self.seen = []

    def detect(self, image):
        self.seen.append(image.shape)
        return list(self.people)


def picture(seed: int = 0) -> np.ndarray:
    image = np.random.default_rng(seed).integers(0, 60, (*SHAPE, 3), dtype=np.uint8)
    image[50:90, 100:140] = (220, 40, 40)  # the object: a red square right of the person
    return image


def test_detector_mask_and_keypoints_fill_in_the_person():
    one = person(slice(10, 110), slice(40, 90))
    detector = FakeDetector(one)
    photo = resolve_photo_inputs(picture(), None, None, object_box=[95, 45, 50, 50], person_detector=detector)
    np.testing.assert_array_equal(photo.human_mask[0], one.mask)
    assert photo.keypoints.shape == (1, 33, 3) and photo.keypoints.dtype == np.float32
    np.testing.assert_array_equal(photo.keypoints[0], one.keypoints_with_visibility())
    truth = np.zeros(SHAPE, bool)
    truth[50:90, 100:140] = True
    cut = photo.object_mask[0]
    assert (cut & truth).sum() / (cut | truth).sum() > 0.9
    assert not (cut & one.mask).any()


def test_given_masks_pass_through_untouched_and_no_detector_runs():
    human, obj = np.ones(SHAPE, bool), np.zeros(SHAPE, bool)
    detector = FakeDetector()
    photo = resolve_photo_inputs(picture(), human, obj, person_detector=detector)
    assert photo.human_mask is human and photo.object_mask is obj and photo.keypoints is None
    assert detector.seen == []


def test_a_given_person_mask_is_kept_and_the_object_is_cut_around_it():
    human = np.zeros(SHAPE, bool)
    human[10:110, 40:90] = True
    photo = resolve_photo_inputs(picture(), human, None, object_box=[95, 45, 50, 50], person_detector=FakeDetector())
    assert photo.human_mask[0] is human and photo.keypoints is None
    assert photo.object_mask[0].any()


def test_several_people_the_one_touching_the_object_box_is_taken():
    left, right = person(slice(10, 110), slice(0, 30), seed=1), person(slice(10, 110), slice(60, 100), seed=2)
    photo = resolve_photo_inputs(picture(), None, None, object_box=[95, 45, 50, 50],
                                 person_detector=FakeDetector(left, right))
    np.testing.assert_array_equal(photo.human_mask[0], right.mask)


def test_several_people_without_a_way_to_tell_is_one_clear_error():
    left, right = person(slice(10, 110), slice(0, 100), seed=1), person(slice(10, 110), slice(60, 120), seed=2)
    with pytest.raises(ValueError, match=r"`image` shows 2 people .* give `person_box` \(CLI `--person-box"):
        resolve_photo_inputs(picture(), None, None, object_box=[95, 45, 50, 50],
                             person_detector=FakeDetector(left, right))


class CropDetector(FakeDetector):
    """Finds one person in whatever picture it is given: a block inside it, with keypoints at its corner."""

    def detect(self, image):
        self.seen.append(image.shape)
        found = person(slice(5, 40), slice(5, 30), shape=image.shape[:2])
        found.keypoints[:] = 5.0
        return [found]


def test_person_box_looks_in_a_crop_and_places_the_result_back():
    detector = CropDetector()
    photo = resolve_photo_inputs(picture(), None, None, object_box=[95, 45, 50, 50], person_box=[50, 30, 30, 40],
                                 person_detector=detector)
    # The box grown by 10 % of its size on each side: x 47..83, y 26..74.
    assert detector.seen == [(48, 36, 3)]
    expected = np.zeros(SHAPE, bool)
    expected[26 + 5:26 + 40, 47 + 5:47 + 30] = True
    np.testing.assert_array_equal(photo.human_mask[0], expected)
    np.testing.assert_array_equal(photo.keypoints[0, :, :2], np.full((33, 2), [47 + 5.0, 26 + 5.0]))


def test_a_large_photo_is_detected_downscaled_and_the_detection_scaled_back(monkeypatch):
    from scorehoi_diffusers.pipelines import photo_inputs

    monkeypatch.setattr(photo_inputs, "DETECTION_MAX_SIDE", 40)  # the picture is 160 wide: a quarter of it
    detector = CropDetector()
    photo = resolve_photo_inputs(picture(), None, None, object_box=[95, 45, 50, 50], person_detector=detector)
    assert detector.seen == [(30, 40, 3)]
    expected = np.zeros(SHAPE, bool)
    expected[4 * 5:4 * 40, 4 * 5:4 * 30] = True  # the block found at 5..40 x 5..30, four times as large
    np.testing.assert_array_equal(photo.human_mask[0], expected)
    np.testing.assert_array_equal(photo.keypoints[0, :, :2], np.full((33, 2), 20.0))


def test_no_person_is_one_clear_error():
    with pytest.raises(ValueError, match=r"No person found in `image`; give `human_mask`.*`person_box`"):
        resolve_photo_inputs(picture(), None, None, object_box=[95, 45, 50, 50], person_detector=FakeDetector())
    with pytest.raises(ValueError, match=r"No person found inside `person_box`"):
        resolve_photo_inputs(picture(), None, None, object_box=[95, 45, 50, 50], person_box=[10, 10, 20, 20],
                             person_detector=FakeDetector())


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(object_box=None), ValueError, r"`image` has neither `object_mask` nor `object_box`"),
    (dict(object_box=[500, 10, 20, 20]), ValueError, r"`object_box` \[500.0, 10.0, 20.0, 20.0\] lies outside"),
    (dict(object_box="box"), TypeError, r"`object_box` must be x, y, w, h"),
    (dict(object_box=[[95, 45, 50, 50], [95, 45, 50, 50]]), ValueError, r"`object_box` has 2 boxes but `image` has 1"),
    (dict(person_box=[1, 2, 3]), ValueError, r"`person_box\[0\]` must be four numbers"),
    (dict(person_detector=object()), TypeError, r"`person_detector` must have a `detect"),
])
def test_bad_inputs_are_named(kwargs, error, message):
    arguments = dict(object_box=[95, 45, 50, 50], person_detector=FakeDetector(person(slice(10, 110), slice(40, 90))))
    with pytest.raises(error, match=message):
        resolve_photo_inputs(picture(), None, None, **(arguments | kwargs))


def test_a_detector_breaking_the_interface_is_named():
    class Broken:
        def detect(self, image):
            return [PersonDetection(np.zeros((17, 2)), np.zeros(17), np.zeros((4, 4), bool), np.zeros(4))]

    with pytest.raises(ValueError, match=r"`person_detector` returned a PersonDetection for `image` with keypoints"):
        resolve_photo_inputs(picture(), None, None, object_box=[95, 45, 50, 50], person_detector=Broken())


def test_boxes_without_an_image_are_refused():
    with pytest.raises(ValueError, match="`object_box` only applies to `image`"):
        resolve_photo_inputs(None, None, None, object_box=[1, 2, 3, 4])


@pytest.fixture(scope="module")
def pipeline():
    torch.manual_seed(0)  # test-only: module init draws from the global RNG
    pipe = ScoreHOIPipeline(small_denoiser(), GuidedDDIMScheduler(), BodyModel(), regressor=ScoreHOIRegressor().eval())
    pipe.set_progress_bar_config(disable=True)
    return pipe


def test_pipeline_without_masks_equals_the_pipeline_given_the_same_masks_and_keypoints(pipeline):
    images = [picture(0), picture(1)]
    one = person(slice(10, 110), slice(40, 90))
    boxes = [[95, 45, 50, 50], [95, 45, 50, 50]]
    auto = pipeline(image=images, object="box", object_box=boxes, person_detector=FakeDetector(one), num_cycles=1)
    cut = [object_mask_from_box(image, box, one.mask) for image, box in zip(images, boxes)]
    keypoints = np.stack([one.keypoints_with_visibility()] * 2)
    given = pipeline(image=images, human_mask=[one.mask, one.mask], object_mask=cut, object="box", num_cycles=1,
                     keypoints=keypoints)
    assert torch.equal(auto.body_vertices, given.body_vertices)
    # The detected keypoints took part: without them the result differs.
    masks_only = pipeline(image=images, human_mask=[one.mask, one.mask], object_mask=cut, object="box", num_cycles=1)
    assert not torch.equal(auto.body_vertices, masks_only.body_vertices)
    assert torch.equal(auto.object_vertices, given.object_vertices)


def test_pipeline_errors_for_missing_object_and_no_person(pipeline):
    with pytest.raises(ValueError, match="neither `object_mask` nor `object_box`"):
        pipeline(image=picture(), object="box", person_detector=FakeDetector(person(slice(10, 110), slice(40, 90))))
    with pytest.raises(ValueError, match="No person found in `image`"):
        pipeline(image=picture(), object="box", object_box=[95, 45, 50, 50], person_detector=FakeDetector())
