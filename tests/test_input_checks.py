"""The shared input checks, the camera helpers, and reading pictures the way the user sees them."""
import logging

import numpy as np
import PIL.Image
import pytest
import torch
from conftest import masks

from scorehoi_diffusers.camera import DEFAULT_FOCAL_FACTOR, default_intrinsics, depth_for_extent, intrinsics_from_focal
from scorehoi_diffusers.cli import DEFAULT_EXAMPLES, main
from scorehoi_diffusers.data.crop import crop_sample
from scorehoi_diffusers.image_processor import MIN_MASK_PIXELS, HOIImageProcessor, load_image, to_mask_array
from scorehoi_diffusers.input_checks import (
    MAX_FOCAL_FACTOR,
    MIN_FOCAL_FACTOR,
    check_bbox,
    check_focal,
    check_intrinsics,
    check_tensor,
    mask_inside,
)

BAG = DEFAULT_EXAMPLES / "synthetic_bag"


def picture(size=(64, 64)):
    return np.random.default_rng(0).integers(0, 255, size + (3,), dtype=np.uint8)


# ------------------------------------------------------------------------------------------------------------
# Tensors


def test_check_tensor_names_the_argument_and_its_shape():
    check_tensor("points", torch.zeros(2, 5, 3), (None, None, 3), "(B, N, 3)")
    with pytest.raises(ValueError, match=r"`points` must have shape \(B, N, 3\) = \(\?, \?, 3\), got \(2, 5\)"):
        check_tensor("points", torch.zeros(2, 5), (None, None, 3), "(B, N, 3)")
    with pytest.raises(TypeError, match="`points` must be a torch.Tensor"):
        check_tensor("points", np.zeros((2, 5, 3)), (None, None, 3))


def test_check_tensor_checks_finiteness_only_when_asked():
    values = torch.tensor([[1.0, float("nan"), 0.0]])
    check_tensor("x", values, (1, 3))  # guidance lets NaN through on purpose
    with pytest.raises(ValueError, match="`x` contains NaN"):
        check_tensor("x", values, (1, 3), finite=True)


# ------------------------------------------------------------------------------------------------------------
# Camera: focal lengths and intrinsics


def test_default_intrinsics_is_intrinsics_from_the_default_focal():
    np.testing.assert_array_equal(default_intrinsics(48, 64), intrinsics_from_focal(DEFAULT_FOCAL_FACTOR * 64, 48, 64))
    K = default_intrinsics(48, 64)
    assert K.dtype == np.float32 and K[0, 0] == K[1, 1] == np.float32(76.8)
    assert (K[0, 2], K[1, 2]) == (31.5, 23.5)  # pixel centres at integers: the centre of a 64-wide row is 31.5


@pytest.mark.parametrize("focal", [float("nan"), float("inf"), 1e9, 1e-6, 0.0, -5.0])
def test_implausible_focal_is_a_one_line_error_naming_it(focal):
    message = "`--focal` is .* pixels but a 64x48 picture needs a focal length between"
    with pytest.raises(ValueError, match=message) as info:
        intrinsics_from_focal(focal, 48, 64, name="--focal")
    assert "\n" not in str(info.value)


def test_focal_bounds_are_multiples_of_the_longer_side():
    assert check_focal(MIN_FOCAL_FACTOR * 640, (480, 640)) == 64.0
    assert check_focal(MAX_FOCAL_FACTOR * 640, (480, 640)) == 12800.0
    with pytest.raises(ValueError):
        check_focal(MAX_FOCAL_FACTOR * 640 * 1.01, (480, 640))
    with pytest.raises(TypeError, match="`focal` must be a number"):
        check_focal("500", (480, 640))


def test_intrinsics_follow_the_same_rules_as_the_focal():
    K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
    np.testing.assert_array_equal(check_intrinsics(torch.from_numpy(K), image_size=(480, 640)), K)
    with pytest.raises(ValueError, match=r"`K\[1, 1\] \(fy\)` is 1e\+09 pixels"):
        check_intrinsics(np.diag([500.0, 1e9, 1.0]), "K", (480, 640))
    check_intrinsics(np.diag([500.0, 1e9, 1.0]), "K")  # without a picture size only the form is checked
    with pytest.raises(ValueError, match="non-finite"):
        check_intrinsics(np.full((3, 3), np.nan))
    with pytest.raises(ValueError, match="pinhole matrix"):
        check_intrinsics(K + np.eye(3)[[1]].T @ np.eye(3)[[0]])  # K[1, 0] != 0 is not a pinhole camera


def test_depth_for_extent_inverts_the_projection():
    assert depth_for_extent(500.0, 1.7, 170.0) == pytest.approx(5.0)


def test_bbox_rules():
    np.testing.assert_array_equal(check_bbox([1, 2, 3, 4]), [1.0, 2.0, 3.0, 4.0])
    with pytest.raises(ValueError, match="4 finite numbers"):
        check_bbox([1, 2, 3])
    with pytest.raises(ValueError, match="positive width"):
        check_bbox([1, 2, -3, 4])
    with pytest.raises(ValueError, match="outside the 64x48 image"):
        check_bbox([70, 2, 3, 4], image_size=(48, 64))


# ------------------------------------------------------------------------------------------------------------
# Masks: one rule for every kind of input


def test_zero_one_masks_are_binary_for_every_input_kind():
    human, _ = masks()
    as_01 = human.astype(np.uint8)
    for mask in (human, as_01 * 255, as_01, as_01.astype(np.int64), as_01.astype(np.float32),
                 PIL.Image.fromarray(as_01), PIL.Image.fromarray(as_01 * 255), torch.from_numpy(as_01)):
        np.testing.assert_array_equal(to_mask_array(mask, "human_mask", human.shape), human)


def test_mask_rules_for_grey_levels_and_nan():
    np.testing.assert_array_equal(mask_inside(np.array([0, 1, 127, 128, 255], np.uint8), "m"),
                                  [False, False, False, True, True])
    np.testing.assert_array_equal(mask_inside(np.array([0.0, 0.49, 0.5, 1.0]), "m"), [False, False, True, True])
    with pytest.raises(ValueError, match="`m` contains NaN"):
        mask_inside(np.array([0.0, np.nan]), "m")


def test_crop_reads_zero_one_masks_like_boolean_ones():
    human, obj = masks()
    sample = {"image": picture(), "intrinsics": default_intrinsics(64, 64), "bbox": [10, 5, 45, 55]}
    from_bool = crop_sample(sample | {"human_mask": human, "object_mask": obj})
    from_01 = crop_sample(sample | {"human_mask": human.astype(np.uint8),
                                    "object_mask": PIL.Image.fromarray(obj.astype(np.uint8))})
    for key in ("human_mask", "object_mask"):
        assert from_bool[key].any()
        np.testing.assert_array_equal(from_01[key], from_bool[key])


# ------------------------------------------------------------------------------------------------------------
# Pictures that cannot place a person


def test_tiny_mask_is_refused():
    human, obj = masks()
    speck = np.zeros_like(human)
    speck[30, 30:33] = True  # a 3-pixel "person"
    with pytest.raises(ValueError, match=f"`human_mask` marks only 3 pixels, fewer than the {MIN_MASK_PIXELS}"):
        HOIImageProcessor().preprocess(picture(), speck, obj)


@pytest.mark.parametrize("tiny, expect_warning", [(True, True), (False, False)])
def test_implausible_implied_depth_warns(tiny, expect_warning, caplog):
    human, obj = masks()
    small_human, small_obj = np.zeros_like(human), np.zeros_like(obj)
    small_human[30:34, 30:34] = True
    small_obj[31:35, 31:35] = True
    # A 5-pixel box with the default focal (76.8 px) puts a 1.7 m subject 26 m away.
    args = (picture(), small_human, small_obj) if tiny else (picture(), human, obj)
    with caplog.at_level(logging.WARNING, logger="scorehoi_diffusers.image_processor"):
        HOIImageProcessor().preprocess(*args)
    warned = [r.getMessage() for r in caplog.records if "plausible" in r.getMessage()]
    assert bool(warned) == expect_warning, warned
    if expect_warning:
        assert "5 pixels" in warned[0] and "--focal" in warned[0]


def test_too_long_focal_implies_a_far_subject_and_warns(caplog):
    human, obj = masks()
    with caplog.at_level(logging.WARNING, logger="scorehoi_diffusers.image_processor"):
        HOIImageProcessor().preprocess(picture(), human, obj, intrinsics=np.diag([1200.0, 1200.0, 1.0]))
    assert any("outside the plausible" in r.getMessage() for r in caplog.records)


def test_bbox_that_leaves_out_the_person_names_bbox_and_the_cli_flag():
    human, obj = masks()
    with pytest.raises(ValueError, match=r"`bbox\[0\]` .* leaves the person \(`human_mask`\) out .*`--bbox") as info:
        HOIImageProcessor().preprocess(picture(), human, obj, bbox=[56, 0, 8, 8])
    assert "\n" not in str(info.value)


# ------------------------------------------------------------------------------------------------------------
# Reading picture files


def test_sixteen_bit_grey_png_is_scaled_not_white(tmp_path):
    values = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    PIL.Image.fromarray(values).save(tmp_path / "grey16.png")
    assert PIL.Image.open(tmp_path / "grey16.png").mode.startswith("I")
    rgb = load_image(tmp_path / "grey16.png")
    assert rgb.shape == (64, 64, 3) and rgb.dtype == np.uint8
    np.testing.assert_array_equal(rgb[..., 0], np.round(values / 257.0).astype(np.uint8))


def test_sixteen_bit_masks_are_binary_for_0_1_and_0_65535(tmp_path):
    human, _ = masks()
    for name, scale in (("mask01.png", 1), ("mask16.png", 65535)):
        PIL.Image.fromarray(human.astype(np.uint16) * scale).save(tmp_path / name)
        read = load_image(tmp_path / name, "human_mask", mask=True)
        np.testing.assert_array_equal(to_mask_array(read, "human_mask", human.shape), human)


def test_exif_orientation_is_applied_to_images_and_masks(tmp_path):
    image = picture((40, 64))
    exif = PIL.Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    PIL.Image.fromarray(image).save(tmp_path / "photo.png", exif=exif)
    PIL.Image.fromarray(image[..., 0]).save(tmp_path / "mask.png", exif=exif)
    PIL.Image.fromarray(image[..., 0].astype(np.uint16) * 257).save(tmp_path / "mask16.png", exif=exif)
    displayed = np.rot90(image, k=-1)
    np.testing.assert_array_equal(load_image(tmp_path / "photo.png"), displayed)
    for mask_file in ("mask.png", "mask16.png"):
        np.testing.assert_array_equal(load_image(tmp_path / mask_file, "human_mask", mask=True), displayed[..., 0])


@pytest.mark.parametrize("limit", [64 * 64 - 1, (64 * 64) // 2 - 1])  # PIL warns over 1x and raises over 2x
def test_decompression_bomb_is_a_one_line_error(limit, tmp_path, monkeypatch):
    PIL.Image.fromarray(picture()).save(tmp_path / "huge.png")
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", limit)
    with pytest.raises(ValueError, match="`image`: .*huge.png has more pixels than PIL's limit") as info:
        load_image(tmp_path / "huge.png")
    assert "\n" not in str(info.value)


def test_unreadable_and_missing_files(tmp_path):
    (tmp_path / "garbage.png").write_bytes(b"not a picture")
    with pytest.raises(ValueError, match="`object_mask`: .*garbage.png is not a readable picture"):
        load_image(tmp_path / "garbage.png", "object_mask", mask=True)
    with pytest.raises(FileNotFoundError, match="`image`: no file at"):
        load_image(tmp_path / "absent.png")


def _reconstruct_args(tmp_path, *extra):
    return ["reconstruct", str(BAG / "image.png"), "--human-mask", str(BAG / "human_mask.png"), "--object-mask",
            str(BAG / "object_mask.png"), "--object", "bag", "--cycles", "0", "--out", str(tmp_path), *extra]


@pytest.mark.parametrize("focal", ["nan", "1e9", "1e-6"])
def test_cli_refuses_implausible_focal_in_one_line(focal, tmp_path, capsys):
    assert main(_reconstruct_args(tmp_path, "--focal", focal)) == 2
    err = capsys.readouterr().err.strip()
    assert "--focal" in err and "focal length between" in err and len(err.splitlines()) == 1, err


def test_cli_bbox_that_leaves_out_the_person_names_the_flag(tmp_path, capsys):
    assert main(_reconstruct_args(tmp_path, "--bbox", "0", "0", "10", "10")) == 2
    err = capsys.readouterr().err.strip()
    assert "--bbox" in err and "leaves the person" in err and len(err.splitlines()) == 1, err


def test_cli_decompression_bomb_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(PIL.Image, "MAX_IMAGE_PIXELS", 1000)
    assert main(_reconstruct_args(tmp_path)) == 2
    err = capsys.readouterr().err.strip()
    assert "MAX_IMAGE_PIXELS" in err and "Traceback" not in err and len(err.splitlines()) == 1, err
