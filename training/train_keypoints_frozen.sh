#!/usr/bin/env bash
# Stage 8 of the shipped pipeline, on this 2-core CPU (about 15 min of rendering and detection, 38 min of regressor and
# 9 min of prior training; docs/results.md, "Keypoint input on a frozen backbone: stage 8"): the stage-7 regressor (its
# folder, with the guidance weights in its model_index.json, is the first argument; train_shipped.sh passes
# runs/pipeline7) taught the detected 2D body keypoints with its image backbone frozen (`--freeze_backbone`: weights
# and BatchNorm statistics kept, no backward pass through it), then the prior on the new regressor's tokens and
# keypoints. Every random choice depends only on (seed, step, rank), as in train_shipped.sh, yet two runs of this
# recipe on two machines gave different weights (docs/results.md, "Two runs of the same recipe"); the shipped ones are the
# second run's, whose training_args.json names scorehoi_diffusers/assets/scorehoi-synthetic as --init_from: stage 7
# was the shipped folder then.
#
# Data: train-stream scenes 0-3999 (train_detector_masks.sh makes them; made here if missing) and 12000-15999 in the
# default style with the detector's person masks, plus 4000-7999 rendered in the randomised style (any colours,
# textures, clutter, light), which keep their own masks. Every sample gets simulated detections at the measured
# rates; the keypoint layers start at zero and learn at 10x the rate.
#
# Judged on 200 validation scenes never used before (train stream 21000-21199) by a rule fixed before the run
# (README): with and without simulated keypoints, regressor alone and full method at N = 2, against stage 7, via
#   PYTHONPATH=training python training/validate_change.py --num-samples 200 --first-index 21000 --cycles 2 \
#       --modes regressor full --keypoints simulated --pipeline FOLDER      # and --keypoints none; stage 8, stage 7
#
# The control (docs/results.md, "Keypoint input on a frozen backbone: stage 8"): `NO_KEYPOINTS=1` runs the same recipe on the
# same data with the keypoint input left out of both learned parts, into runs/regressorC and runs/pipelineC, so that
# what the keypoints add can be told from what the extra fine-tuning and the randomised renders add.
set -euo pipefail
STAGE7=${1:?usage: [NO_KEYPOINTS=1] train_keypoints_frozen.sh STAGE7_PIPELINE_FOLDER}
if [ "${NO_KEYPOINTS:-0}" = 1 ]; then KEYPOINTS="" RUN=C; else KEYPOINTS="--body_keypoints" RUN=K; fi
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 PYTHONPATH=training
D=runs/data
LAUNCH=".venv/bin/accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no"

# render NAME START RANDOMIZED: 4000 train-stream scenes from START at 192 px, unless already there.
render() {
  [ -d "$D/$1" ] || .venv/bin/python -c "
from scorehoi_diffusers.data.synthetic import generate_dataset
generate_dataset(4000, seed=0, image_size=192, start=$2, num_proc=2, randomized=$3, progress=False,
                 cache_dir='runs/cache-$1').save_to_disk('$D/$1')"
}
render synthetic-train-n4000-seed0-192px 0 False
render synthetic-train-n4000-start12000-192px 12000 False
render synthetic-train-n4000-start4000-192px-randomized 4000 True
# The detector's person mask of each default-style row (about 2 min per 4000; where it finds nobody, the row keeps its
# own mask); the randomised rows keep their own masks.
for part in synthetic-train-n4000-seed0-192px synthetic-train-n4000-start12000-192px; do
  [ -d "$D/$part-detector-masks" ] || .venv/bin/python training/detector_masks.py --input "$D/$part" \
    --output "$D/$part-detector-masks" --num-proc 2
done
[ -d "$D/synthetic-train-n4000-start4000-192px-randomized-masks" ] || .venv/bin/python \
  training/detector_mask_archive.py attach --input $D/synthetic-train-n4000-start4000-192px-randomized --own \
  --output $D/synthetic-train-n4000-start4000-192px-randomized-masks
.venv/bin/python -c "
import datasets
parts = [datasets.load_from_disk('$D/' + n) for n in ('synthetic-train-n4000-seed0-192px-detector-masks',
         'synthetic-train-n4000-start12000-192px-detector-masks', 'synthetic-train-n4000-start4000-192px-randomized-masks')]
datasets.concatenate_datasets(parts).save_to_disk('$D/mixed-kp-n12000')"

# The regressor: 3000 steps of 2 x 16 (about 0.75 s a step).
ACCELERATE_USE_CPU=true $LAUNCH training/train_regressor.py --output_dir runs/regressor$RUN --init_from "$STAGE7" \
  --train_data_dir $D/mixed-kp-n12000 $KEYPOINTS --freeze_backbone --keypoint_lr_multiplier 10 \
  --detector_mask_prob 0.5 --synthetic_image_size 192 --resolution 128 --train_batch_size 16 --learning_rate 2e-4 \
  --lr_warmup_steps 50 --lr_scheduler cosine --use_ema --checkpointing_steps 500 --checkpoints_total_limit 2 \
  --resume_from_checkpoint latest --max_train_steps 3000 --seed 8

# The prior on its tokens and keypoints, stage 7's recipe.
ACCELERATE_USE_CPU=true $LAUNCH training/train_denoiser.py --output_dir runs/pipeline$RUN --init_from "$STAGE7" \
  --regressor_path runs/regressor$RUN --train_data_dir $D/mixed-kp-n12000 $KEYPOINTS --detector_mask_prob 0.5 \
  --num_param_samples 12000 --train_batch_size 32 --param_only_fraction 0.5 --max_train_steps 2000 \
  --learning_rate 5e-4 --lr_warmup_steps 50 --checkpointing_steps 1000 --synthetic_image_size 192 --resolution 128 \
  --lr_scheduler cosine --use_ema --checkpoints_total_limit 2 --resume_from_checkpoint latest --seed 8

# train_denoiser.py writes no guidance weights: give the new folder stage 7's, so that only the models differ.
.venv/bin/python training/copy_guidance.py --target runs/pipeline$RUN --source "$STAGE7"
