#!/usr/bin/env bash
# A prior trained to need the keypoints (docs/results.md, "A prior trained on simulated keypoints from parameters
# alone"): stage 8's prior, warm-started, trained further on its frozen regressor's tokens with three quarters of
# every batch parameter-only samples that carry simulated 2D body detections (`--param_only_keypoints`: made in a
# crop of each scene's own camera around its projected body and object, at the measured detector rates). Posing a
# scene costs a fraction of rendering one, so the prior sees several times more keypoint-conditioned samples than
# stage 8 gave it. About 30 minutes on this 2-core CPU (8 of rendering and detection, 16-21 of training).
#
# The first argument is the stage-8 pipeline folder (the shipped one: scorehoi_diffusers/assets/scorehoi-synthetic).
# Data: train-stream scenes 0-3999 in the default style with the detector's person masks (half the samples see
# them) and 4000-5999 in the randomised style, rendered here if missing; parameter-only scenes 0-19999 of the
# train stream (the validation slice starts at 20000).
#
# The control: `NO_PARAM_KEYPOINTS=1` runs the same recipe with the parameter-only samples left without keypoints (as
# stage 8 trained them), into runs/pipelinePC, so that what their keypoints do can be told from what 2000 more steps
# do. `LR=5e-5` (a diagnosis) lowers the peak learning rate and writes runs/pipelineP-lr5e-5 (or
# runs/pipelinePC-lr5e-5).
set -euo pipefail
STAGE8=${1:?usage: [NO_PARAM_KEYPOINTS=1] train_keypoint_prior.sh STAGE8_PIPELINE_FOLDER}
if [ "${NO_PARAM_KEYPOINTS:-0}" = 1 ]; then PARAM_KEYPOINTS="" OUT=runs/pipelinePC; else
  PARAM_KEYPOINTS="--param_only_keypoints" OUT=runs/pipelineP; fi
LR=${LR:-5e-4}
[ "$LR" = 5e-4 ] || OUT=$OUT-lr$LR
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE HF_HUB_OFFLINE=1 PYTHONPATH=training
D=runs/data
LAUNCH=".venv/bin/accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no"

# render NAME START RANDOMIZED COUNT: COUNT train-stream scenes from START at 192 px, unless already there.
render() {
  [ -d "$D/$1" ] || .venv/bin/python -c "
from scorehoi_diffusers.data.synthetic import generate_dataset
generate_dataset($4, seed=0, image_size=192, start=$2, num_proc=2, randomized=$3, progress=False,
                 cache_dir='runs/cache-$1').save_to_disk('$D/$1')"
}
render synthetic-train-n4000-seed0-192px 0 False 4000
render synthetic-train-n2000-start4000-192px-randomized 4000 True 2000
[ -d "$D/synthetic-train-n4000-seed0-192px-detector-masks" ] || .venv/bin/python training/detector_masks.py \
  --input $D/synthetic-train-n4000-seed0-192px --output $D/synthetic-train-n4000-seed0-192px-detector-masks --num-proc 2
[ -d "$D/synthetic-train-n2000-start4000-192px-randomized-masks" ] || .venv/bin/python \
  training/detector_mask_archive.py attach --input $D/synthetic-train-n2000-start4000-192px-randomized --own \
  --output $D/synthetic-train-n2000-start4000-192px-randomized-masks
[ -d "$D/mixed-kp-n6000" ] || .venv/bin/python -c "
import datasets
parts = [datasets.load_from_disk('$D/' + n) for n in ('synthetic-train-n4000-seed0-192px-detector-masks',
         'synthetic-train-n2000-start4000-192px-randomized-masks')]
datasets.concatenate_datasets(parts).save_to_disk('$D/mixed-kp-n6000')"

# train_denoiser.py reads the frozen regressor from a train_regressor.py folder: stage 8's models and its betas range.
R=runs/regressor8
mkdir -p $R
for part in regressor contact_estimator; do [ -e $R/$part ] || ln -s "$(realpath "$STAGE8/$part")" $R/$part; done
.venv/bin/python -c "
import json; index = json.load(open('$STAGE8/model_index.json'))
json.dump({k: index[k] for k in ('betas_min', 'betas_max')}, open('$R/betas_statistics.json', 'w'))"

# 2000 steps of 2 x (16 rendered + 48 parameter-only).
ACCELERATE_USE_CPU=true $LAUNCH training/train_denoiser.py --output_dir $OUT --init_from "$STAGE8" \
  --regressor_path $R --train_data_dir $D/mixed-kp-n6000 --body_keypoints $PARAM_KEYPOINTS \
  --detector_mask_prob 0.5 --num_param_samples 20000 --train_batch_size 64 --param_only_fraction 0.75 \
  --max_train_steps 2000 --learning_rate $LR --lr_warmup_steps 50 --checkpointing_steps 500 \
  --synthetic_image_size 192 --resolution 128 --lr_scheduler cosine --use_ema --checkpoints_total_limit 2 \
  --resume_from_checkpoint latest --seed 9

# train_denoiser.py writes no guidance weights: give the new folder stage 8's, so that only the prior differs.
.venv/bin/python training/copy_guidance.py --target $OUT --source "$STAGE8"
