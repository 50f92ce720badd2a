"""Interaction recipes: each poses one batch of body and object together, then the batch is finished
(mirrored, checked, turned, given a camera).
"""
from __future__ import annotations

import math

import torch

from ...skeleton import (
    ANKLE,
    HIP,
    KNEE,
    LEFT,
    MIRRORED_JOINTS,
    RIGHT,
    SHOULDER,
    SIDE_NAMES,
    WRIST,
)
from .cameras import _camera, _visible_fraction
from .rotations import _align, _axis_rot, _rot, _rotation_between, _unit, _vec, _yaw
from .scene import _SIGN, _grip_hole, _SceneBatch

MAX_PENETRATION = 0.02  # deeper body-in-object points make a sample be drawn again
MIN_OBJECT_VISIBILITY = 0.4  # share of the object's camera-facing surface the body may not hide


# ---------------------------------------------------------------------------------------------------------
# Recipes: each poses one batch in the body frame, written for the left hand (half the samples get mirrored)
# ---------------------------------------------------------------------------------------------------------


def _carry_front(ctx: _SceneBatch) -> None:
    """Carry the object in front of the belly, one palm on each side (box, bag, stool)."""
    name = ctx.template.name
    ctx.posture(lean=(-0.15, 0.08))
    ctx.stand(crouch=(0.95, 0.985))
    turn = ctx.rand(-0.3, 0.3)
    if name == "box":
        turn = turn + ctx.coin(0.4).double() * (math.pi / 2)
    tilt = _rot(torch.stack([ctx.randn(0.06), torch.zeros_like(turn), ctx.randn(0.04)], 1))
    ctx.object_rotation = tilt @ _yaw(turn)
    height = ctx.rand(0.0, 0.3) if name != "stool" else ctx.rand(0.05, 0.3)
    ctx.object_translation = torch.stack([ctx.randn(0.03), height, torch.full_like(turn, 0.9)], 1)
    gap = ctx.rand(0.0, 0.08)
    ctx.slide_object((0.0, 0.0, -1.0), gap=gap, mask=ctx.rig.down_trunk)
    grips = []
    for side in (LEFT, RIGHT):
        if name == "stool":  # the seat's rim
            outward = ctx.object_rotation.transpose(1, 2) @ torch.tensor([_SIGN[side], 0.0, 0.0], dtype=torch.float64)
            angle = torch.atan2(outward[:, 2], outward[:, 0]) + ctx.randn(0.2)
            normal = torch.stack([angle.cos(), torch.zeros_like(angle), angle.sin()], 1)
            local = normal * ctx.geometry.radius
            local[:, 1] = ctx.geometry.seat_top - 0.02
        else:
            centre, normal, tangent, half = ctx.vertical_face((_SIGN[side], 0.0, 0.0), (0.0, 0.0, 1.0))
            local = centre + tangent * (half * ctx.rand(-0.2, 0.45))[:, None]
            local[:, 1] += (ctx.geometry.high[1] - ctx.geometry.low[1]) / 2 * ctx.rand(-0.4, 0.25)
        normal = ctx.direction_to_body(normal)
        preferred = torch.stack([ctx.randn(0.2), ctx.rand(0.0, 0.8), torch.ones_like(turn)], 1)
        grips.append(ctx.palm_grip(side, ctx.to_body(local), -normal, preferred,
                                   grasp="flat" if name == "box" else "hold"))
    # Lift what the arms cannot hold that low, then let it touch (or nearly touch) the belly again.
    ctx.bring_within_reach(grips, fraction=ctx.rand(0.88, 0.96)[:, None])
    ctx.slide_object((0.0, 0.0, -1.0), gap=gap, mask=ctx.rig.down_trunk)
    ctx.bring_within_reach(grips, fraction=0.97)
    poles = [torch.stack([_SIGN[side] * ctx.rand(0.8, 1.2), -ctx.rand(0.4, 1.0), ctx.rand(-0.5, 0.0)], 1)
             for side in (LEFT, RIGHT)]
    ctx.hold(grips, poles)
    ctx.look_at(ctx.object_translation)


def _lift_box(ctx: _SceneBatch) -> None:
    """Bend or squat to a box on (or just above) the floor, palms on its sides."""
    turn = ctx.rand(-0.35, 0.35) + ctx.coin(0.4).double() * (math.pi / 2)
    ctx.object_rotation = _yaw(turn)
    faces = [ctx.vertical_face((_SIGN[side], 0.0, 0.0), (0.0, 0.0, 1.0)) for side in (LEFT, RIGHT)]
    half_height = (ctx.geometry.high[1] - ctx.geometry.low[1]) / 2
    locals_ = []
    for centre, _normal, tangent, half in faces:
        local = centre + tangent * (half * ctx.rand(-0.25, 0.3))[:, None]
        local[:, 1] += half_height * ctx.rand(-0.1, 0.5)
        locals_.append(local)
    lift = ctx.coin(0.6).double() * ctx.rand(0.0, 0.4)
    contact_height = 0.5 * (locals_[0][:, 1] + locals_[1][:, 1]) - ctx.geometry.low[1] + lift
    ctx.stoop(contact_height, crouch=(0.55, 0.9), reach=(0.75, 0.95), width=(0.03, 0.15), max_bend=1.2)
    ctx.object_translation = torch.stack([ctx.randn(0.03), torch.zeros_like(turn), torch.zeros_like(turn)], 1)
    ctx.rest_on_floor()
    ctx.object_translation[:, 1] += lift
    # Where the hands cannot get down to the box, it is already being lifted.
    ctx.place_within_reach(locals_, (LEFT, RIGHT), (0.8, 0.92), raise_object=True)
    ctx.push_out((0.0, 0.0, 1.0), ctx.rig.down_trunk, clearance=0.02)
    grips = []
    for side, local, (_, normal, _, _) in zip((LEFT, RIGHT), locals_, faces):
        normal = ctx.direction_to_body(normal)
        preferred = torch.stack([ctx.randn(0.2), ctx.rand(-0.3, 0.5), torch.ones_like(turn)], 1)
        grips.append(ctx.palm_grip(side, ctx.to_body(local), -normal, preferred))
    ctx.bring_within_reach(grips)
    ctx.hold(grips)
    ctx.look_at(ctx.object_translation)


def _push_front(ctx: _SceneBatch) -> None:
    """Lean into a box or a table on the floor, palms on its near face (or flat on a table top)."""
    name = ctx.template.name
    on_top = ctx.coin({"lean_on_table": 1.0, "push_table": 0.0}.get(ctx.interaction, 0.3))
    turn = ctx.randn(0.15) + ctx.coin(0.35).double() * (math.pi / 2)
    ctx.object_rotation = _yaw(turn)
    centre, normal, tangent, half = ctx.vertical_face((0.0, 0.0, -1.0), (1.0, 0.0, 0.0))
    top = ctx.geometry.high[1]
    locals_, palms = [], []
    for side in (LEFT, RIGHT):
        lateral = _SIGN[side] * (half * ctx.rand(0.2, 0.6)).clamp_max(0.3)
        face_point = centre + tangent * lateral[:, None]
        face_point[:, 1] = top - ctx.rand(0.03, 0.12) if name == "box" else top - 0.02
        top_point = centre + tangent * lateral[:, None] - normal * ctx.rand(0.05, 0.18)[:, None]
        top_point[:, 1] = top
        locals_.append(ctx.pick(on_top, top_point, face_point))
        down = _vec([0.0, -1.0, 0.0], ctx.n)
        palms.append(ctx.pick(on_top, down, -normal))
    contact_height = 0.5 * (locals_[0][:, 1] + locals_[1][:, 1]) - ctx.geometry.low[1]
    if name == "box":
        ctx.stoop(contact_height, crouch=(0.6, 0.95), reach=(0.55, 0.8), step=0.25)
    else:
        ctx.stoop(contact_height, crouch=(0.88, 0.985), reach=(0.6, 0.82), step=0.25)
    ctx.object_translation = torch.stack([ctx.randn(0.04), torch.zeros_like(turn), torch.zeros_like(turn)], 1)
    ctx.rest_on_floor()
    ctx.place_within_reach(locals_, (LEFT, RIGHT), (0.82, 0.95))
    ctx.push_out((0.0, 0.0, 1.0), ctx.rig.down_trunk, clearance=0.03)
    grips = []
    for side, local, palm in zip((LEFT, RIGHT), locals_, palms):
        palm = ctx.direction_to_body(palm)
        preferred = torch.stack([_SIGN[side] * ctx.rand(-0.1, 0.4), ctx.rand(0.5, 1.0), ctx.rand(0.3, 1.0)], 1)
        grips.append(ctx.palm_grip(side, ctx.to_body(local), palm, preferred))
    ctx.bring_within_reach(grips, vertical=False)
    ctx.hold(grips)
    ctx.look_at(ctx.object_translation)


def _push_chair(ctx: _SceneBatch) -> None:
    """Stand behind a chair with the hands on (or round) its back posts."""
    ctx.object_rotation = _yaw(ctx.randn(0.12))
    zero = torch.zeros(ctx.n, dtype=torch.float64)
    round_posts = ctx.coin(0.5)
    posts = ctx.geometry.post_tops
    locals_ = []
    for side in (LEFT, RIGHT):
        post = posts[side].expand(ctx.n, 3).clone()
        post[:, 1] -= torch.where(round_posts, ctx.rand(0.04, 0.2), zero)
        locals_.append(post)
    ctx.stoop(locals_[0][:, 1] - ctx.geometry.low[1], crouch=(0.9, 0.985), reach=(0.5, 0.8), step=0.2)
    ctx.object_translation = torch.stack([ctx.randn(0.03), zero, zero], 1)
    ctx.rest_on_floor()
    ctx.place_within_reach(locals_, (LEFT, RIGHT), (0.75, 0.9))
    ctx.push_out((0.0, 0.0, 1.0), ctx.rig.down_trunk, clearance=0.03)
    up = _vec([0.0, 1.0, 0.0], ctx.n)
    forward = torch.stack([ctx.randn(0.2), zero, torch.ones_like(zero)], 1)
    on_top = [ctx.palm_grip(side, ctx.to_body(local), -up, forward, gap=0.0, grasp="hold")
              for side, local in zip((LEFT, RIGHT), locals_)]
    around = [ctx.cylinder_grip(side, ctx.to_body(local), up, radius=0.02)
              for side, local in zip((LEFT, RIGHT), locals_)]
    ctx.branch(round_posts, lambda: ctx.hold(around), lambda: ctx.hold(on_top))
    ctx.look_at(ctx.object_translation)


def _sit(ctx: _SceneBatch) -> None:
    """Sit on a stool or chair: buttocks on the seat, feet flat on the floor, hands on the thighs or hanging."""
    name = ctx.template.name
    chair = name == "chair"
    lean_back = ctx.coin(0.5) if chair else torch.zeros(ctx.n, dtype=torch.bool)
    bend = torch.where(lean_back, ctx.rand(-0.35, -0.1), ctx.rand(-0.05, 0.3))
    ctx.posture(lean=(0.0, 0.0), bend=bend)
    for side in (LEFT, RIGHT):
        flex = ctx.rand(1.3, 1.65) + bend * 0.55
        spread = _SIGN[side] * ctx.rand(0.0, 0.3)
        ctx.set_local(HIP[side], _rot(torch.stack([-flex, torch.zeros_like(flex), spread], 1)))
        ctx.set_local(KNEE[side], _axis_rot((1.0, 0.0, 0.0), ctx.rand(1.3, 1.7)))
    turn = ctx.randn(0.12) if chair else ctx.rand(-math.pi, math.pi)
    ctx.object_rotation = _yaw(turn)
    seat_local = torch.tensor([0.0, ctx.geometry.seat_top, 0.0], dtype=torch.float64)
    offset_z = ctx.rand(-0.02, 0.08) if not chair else ctx.rand(-0.02, 0.1)
    offset_x = ctx.randn(0.02)
    gap = 0.004
    feet = [(ctx.rand(0.0, 0.12), ctx.rand(0.18, 0.45), ctx.rand(-0.05, 0.35)) for _ in (LEFT, RIGHT)]
    for _ in range(3):
        seat = ctx.skin("seat")
        contact_height = seat[..., 1].min(1).values
        world_pos = ctx.fk()[1]
        hips = 0.5 * (world_pos[:, HIP[LEFT]] + world_pos[:, HIP[RIGHT]])
        wanted = torch.stack([hips[:, 0] + offset_x, contact_height - gap, hips[:, 2] - offset_z], 1)
        ctx.object_translation = wanted - (ctx.object_rotation @ seat_local)
        ctx.floor = ctx.object_bottom()
        for side in (LEFT, RIGHT):
            out, forward, yaw = feet[side]
            hip = world_pos[:, HIP[side]]
            ankle = torch.stack(
                [hip[:, 0] + _SIGN[side] * out, ctx.floor + ctx.ankle_height(side), hip[:, 2] + forward], 1
            )
            pole = _vec([_SIGN[side] * 0.2, 0.6, 1.0], ctx.n)
            ctx.place_foot(side, ankle, _SIGN[side] * yaw, pole=pole)
    if chair:
        # Slide the chair until its backrest meets the back (leaning back) or just clears it.
        back = ctx.rig.down_back & ctx.rig.down_above_hips
        target_gap = torch.where(lean_back, ctx.rand(0.0, 0.01), ctx.rand(0.02, 0.12))
        ctx.slide_object((0.0, 0.0, 1.0), gap=target_gap, mask=back)
        ctx.push_out((0.0, 0.0, -1.0), ctx.rig.down_trunk, clearance=0.005)
    on_thighs = ctx.coin(0.75)

    def hands_on_thighs():
        world_rot = ctx.fk()[0]
        for side in (LEFT, RIGHT):
            thigh = ctx.skin(f"thigh_{SIDE_NAMES[side]}")[:, 0]
            front = world_rot[:, HIP[side]] @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
            along = world_rot[:, HIP[side]] @ torch.tensor([0.0, -1.0, 0.0], dtype=torch.float64)
            inward = torch.tensor([-_SIGN[side], 0.0, 0.0], dtype=torch.float64)
            fingers = along + ctx.rand(0.0, 0.6)[:, None] * inward
            # As far towards the knee as the arm reaches (short arms rest nearer the hip).
            steps = torch.linspace(-0.2, 0.12, 9, dtype=torch.float64)
            candidates = thigh[:, None] + along[:, None] * steps[None, :, None]
            distance = (candidates - ctx.shoulder(side)[:, None]).norm(dim=-1)
            fits = distance + 0.05 < 0.97 * ctx.arm_length(side)[:, None]
            best = torch.where(fits, steps, torch.full_like(steps, -0.2)).amax(1)
            contact = thigh + along * (best - ctx.rand(0.0, 0.06))[:, None]
            ctx.reach(side, contact, -front, fingers, gap=0.004)
            ctx.grasp(side, "hold", jitter=0.1)

    def hanging():
        for side in (LEFT, RIGHT):
            ctx.relax_arm(side, spread=(0.35, 0.7))

    ctx.branch(on_thighs, hands_on_thighs, hanging)
    # The hands touch the thighs, not the object: no hand contact is required.
    ctx.hand_contact[:] = False
    ctx.look_at(ctx.object_translation + torch.tensor([0.0, 0.2, 1.5], dtype=torch.float64), strength=0.4)


def _hold_ball(ctx: _SceneBatch) -> None:
    """Hold a ball with both hands, in front of the body or overhead."""
    overhead = ctx.coin(0.2)
    ctx.posture(lean=(-0.12, 0.2))
    ctx.stand(crouch=(0.94, 0.985))
    radius = ctx.geometry.radius
    height = torch.where(overhead, ctx.rand(0.75, 0.95), ctx.rand(0.05, 0.45))
    ctx.object_rotation = _rot(ctx.randn(1.5, size=3))
    ctx.object_translation = torch.stack([ctx.randn(0.03), height, torch.zeros_like(height)], 1)
    directions = []
    for side in (LEFT, RIGHT):
        d = torch.stack([_SIGN[side] * torch.ones_like(height), ctx.rand(-0.5, 0.3), ctx.rand(-0.5, 0.35)], 1)
        directions.append(_unit(d))
    ctx.place_within_reach([ctx.to_local(ctx.object_translation + radius * d) for d in directions], (LEFT, RIGHT),
                           (0.65, 0.9), raise_object=True)
    ctx.push_out((0.0, 0.0, 1.0), ctx.rig.down_trunk, clearance=0.01)
    grips = []
    for side, d in zip((LEFT, RIGHT), directions):
        preferred = torch.stack([ctx.randn(0.2), ctx.rand(0.3, 1.0), ctx.rand(0.2, 1.0)], 1)
        grips.append(ctx.palm_grip(side, ctx.object_translation + radius * d, -d, preferred, gap=0.003, grasp="ball"))
    ctx.bring_within_reach(grips)
    ctx.hold(grips)
    ctx.look_at(ctx.object_translation)


def _reach_with_ball(ctx: _SceneBatch) -> None:
    """One hand holds a ball out: palm under it (presenting, throwing) or over it (grabbing)."""
    ctx.posture(lean=(-0.1, 0.35))
    ctx.stand(crouch=(0.93, 0.985), step=0.2)
    radius = ctx.geometry.radius
    under = ctx.coin(0.6)
    shoulder = ctx.shoulder(LEFT)
    direction = _unit(torch.stack([ctx.rand(-0.1, 1.0), ctx.rand(-0.7, 1.3), ctx.rand(0.15, 1.0)], 1))
    contact = shoulder + direction * (ctx.rand(0.55, 0.9) * ctx.arm_length(LEFT))[:, None]
    up = _vec([0.0, 1.0, 0.0], ctx.n)
    grab = _unit(direction * 0.4 - up + ctx.randn(0.15, size=3))
    palm = ctx.pick(under, up, grab)
    ctx.object_rotation = _rot(ctx.randn(1.5, size=3))
    ctx.object_translation = contact + radius * palm
    horizontal = direction * torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64)
    grip = ctx.palm_grip(LEFT, contact, palm, horizontal + 0.3 * up, gap=0.003, grasp="ball")
    ctx.bring_within_reach([grip])
    ctx.hold([grip])
    ctx.relax_arm(RIGHT)
    ctx.look_at(ctx.object_translation)


def _step_on_ball(ctx: _SceneBatch) -> None:
    """Stand on one leg with the other foot resting on a ball on the floor."""
    ctx.posture(lean=(-0.05, 0.2))
    ctx.stand(crouch=(0.95, 0.985), width=(0.0, 0.06), step=0.05)
    radius = ctx.geometry.radius
    hip = ctx.fk()[1][:, HIP[LEFT]]
    centre = torch.stack([hip[:, 0] + ctx.rand(-0.04, 0.12), ctx.floor + radius, hip[:, 2] + ctx.rand(0.28, 0.5)], 1)
    ctx.object_rotation = _rot(ctx.randn(1.5, size=3))
    ctx.object_translation = centre
    yaw = ctx.rand(-0.1, 0.35)
    sole = ctx.rig.rest_vertices("sole_left", ctx.betas).mean(1)
    sole_to_ankle = ctx.rest[:, ANKLE[LEFT]] - sole
    sole_to_ankle[:, 1] = ctx.ankle_height(LEFT)
    top = centre + torch.tensor([0.0, radius - 0.004, 0.0], dtype=torch.float64)
    ankle = top + (_yaw(yaw) @ sole_to_ankle[..., None])[..., 0]
    ctx.place_foot(LEFT, ankle, yaw, pole=_vec([0.1, 0.4, 1.0], ctx.n))
    ctx.relax_arm(LEFT)
    ctx.relax_arm(RIGHT)
    ctx.look_at(ctx.object_translation, strength=0.5)


def _swing_bat(ctx: _SceneBatch) -> None:
    """Two-handed bat grip: ready over the right shoulder or swung out in front (left hand at the knob)."""
    ctx.posture(lean=(0.0, 0.35))
    ctx.stand(crouch=(0.86, 0.98), width=(0.06, 0.18), step=0.15)
    ready = ctx.coin(0.5)
    world_pos = ctx.fk()[1]
    chest = 0.5 * (world_pos[:, SHOULDER[LEFT]] + world_pos[:, SHOULDER[RIGHT]])
    one = torch.ones(ctx.n, dtype=torch.float64)
    ready_dir = torch.stack([-ctx.rand(0.0, 0.6), one, -ctx.rand(0.05, 0.7)], 1)
    ready_at = torch.stack([-ctx.rand(0.1, 0.25), -ctx.rand(0.12, 0.3), ctx.rand(0.15, 0.3)], 1)
    swing_dir = torch.stack([ctx.rand(-0.9, 0.5), ctx.rand(-0.4, 0.3), one], 1)
    swing_at = torch.stack([ctx.rand(-0.15, 0.1), -ctx.rand(0.25, 0.45), ctx.rand(0.2, 0.35)], 1)
    axis = _unit(ctx.pick(ready, ready_dir, swing_dir))
    grip = chest + ctx.pick(ready, ready_at, swing_at)
    knob = float(ctx.geometry.low[1])
    y = _vec([0.0, 1.0, 0.0], ctx.n)
    ctx.object_rotation = _rotation_between(y, axis) @ _yaw(ctx.rand(-math.pi, math.pi))
    ctx.object_translation = grip - ctx.direction_to_body(_vec([0.0, knob + 0.055, 0.0], ctx.n))
    radius = ctx.geometry.radius
    grips = [ctx.cylinder_grip(LEFT, grip, axis, radius), ctx.cylinder_grip(RIGHT, grip + 0.09 * axis, axis, radius)]
    ctx.bring_within_reach(grips)
    ctx.hold(grips)
    ctx.look_at(ctx.object_translation + axis * 0.3 + torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64), strength=0.5)


def _lean_on_stick(ctx: _SceneBatch) -> None:
    """Rest both hands on a stick standing on the floor in front of the body (a bat as a cane)."""
    knob, end = float(ctx.geometry.low[1]), float(ctx.geometry.high[1])
    top_y, low_y = knob + 0.05, knob + 0.14
    tilt = ctx.rand(0.02, 0.3)
    height = (end - top_y) * tilt.cos()  # of the upper hand above the floor
    # A bat is short for a cane: stoop until the arms reach its top.
    ctx.stoop(height, crouch=(0.9, 0.985), reach=(0.55, 0.7), extra=(0.0, 0.08))
    world_pos = ctx.fk()[1]
    chest = 0.5 * (world_pos[:, SHOULDER[LEFT]] + world_pos[:, SHOULDER[RIGHT]])
    half_width = 0.5 * (world_pos[:, SHOULDER[LEFT], 0] - world_pos[:, SHOULDER[RIGHT], 0])
    reach = ctx.rand(0.8, 0.9) * ctx.arm_length(LEFT)
    drop = chest[:, 1] - ctx.floor - height
    forward = (reach.square() - drop.square() - half_width.square()).clamp_min(0.01).sqrt()
    grip = torch.stack([ctx.randn(0.04), ctx.floor + height, chest[:, 2] + forward], 1)
    heading = ctx.randn(0.5) - math.pi / 2  # the stick's top leans back towards the body
    up = torch.stack([tilt.sin() * heading.cos(), tilt.cos(), tilt.sin() * heading.sin()], 1)
    y = _vec([0.0, 1.0, 0.0], ctx.n)
    # The knob end is up: the template's +y (knob -> barrel) points down the stick.
    ctx.object_rotation = _rotation_between(y, -up) @ _yaw(ctx.rand(-math.pi, math.pi))
    ctx.object_translation = grip - ctx.direction_to_body(_vec([0.0, top_y, 0.0], ctx.n))
    radius = ctx.geometry.radius
    grips = [
        ctx.cylinder_grip(LEFT, grip, up, radius),
        ctx.cylinder_grip(RIGHT, grip - (low_y - top_y) * up, up, radius),
    ]
    ctx.bring_within_reach(grips, vertical=False)
    ctx.hold(grips)
    ctx.look_at(grip + torch.tensor([0.0, 0.0, 2.0], dtype=torch.float64), strength=0.3)


def _hold_stick(ctx: _SceneBatch) -> None:
    """Carry a stick in one hand by the side, pointing forward."""
    ctx.posture(lean=(-0.05, 0.2))
    ctx.stand(crouch=(0.94, 0.985), step=0.2)
    ctx.lower_arm(LEFT, lowered=(1.0, 1.4), elbow=(0.2, 1.3))
    ctx.set_local(WRIST[LEFT], _rot(torch.stack([ctx.randn(0.25), ctx.randn(0.1), ctx.randn(0.25)], 1)))
    ctx.grasp(LEFT, "power")
    radius = ctx.geometry.radius
    centre, axis = _grip_hole(ctx, LEFT, radius)
    held_at = float(ctx.geometry.low[1]) + ctx.rand(0.05, 0.2)
    y = _vec([0.0, 1.0, 0.0], ctx.n)
    ctx.object_rotation = _rotation_between(y, axis) @ _yaw(ctx.rand(-math.pi, math.pi))
    local = torch.stack([torch.zeros_like(held_at), held_at, torch.zeros_like(held_at)], 1)
    ctx.object_translation = centre - ctx.direction_to_body(local)
    ctx.hand_contact[:, LEFT] = True
    ctx.relax_arm(RIGHT)
    ctx.look_at(ctx.object_translation, strength=0.4)


def _carry_by_handle(ctx: _SceneBatch) -> None:
    """Carry a bag hanging from one hand by its top handle."""
    ctx.posture(lean=(-0.05, 0.15), side_lean=0.08)
    ctx.stand(crouch=(0.95, 0.985))
    ctx.lower_arm(LEFT, lowered=(0.95, 1.2), elbow=(0.05, 0.4))
    ctx.set_local(WRIST[LEFT], _rot(ctx.randn(0.1, size=3)))
    ctx.grasp(LEFT, "power")
    handle = ctx.geometry.handle
    centre, axis = _grip_hole(ctx, LEFT, ctx.geometry.radius)
    x = _vec([1.0, 0.0, 0.0], ctx.n)
    up = _vec([0.0, 1.0, 0.0], ctx.n)
    ctx.object_rotation = _align(x, up, axis, up)
    ctx.object_translation = centre - ctx.direction_to_body(handle.expand_as(axis))
    ctx.hand_contact[:, LEFT] = True
    ctx.relax_arm(RIGHT)
    ctx.look_at(_vec([0.0, 0.3, 2.0], ctx.n), strength=0.3)


def _wear_backpack(ctx: _SceneBatch) -> None:
    """A backpack on the back (straps side against it), arms hanging."""
    ctx.posture(lean=(0.0, 0.3))
    ctx.stand(crouch=(0.95, 0.985), step=0.2)
    ctx.relax_arm(LEFT)
    ctx.relax_arm(RIGHT)
    tilt = _rot(torch.stack([ctx.randn(0.05), torch.zeros(ctx.n, dtype=torch.float64), ctx.randn(0.03)], 1))
    ctx.object_rotation = tilt @ _yaw(math.pi + ctx.randn(0.08))
    ctx.object_translation = _vec([0.0, 0.0, -0.9], ctx.n)  # behind the back, then slid onto it
    ctx.object_translation[:, 0] = ctx.randn(0.02)
    ctx.object_translation[:, 1] = ctx.rand(0.1, 0.3)
    ctx.slide_object((0.0, 0.0, 1.0), gap=ctx.rand(0.0, 0.01), mask=ctx.rig.down_trunk)
    ctx.look_at(_vec([0.0, 0.3, 2.0], ctx.n), strength=0.3)


def _pick_up_bag(ctx: _SceneBatch) -> None:
    """Bend down and take a bag on the floor by its top handle."""
    ctx.object_rotation = _yaw(ctx.rand(-math.pi, math.pi))
    zero = torch.zeros(ctx.n, dtype=torch.float64)
    handle_height = ctx.geometry.handle[1] - ctx.geometry.low[1] + zero
    ctx.stoop(handle_height, crouch=(0.6, 0.95), reach=(0.7, 0.85), width=(0.02, 0.14))
    ctx.object_translation = torch.stack([ctx.rand(0.0, 0.2), zero, zero], 1)
    ctx.rest_on_floor()
    handle = ctx.geometry.handle.expand(ctx.n, 3)
    ctx.place_within_reach([handle], (LEFT,), (0.8, 0.95))
    ctx.push_out((0.0, 0.0, 1.0), ctx.rig.down_trunk, clearance=0.03)
    axis = ctx.direction_to_body(_vec([1.0, 0.0, 0.0], ctx.n))
    # Palm down, thumb towards the body's midline, as a hand naturally comes down on a handle.
    sign = torch.where(axis[:, 0] > 0, -1.0, 1.0)
    up = _vec([0.0, 1.0, 0.0], ctx.n)
    grips = [ctx.cylinder_grip(LEFT, ctx.to_body(handle), axis, ctx.geometry.radius, thumb_sign=sign, approach=up)]
    ctx.bring_within_reach(grips, vertical=False)
    ctx.hold(grips)
    ctx.relax_arm(RIGHT)
    ctx.look_at(ctx.object_translation)


# name -> (object, recipe, relative frequency)
_RECIPES = {
    "sit_on_stool": ("stool", _sit, 1.0),
    "carry_stool": ("stool", _carry_front, 0.4),
    "sit_on_chair": ("chair", _sit, 1.0),
    "push_chair": ("chair", _push_chair, 0.6),
    "carry_box": ("box", _carry_front, 1.0),
    "lift_box": ("box", _lift_box, 0.8),
    "push_box": ("box", _push_front, 0.7),
    "carry_bag": ("bag", _carry_front, 0.5),
    "carry_bag_by_handle": ("bag", _carry_by_handle, 0.6),
    "wear_backpack": ("bag", _wear_backpack, 0.5),
    "pick_up_bag": ("bag", _pick_up_bag, 0.4),
    "hold_ball": ("ball", _hold_ball, 0.8),
    "reach_with_ball": ("ball", _reach_with_ball, 0.6),
    "step_on_ball": ("ball", _step_on_ball, 0.4),
    "swing_bat": ("stick", _swing_bat, 0.8),
    "lean_on_stick": ("stick", _lean_on_stick, 0.5),
    "hold_stick": ("stick", _hold_stick, 0.4),
    "lean_on_table": ("table", _push_front, 0.7),
    "push_table": ("table", _push_front, 0.6),
}
INTERACTIONS = tuple(_RECIPES)
# Interactions whose object would hide behind the body in a frontal view.
_SEEN_FROM_BEHIND = ("wear_backpack",)


# ---------------------------------------------------------------------------------------------------------
# Finishing a batch: mirror, checks, yaw, camera
# ---------------------------------------------------------------------------------------------------------

_MIRROR = torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=torch.float64))


def _mirror(ctx: _SceneBatch, mask: torch.Tensor) -> None:
    """Reflect the scenes ``mask`` through the body's sagittal plane (x -> -x): left-handed recipes become
    right-handed.

    Valid because the body's rest shape and every shipped primitive are symmetric in x.
    """
    mirrored = _MIRROR @ ctx.local[:, list(MIRRORED_JOINTS)] @ _MIRROR
    ctx.local = ctx.pick(mask, mirrored, ctx.local)
    ctx.object_rotation = ctx.pick(mask, _MIRROR @ ctx.object_rotation @ _MIRROR, ctx.object_rotation)
    ctx.object_translation = ctx.pick(mask, ctx.object_translation @ _MIRROR, ctx.object_translation)
    ctx.hand_contact = ctx.pick(mask, ctx.hand_contact.flip(1), ctx.hand_contact)
    ctx._fk = None


def _finish(ctx: _SceneBatch) -> dict[str, torch.Tensor]:
    """Mirror half of the batch, check the scenes, spin them by their yaw and put a camera on them."""
    _mirror(ctx, ctx.coin(0.5))
    down = ctx.down_vertices()
    sdf = ctx.object_sdf(down)
    failed = ctx.failed | ((-sdf).amax(1) > MAX_PENETRATION) | (sdf.amin(1) > 0.03)
    for side in (LEFT, RIGHT):
        palm = ctx.skin(f"palm_{SIDE_NAMES[side]}").mean(1, keepdim=True)
        failed |= ctx.hand_contact[:, side] & (ctx.object_sdf(palm)[:, 0].abs() > 0.03)
    failed |= down[..., 1].amin(1) < ctx.floor - 0.03
    failed |= ctx.object_bottom() < ctx.floor - 0.01
    failed |= ~torch.isfinite(ctx.local).all(dim=(1, 2, 3)) | ~torch.isfinite(ctx.object_translation).all(1)

    yaw = _yaw(ctx.yaw)
    local = ctx.local.clone()
    local[:, 0] = yaw @ local[:, 0]
    object_rotation = yaw @ ctx.object_rotation
    object_translation = (yaw @ ctx.object_translation[..., None])[..., 0]
    object_vertices = ctx.template.vertices.double() @ object_rotation.transpose(1, 2) + object_translation[:, None]
    body_points = down @ yaw.transpose(1, 2)
    points = torch.cat([body_points, object_vertices], dim=1)
    surface = ctx.template.surface_points[::8].double() @ object_rotation.transpose(1, 2) + object_translation[:, None]
    normals = ctx.template.surface_normals[::8].double() @ object_rotation.transpose(1, 2)
    # A camera that sees too little of the object (hidden behind the body) turns a quarter round the scene.
    behind = ctx.interaction in _SEEN_FROM_BEHIND
    camera, best = None, None
    for turn in (0.0, 0.25, 0.5, 0.75):
        draws = ctx.camera_draws.clone()
        draws[:, 0] = torch.remainder(draws[:, 0] + turn, 1.0)
        candidate = _camera(points, draws, ctx.yaw, behind)
        visible = _visible_fraction(body_points, surface, normals, *candidate)
        if camera is None:
            camera, best = candidate, visible
            continue
        better = (best < MIN_OBJECT_VISIBILITY) & (visible > best)
        camera = tuple(ctx.pick(better, new, old) for new, old in zip(candidate, camera))
        best = torch.where(better, visible, best)
    rotation, centre, intrinsics = camera
    return {
        "local": local,
        "betas": ctx.betas,
        "object_rotation": object_rotation,
        "object_translation": object_translation,
        "floor": ctx.floor,
        "camera_rotation": rotation,
        "camera_centre": centre,
        "intrinsics": intrinsics,
        "failed": failed,
    }
