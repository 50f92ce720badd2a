"""How precise are the contact labels each cycle pulls on, against the precision of the geometry that comes out?

Diagnosis for issue 17's third target (contact precision falls from N = 2 to N = 10). The contact term pulls the body
points the estimator labels "in contact" (probability above the guidance's ``contact_decision``) towards the object,
so over many cycles the output's contacts should approach the labels. This runs the full method for ``--cycles`` on
validation scenes (``validation_slice``, never the test split) and prints, for the labels every cycle used
(``contact_history``; cycle 1's come from the initial estimate), their precision and recall against the scenes' true
contacts at each ``--decisions`` threshold, mean ± standard error over scenes, beside the output geometry's.

Run: PYTHONPATH=training python training/contact_label_precision.py --first-index 22700 --num-samples 100 \
         --keypoints simulated --cycles 10
"""
import argparse

import numpy as np
import torch
import validation_slice

from scorehoi_diffusers.evaluation import evaluate
from scorehoi_diffusers.metrics import contact_precision_recall


class RecordingPipeline:
    """The pipeline, with every call's ``contact_history`` kept (``evaluate`` calls it once per batch)."""

    def __init__(self, pipeline):
        self.pipeline, self.histories = pipeline, []

    def __getattr__(self, name):
        return getattr(self.pipeline, name)

    def __call__(self, **kwargs):
        output = self.pipeline(**kwargs)
        self.histories.append([contacts.human.detach().cpu().numpy() for contacts in output.contact_history])
        return output


class RecordingEstimate:
    """The slice's initial estimate, with every batch's true body contacts kept, in call order."""

    def __init__(self, estimate):
        self.estimate, self.truths = estimate, []

    def __call__(self, batch):
        self.truths.append(np.asarray(batch["human_contact"], dtype=np.float64))
        return self.estimate(batch)


def mean_and_error(values: np.ndarray) -> str:
    values = values[np.isfinite(values)]
    return f"{values.mean():.3f} ± {values.std(ddof=1) / np.sqrt(len(values)):.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    validation_slice.add_arguments(parser, num_samples=100)
    parser.add_argument("--keypoints", choices=("none", "simulated"), default="none")
    parser.add_argument("--cycles", type=int, default=10)
    parser.add_argument("--decisions", type=float, nargs="+", default=[0.3, 0.5])
    args = parser.parse_args()
    torch.set_num_threads(1)
    pipeline, data, estimate, _ = validation_slice.load(args, None if args.keypoints == "none" else args.keypoints)
    recording, truths = RecordingPipeline(pipeline), RecordingEstimate(estimate)
    row = evaluate(recording, data, split=None, mode="full", num_cycles=args.cycles, initial_estimate_fn=truths)
    truth = np.concatenate(truths.truths)
    print(f"{args.num_samples} scenes from index {args.first_index}, keypoints {args.keypoints}, N = {args.cycles}; "
          f"output geometry: precision {row['contact_precision']:.3f}, recall {row['contact_recall']:.3f}")
    for decision in args.decisions:
        for cycle in range(args.cycles):
            labels = np.concatenate([history[cycle] for history in recording.histories]) > decision
            precision, recall = contact_precision_recall(labels, truth)
            print(f"labels > {decision:g} of cycle {cycle + 1}: precision {mean_and_error(precision)}, "
                  f"recall {mean_and_error(recall)}, {labels.sum(-1).mean():.1f} points per scene")


if __name__ == "__main__":
    main()
