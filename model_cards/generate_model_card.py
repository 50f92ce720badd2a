"""Write the README.md model card of a saved ScoreHOI pipeline folder (with evaluation metrics, if given).

    python model_cards/generate_model_card.py PIPELINE_DIR --metrics metrics.json [--model_id OWNER/NAME]

The card itself is made by :mod:`scorehoi_diffusers.pipelines.model_card` (its docstring describes `metrics.json`),
so that `ScoreHOIPipeline.save_pretrained` and `push_to_hub` write the same card.
"""
from __future__ import annotations

import argparse

from scorehoi_diffusers.pipelines.model_card import NOT_EVALUATED, render_model_card, write_model_card

__all__ = ["NOT_EVALUATED", "main", "render_model_card", "write_model_card"]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description="Write the README.md model card of a saved ScoreHOI pipeline.")
    parser.add_argument("pipeline_dir")
    parser.add_argument("--metrics", default=None, help="JSON file of evaluation results; omit if not evaluated.")
    parser.add_argument("--model_id", default=None, help="Hub id shown in the usage example.")
    args = parser.parse_args(argv)
    print(write_model_card(args.pipeline_dir, metrics=args.metrics, model_id=args.model_id))


if __name__ == "__main__":
    main()
