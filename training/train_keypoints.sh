#!/usr/bin/env bash
# Stage 6 (an experiment on this 2-core CPU, shared with other jobs): keypoint input for both models, warm-started
# from the shipped pipeline (stage 5), on randomised renders with simulated detections at the measured rates.
# The keypoint layers start at zero, so each run starts exactly as the shipped model. Every random choice depends
# only on (seed, step, rank), as in train_shipped.sh.
set -euo pipefail
export ACCELERATE_USE_CPU=true OMP_NUM_THREADS=1 OMP_WAIT_POLICY=PASSIVE
LAUNCH=".venv/bin/accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision no --dynamo_backend no"
SHIPPED=scorehoi_diffusers/assets/scorehoi-synthetic
DATA=runs/data/synthetic-train-n3000-seed0-192px-randomized

# Detector rates: mediapipe pose on 512 validation-slice renders, default and randomised style (about 1 min each).
.venv/bin/python training/measure_detection_noise.py --num-samples 512 --out training/detection_noise.json
.venv/bin/python training/measure_detection_noise.py --num-samples 512 --randomized \
  --out training/detection_noise_randomized.json

# 3000 randomised renders of the train stream's first scenes (about 8 min with two workers).
.venv/bin/python -c "
from scorehoi_diffusers.data.synthetic import generate_dataset
generate_dataset(3000, seed=0, image_size=192, num_proc=2, randomized=True, progress=False,
                 cache_dir='runs/cache').save_to_disk('$DATA')"

# The regressor: 900 steps of 2 x 16 (about 45 min at 3 s/step on the shared CPU).
$LAUNCH training/train_regressor.py --output_dir runs/regressor_kp --init_from $SHIPPED --train_data_dir $DATA \
  --body_keypoints --synthetic_image_size 192 --resolution 128 --train_batch_size 16 --learning_rate 3e-4 \
  --lr_warmup_steps 50 --lr_scheduler cosine --use_ema --checkpointing_steps 300 --checkpoints_total_limit 2 \
  --resume_from_checkpoint latest --max_train_steps 900 --seed 0
