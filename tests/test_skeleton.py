"""The SMPL-H skeleton module: the one table of joints every other module reads."""
from scorehoi_diffusers import skeleton
from scorehoi_diffusers.skeleton import (
    BLAZEPOSE_BODY_INDEX,
    BLAZEPOSE_FITTED,
    BLAZEPOSE_MIRRORED,
    BLAZEPOSE_NAMES,
    FINGER_ORDER,
    HAND_START,
    JOINT_INDEX,
    JOINT_NAMES,
    LEFT,
    MIRRORED_JOINTS,
    NUM_BLAZEPOSE,
    NUM_JOINTS,
    PARENTS,
    RIGHT,
    WRIST,
    finger_joint,
)

# SMPL-H's published body tree (root first), written out independently of the module.
SMPLH_BODY_PARENTS = [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]


def test_joint_table_is_smplh():
    assert NUM_JOINTS == len(JOINT_NAMES) == len(PARENTS) == 52
    assert list(PARENTS[:22]) == SMPLH_BODY_PARENTS
    assert JOINT_NAMES[22] == "left_index1" and JOINT_NAMES[51] == "right_thumb3"
    assert HAND_START == (22, 37) and WRIST == (20, 21)
    assert all(PARENTS[j] < j for j in range(1, NUM_JOINTS))


def test_fingers_hang_off_their_wrist_in_chains():
    for side in (LEFT, RIGHT):
        for finger in FINGER_ORDER:
            knuckle, middle, tip = (finger_joint(side, finger, k) for k in range(3))
            assert (PARENTS[knuckle], PARENTS[middle], PARENTS[tip]) == (WRIST[side], knuckle, middle)
            assert JOINT_NAMES[tip] == f"{skeleton.SIDE_NAMES[side]}_{finger}3"


def test_mirror_swaps_every_left_right_pair_and_nothing_else():
    assert sorted(MIRRORED_JOINTS) == list(range(NUM_JOINTS))
    for joint, mirrored in enumerate(MIRRORED_JOINTS):
        assert MIRRORED_JOINTS[mirrored] == joint
        name = JOINT_NAMES[joint]
        if name.startswith("left_"):
            assert JOINT_NAMES[mirrored] == "right_" + name[5:]
        elif not name.startswith("right_"):
            assert mirrored == joint
    assert MIRRORED_JOINTS[JOINT_INDEX["left_wrist"]] == JOINT_INDEX["right_wrist"]


def test_blazepose_mapping_is_one_table_with_mirror_pairs():
    assert len(BLAZEPOSE_NAMES) == NUM_BLAZEPOSE == 33 and len(BLAZEPOSE_BODY_INDEX) == 33
    assert sum(BLAZEPOSE_FITTED) == 27  # eye corners and mouth corners have no body point
    assert all(BLAZEPOSE_MIRRORED[BLAZEPOSE_MIRRORED[i]] == i for i in range(NUM_BLAZEPOSE))
    for i, name in enumerate(BLAZEPOSE_NAMES):
        mirrored = BLAZEPOSE_NAMES[BLAZEPOSE_MIRRORED[i]]
        assert mirrored == name.replace("left", "@").replace("right", "left").replace("@", "right")
        # A landmark's mirror lands on its body point's mirror (the mapping is left/right consistent).
        index, mirrored_index = BLAZEPOSE_BODY_INDEX[i], BLAZEPOSE_BODY_INDEX[BLAZEPOSE_MIRRORED[i]]
        if 0 <= index < NUM_JOINTS:
            assert MIRRORED_JOINTS[index] == mirrored_index


def test_blazepose_points_sit_on_the_right_side_of_the_standin_body():
    """In the rest pose (facing +z, left on +x) left landmarks have x > 0, the nose is up front, feet low."""
    import torch

    from scorehoi_diffusers.body import BodyModel
    from scorehoi_diffusers.params import HOIParams

    output = BodyModel()(HOIParams.identity(1))  # SMPL-H rest frame: y up, facing +z
    points = torch.cat([output.joints, output.landmarks], dim=1)[0, [max(i, 0) for i in BLAZEPOSE_BODY_INDEX]]
    for i, name in enumerate(BLAZEPOSE_NAMES):
        if BLAZEPOSE_FITTED[i] and name.startswith("left"):
            assert points[i, 0] > 0.02, name
        if BLAZEPOSE_FITTED[i] and name.startswith("right"):
            assert points[i, 0] < -0.02, name
    nose, heel, toe = (BLAZEPOSE_NAMES.index(n) for n in ("nose", "left_heel", "left_foot_index"))
    assert points[nose, 1] > 0.4 and points[nose, 2] > points[BLAZEPOSE_NAMES.index("left_ear"), 2]
    assert points[heel, 1] < -0.8 and points[toe, 2] > points[heel, 2] + 0.1


def test_mapping_figure_draws(tmp_path):
    from tools.blazepose_mapping_figure import draw

    draw(tmp_path / "mapping.png")
    from PIL import Image

    assert Image.open(tmp_path / "mapping.png").size == (1800, 1080)
