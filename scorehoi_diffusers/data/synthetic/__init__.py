"""Synthetic human-object interaction scenes: seeded poses, real contacts, rendered images, ``datasets`` output.

Every sample is built in a *body frame* (metres, y up, the floor a horizontal plane under the feet, the pelvis
at the origin, the body facing +z before a random yaw of the whole scene) and then seen by a random camera.
An interaction (:data:`INTERACTIONS`) is a recipe that poses the body and the object *together*:

* the legs and the pelvis height come from two-bone inverse kinematics that puts both feet flat on the
  floor (standing, bending, squatting) or the buttocks on a seat and the feet on the floor (sitting);
* the object is placed where the recipe wants it (on the floor within reach, in front of the belly, under a
  foot, on the back, hanging from a hand) and slid along a free direction until it touches the body;
* each hand that touches the object gets a contact point, a palm direction and a finger direction on the
  object's surface; analytic arm inverse kinematics (elbow on a random swivel, forearm twist shared between
  elbow and wrist) puts the palm there, and the fingers take a grasp (flat, holding, ball, power grip);
* a sample whose body points sink more than 2 cm into the object, whose object sinks into the floor, or
  whose hands cannot reach is drawn again from a fresh random stream.

Each recipe is a pose template with seeded perturbations: ranges for the trunk's bend (shared over pelvis
and spine as axis-angle rotations), the crouch, the stance, the hip and knee angles of sitting, where the
hands go on the object and how the elbows swing, plus axis-angle noise on spine, neck, head, collars, wrists
and fingers; the joints that must meet a target (legs, arms) are then solved by IK. Half of all scenes are
mirrored left-right. Betas are N(0, 1) clipped to [-2.5, 2.5]. Ground truth: body contacts
are the downsampled body vertices within 5 cm of the object surface (object SDF), object contacts the
keypoints within 5 cm of the full body mesh (nearest vertex), floor contact the object's lowest vertex
within 2 cm of the floor. Cameras keep the object mostly in view (they turn round the scene otherwise).

Randomness: sample ``i`` of seed ``s`` reads only ``np.random.default_rng([split, s, i, ...])``, so any
subset of samples, in any batch size or process, comes out the same (up to float rounding of batched
matrix products); the test split uses a disjoint stream. The parameter-only path (:func:`sample_params`,
for training the prior) and the rendered path (:func:`generate_dataset`) share every parameter.

Example::

    from scorehoi_diffusers.data.synthetic import sample_params, synthesize

    params, contacts, object_names = sample_params(10_000, seed=0)   # prior training data, no pictures
    dataset = synthesize(1000, "data/synthetic", seed=0)             # rendered, saved with save_to_disk
"""

from .dataset import (
    contact_sheet,
    generate_dataset,
    generate_samples,
    sample_params,
    sample_scenes,
    save_dataset,
    synthesize,
    synthetic_split,
)
from .generator import SPLITS, SyntheticHOIGenerator, SyntheticScenes
from .recipes import INTERACTIONS

__all__ = [
    "INTERACTIONS",
    "SPLITS",
    "SyntheticHOIGenerator",
    "SyntheticScenes",
    "sample_params",
    "sample_scenes",
    "generate_samples",
    "generate_dataset",
    "save_dataset",
    "synthesize",
    "synthetic_split",
    "contact_sheet",
]
