"""The SMPL-H skeleton module: the one table of joints every other module reads."""
from scorehoi_diffusers import skeleton
from scorehoi_diffusers.skeleton import (
    FINGER_ORDER,
    HAND_START,
    JOINT_INDEX,
    JOINT_NAMES,
    LEFT,
    MIRRORED_JOINTS,
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
