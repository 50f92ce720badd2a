"""Does the prior use its condition more when the cycles invert deeper? A diagnosis on the validation slice.

At the shipped inversion depth (t_start 50 of 1000) the noisy x_t still holds nearly all of x0, so a denoiser can
predict its noise well without the condition, and dropping the condition changes the full method by nothing beyond
two standard errors (README, "The prior reads its condition, barely"). Deeper, x_t holds less and the
condition should matter more. For each ``--depths`` entry ``T:S`` (t_start ``T``, stride ``S``), this runs the full
method on the validation slice (``validation_slice``: indices 20000.. of the seed-0 train stream, never the test
split; seeded simulated detections with ``--keypoints simulated``) twice, with the denoiser's condition kept and
dropped (every sample on the learned null tokens, as ``training/condition_ablation.py`` does), and prints, paired
over the same scenes: dropped minus kept at each depth, and each depth (kept) minus the first one.

Run: PYTHONPATH=training python training/condition_depth.py [--num-samples 96] [--keypoints simulated]
     [--cycles 2] [--depths 50:5 100:10 200:10]
"""
import argparse

import torch
import validation_slice

from scorehoi_diffusers.evaluation import evaluate, format_table

METRICS = ("cd_human", "cd_object", "contact_precision", "contact_recall", "contact_f", "penetration_depth", "mpjpe",
           "pa_mpjpe")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    validation_slice.add_arguments(parser, num_samples=96)
    parser.add_argument("--keypoints", choices=("none", "simulated"), default="simulated")
    parser.add_argument("--cycles", type=int, default=2)
    parser.add_argument("--depths", nargs="+", default=["50:5", "100:10", "200:10"], help="t_start:stride pairs")
    args = parser.parse_args()
    torch.set_num_threads(1)
    keypoints = None if args.keypoints == "none" else args.keypoints
    pipeline, data, estimate, _ = validation_slice.load(args, keypoints)
    encode = pipeline.denoiser.encode_condition

    def dropped_condition(image_tokens, object_keypoints, **kwargs):
        drop = torch.ones(image_tokens.shape[0], dtype=torch.bool, device=image_tokens.device)
        return encode(image_tokens, object_keypoints, drop_mask=drop, **kwargs)

    rows = {}
    for depth in args.depths:
        t_start, stride = (int(value) for value in depth.split(":"))

        def at_depth(batch, t_start=t_start, stride=stride):
            *start, pictures = estimate(batch)
            return (*start, {**pictures, "t_start": t_start, "stride": stride})

        for condition in ("kept", "dropped"):
            # This instance only, for this diagnosis.
            pipeline.denoiser.encode_condition = encode if condition == "kept" else dropped_condition
            row = evaluate(pipeline, data, split=None, mode="full", num_cycles=args.cycles,
                           initial_estimate_fn=at_depth)
            row["mode"] = f"full, t_start {t_start} stride {stride}, condition {condition}"
            rows[depth, condition] = row
            print(format_table([row]), flush=True)
    print(format_table(list(rows.values())))
    first = args.depths[0]
    pairs = [((depth, "dropped"), (depth, "kept")) for depth in args.depths]
    pairs += [((depth, "kept"), (first, "kept")) for depth in args.depths[1:]]
    for (depth, condition), (reference, reference_condition) in pairs:
        title = f"{depth} condition {condition} minus {reference} condition {reference_condition}"
        validation_slice.print_paired(title, rows[depth, condition], rows[reference, reference_condition], METRICS)


if __name__ == "__main__":
    main()
