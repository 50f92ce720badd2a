"""Compare the two contact refreshes of the refinement cycles on the validation slice, paired.

After every cycle the contact estimator re-reads the reconstruction. ``add_contacts=True`` takes its new labels as
they are; ``add_contacts=False`` lets a label fall but not rise (``Contacts.released_by``), so a refresh can release
a contact but not add one. The full method runs with each at every ``--cycles``, on the same validation scenes
(``validation_slice``, never the test split); the script prints each run's row, release-only minus add at each N,
and each refresh's last ``--cycles`` minus its first (issue 17's "N = 10 is not worse than N = 2").

Run: PYTHONPATH=training python training/contact_refresh.py --first-index 21500 --num-samples 200 \
         --keypoints simulated --cycles 2 10 [--out FILE]
"""
import argparse

import torch
import validation_slice
from exact_inversion import WithCallArguments

from scorehoi_diffusers.evaluation import evaluate, format_table
from scorehoi_diffusers.export import write_json

METRICS = validation_slice.RULE_METRICS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    validation_slice.add_arguments(parser, num_samples=200)
    parser.add_argument("--keypoints", choices=("none", "simulated"), default="none")
    parser.add_argument("--cycles", type=int, nargs="+", default=[2, 10])
    parser.add_argument("--out", help="write every run (with per-sample values) to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(1)
    keypoints = None if args.keypoints == "none" else args.keypoints
    pipeline, data, estimate, _ = validation_slice.load(args, keypoints)
    runs = {}
    for cycles in args.cycles:
        for add_contacts in (True, False):
            result = evaluate(pipeline, data, split=None, mode="full", num_cycles=cycles,
                              initial_estimate_fn=WithCallArguments(estimate, add_contacts=add_contacts))
            result.update(add_contacts=add_contacts, keypoints=args.keypoints, first_index=args.first_index)
            runs[cycles, add_contacts] = result
            print(f"add_contacts={add_contacts}", format_table([result]), sep="\n", flush=True)
    for cycles in args.cycles:
        validation_slice.print_paired(f"N = {cycles}: release-only minus add", runs[cycles, False],
                                      runs[cycles, True], METRICS)
    first, last = args.cycles[0], args.cycles[-1]
    for add_contacts in (True, False):
        validation_slice.print_paired(f"add_contacts={add_contacts}: N = {last} minus N = {first}",
                                      runs[last, add_contacts], runs[first, add_contacts], METRICS)
    if args.out:
        write_json(args.out, list(runs.values()), indent=2)


if __name__ == "__main__":
    main()
