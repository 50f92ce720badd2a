"""The SMPL-H skeleton: joint names and order, the kinematic tree, hands, left/right mirroring and landmarks.

SMPL-H has 52 joints: the root (pelvis), 21 body joints, then 15 joints per hand (left hand first). Each hand
lists its fingers in the order of :data:`FINGER_ORDER`, three joints per finger from the knuckle out.
Everything that needs joint indices (the denoiser's part tokens, the synthetic scene rig, the stand-in body
generator) reads them here, and so does the one mapping of another keypoint convention onto the body: the 33
BlazePose landmarks of mediapipe's pose model (:data:`BLAZEPOSE_TO_BODY`).

Joints that come in pairs are given as ``(left, right)`` tuples indexed by :data:`LEFT` / :data:`RIGHT`, e.g.
``WRIST[RIGHT] == 21``. The body's left is on +x in SMPL-H's rest pose (y up, facing +z).
"""

__all__ = [
    "NUM_JOINTS",
    "NUM_BODY_JOINTS",
    "NUM_HAND_JOINTS",
    "JOINT_NAMES",
    "JOINT_INDEX",
    "PARENTS",
    "PELVIS",
    "SPINE1",
    "SPINE2",
    "SPINE3",
    "NECK",
    "HEAD",
    "HIP",
    "KNEE",
    "ANKLE",
    "FOOT",
    "COLLAR",
    "SHOULDER",
    "ELBOW",
    "WRIST",
    "FINGER_ORDER",
    "HAND_START",
    "BODY_JOINTS",
    "LEFT_HAND_JOINTS",
    "RIGHT_HAND_JOINTS",
    "HAND_JOINTS",
    "LEFT",
    "RIGHT",
    "SIDE_NAMES",
    "finger_joint",
    "MIRRORED_JOINTS",
    "LANDMARK_NAMES",
    "BLAZEPOSE_NAMES",
    "NUM_BLAZEPOSE",
    "BLAZEPOSE_TO_BODY",
    "BLAZEPOSE_BODY_INDEX",
    "BLAZEPOSE_FITTED",
    "BLAZEPOSE_MIRRORED",
]

NUM_BODY_JOINTS = 21  # without the root
NUM_HAND_JOINTS = 15  # per hand
NUM_JOINTS = 1 + NUM_BODY_JOINTS + 2 * NUM_HAND_JOINTS  # 52

LEFT, RIGHT = 0, 1
SIDE_NAMES = ("left", "right")
FINGER_ORDER = ("index", "middle", "pinky", "ring", "thumb")

_BODY_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
JOINT_NAMES: tuple[str, ...] = _BODY_JOINT_NAMES + tuple(
    f"{side}_{finger}{k}" for side in SIDE_NAMES for finger in FINGER_ORDER for k in (1, 2, 3)
)
JOINT_INDEX: dict[str, int] = {name: index for index, name in enumerate(JOINT_NAMES)}

# Single joints of the spine and head.
PELVIS, SPINE1, SPINE2, SPINE3, NECK, HEAD = (JOINT_INDEX[n] for n in ("pelvis", "spine1", "spine2", "spine3",
                                                                     "neck", "head"))


def _pair(name: str) -> tuple[int, int]:
    return JOINT_INDEX[f"left_{name}"], JOINT_INDEX[f"right_{name}"]


# Paired joints, (left, right).
HIP, KNEE, ANKLE, FOOT = _pair("hip"), _pair("knee"), _pair("ankle"), _pair("foot")
COLLAR, SHOULDER, ELBOW, WRIST = _pair("collar"), _pair("shoulder"), _pair("elbow"), _pair("wrist")
HAND_START = (JOINT_INDEX["left_index1"], JOINT_INDEX["right_index1"])  # first joint of each hand

# Joint ranges in the order smplx takes the pose: root, body, left hand, right hand.
BODY_JOINTS = slice(1, 1 + NUM_BODY_JOINTS)
LEFT_HAND_JOINTS = slice(HAND_START[LEFT], HAND_START[LEFT] + NUM_HAND_JOINTS)
RIGHT_HAND_JOINTS = slice(HAND_START[RIGHT], HAND_START[RIGHT] + NUM_HAND_JOINTS)
HAND_JOINTS = slice(HAND_START[LEFT], NUM_JOINTS)


def finger_joint(side: int, finger: str, k: int = 0) -> int:
    """Index of joint ``k`` (0 = knuckle, 1, 2 = tip joint) of ``finger`` on hand ``side`` (LEFT or RIGHT)."""
    return HAND_START[side] + 3 * FINGER_ORDER.index(finger) + k


# Parent of each joint (-1 for the root): the body tree, then every finger chain hanging off its wrist.
PARENTS: tuple[int, ...] = (
    -1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19,
) + tuple(
    parent
    for side in (LEFT, RIGHT)
    for finger in FINGER_ORDER
    for parent in (WRIST[side], finger_joint(side, finger, 0), finger_joint(side, finger, 1))
)


def _mirrored_joints() -> tuple[int, ...]:
    swap = {"left_": "right_", "right_": "left_"}
    mirrored = []
    for name in JOINT_NAMES:
        prefix = next((p for p in swap if name.startswith(p)), None)
        mirrored.append(JOINT_INDEX[swap[prefix] + name[len(prefix):]] if prefix else JOINT_INDEX[name])
    return tuple(mirrored)


# The joint each joint becomes under a left/right reflection (a permutation swapping every left/right pair).
MIRRORED_JOINTS: tuple[int, ...] = _mirrored_joints()

# Keys of smplx's ``vertex_ids`` dictionary for SMPL-H: the face, feet and fingertip keypoints smplx appends
# to the 52 joints, in smplx's order.
LANDMARK_NAMES = (
    "nose", "reye", "leye", "rear", "lear", "LBigToe", "LSmallToe", "LHeel", "RBigToe", "RSmallToe",
    "RHeel", "lthumb", "lindex", "lmiddle", "lring", "lpinky", "rthumb", "rindex", "rmiddle", "rring",
    "rpinky",
)


# mediapipe Pose's 33 BlazePose landmarks, in its output order. "left" is the person's left, as in SMPL-H.
BLAZEPOSE_NAMES: tuple[str, ...] = (
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle", "left_heel", "right_heel", "left_foot_index", "right_foot_index",
)
NUM_BLAZEPOSE = len(BLAZEPOSE_NAMES)  # 33


def _blazepose_to_body() -> dict[str, tuple[str, str] | None]:
    """Where each BlazePose landmark lies on the body: ``("joint", SMPL-H joint name)``, ``("landmark", name
    in LANDMARK_NAMES)`` (a surface vertex; its index differs between SMPL-H and the stand-in body, which each
    name it in their own file), or ``None`` where the body has no matching point (inner/outer eye corners and
    mouth corners: the eye and nose landmarks already pin the face)."""
    table: dict[str, tuple[str, str] | None] = {"nose": ("landmark", "nose")}
    for side, letter in (("left", "l"), ("right", "r")):
        capital = letter.upper()
        table |= {
            f"{side}_eye_inner": None,
            f"{side}_eye": ("landmark", f"{letter}eye"),
            f"{side}_eye_outer": None,
            f"{side}_ear": ("landmark", f"{letter}ear"),
            f"mouth_{side}": None,
            f"{side}_shoulder": ("joint", f"{side}_shoulder"),
            f"{side}_elbow": ("joint", f"{side}_elbow"),
            f"{side}_wrist": ("joint", f"{side}_wrist"),
            # BlazePose's hand points are the pinky and index knuckles and the thumb's second joint.
            f"{side}_pinky": ("joint", f"{side}_pinky1"),
            f"{side}_index": ("joint", f"{side}_index1"),
            f"{side}_thumb": ("joint", f"{side}_thumb2"),
            f"{side}_hip": ("joint", f"{side}_hip"),
            f"{side}_knee": ("joint", f"{side}_knee"),
            f"{side}_ankle": ("joint", f"{side}_ankle"),
            f"{side}_heel": ("landmark", f"{capital}Heel"),
            f"{side}_foot_index": ("landmark", f"{capital}BigToe"),
        }
    return {name: table[name] for name in BLAZEPOSE_NAMES}


# The one BlazePose -> body mapping (read by the keypoint guidance term, simulated detections and the docs
# picture): each landmark's ("joint" | "landmark", name), or None.
BLAZEPOSE_TO_BODY: dict[str, tuple[str, str] | None] = _blazepose_to_body()

# The same as indices into ``torch.cat([joints (B, 52, 3), landmarks (B, 21, 3)], dim=1)`` (joints first, then
# LANDMARK_NAMES), -1 where the landmark has no body point.
BLAZEPOSE_BODY_INDEX: tuple[int, ...] = tuple(
    -1 if target is None
    else JOINT_INDEX[target[1]] if target[0] == "joint"
    else NUM_JOINTS + LANDMARK_NAMES.index(target[1])
    for target in BLAZEPOSE_TO_BODY.values()
)
# True for landmarks with a body point (the ones the reprojection term and the learned parts use).
BLAZEPOSE_FITTED: tuple[bool, ...] = tuple(index >= 0 for index in BLAZEPOSE_BODY_INDEX)


def _blazepose_mirrored() -> tuple[int, ...]:
    def swap(name: str) -> str:
        for a, b in (("left", "right"), ("right", "left")):
            if a in name:
                return name.replace(a, b)
        return name

    return tuple(BLAZEPOSE_NAMES.index(swap(name)) for name in BLAZEPOSE_NAMES)


# The landmark each landmark becomes under a left/right swap (a detector confusing the person's sides).
BLAZEPOSE_MIRRORED: tuple[int, ...] = _blazepose_mirrored()
