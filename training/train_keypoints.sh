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

# 3000 randomised renders of the train stream's first scenes (8 min with two workers).
.venv/bin/python -c "
from scorehoi_diffusers.data.synthetic import generate_dataset
generate_dataset(3000, seed=0, image_size=192, num_proc=2, randomized=True, progress=False,
                 cache_dir='runs/cache').save_to_disk('$DATA')"

# The regressor: 900 steps of 2 x 16 (28 min, 1.1-2.9 s/step on the shared CPU).
$LAUNCH training/train_regressor.py --output_dir runs/regressor_kp --init_from $SHIPPED --train_data_dir $DATA \
  --body_keypoints --synthetic_image_size 192 --resolution 128 --train_batch_size 16 --learning_rate 3e-4 \
  --lr_warmup_steps 50 --lr_scheduler cosine --use_ema --checkpointing_steps 300 --checkpoints_total_limit 2 \
  --resume_from_checkpoint latest --max_train_steps 900 --seed 0

# The prior on that regressor's tokens and keypoints: 1000 steps of 2 x (16 rendered + 16 parameter-only)
# (about 9 min).
$LAUNCH training/train_denoiser.py --output_dir runs/pipeline_kp --init_from $SHIPPED --regressor_path runs/regressor_kp \
  --train_data_dir $DATA --body_keypoints --num_param_samples 4000 --train_batch_size 32 --param_only_fraction 0.5 \
  --max_train_steps 1000 --learning_rate 5e-4 --lr_warmup_steps 50 --checkpointing_steps 250 \
  --synthetic_image_size 192 --resolution 128 --lr_scheduler cosine --use_ema --checkpoints_total_limit 2 \
  --resume_from_checkpoint latest --seed 0

# That regressor was worse than the shipped one on the validation slice (MPJPE +0.45 +- 0.12 cm) and barely used the
# keypoints, so a second regressor stage: the keypoint layers at 10x the learning rate, on the randomised renders
# plus 2000 default-style renders (the style the shipped weights were trained on), so the old style is not forgotten.
.venv/bin/python -c "
from scorehoi_diffusers.data.synthetic import generate_dataset
generate_dataset(2000, seed=0, image_size=192, num_proc=2, progress=False,
                 cache_dir='runs/cache2').save_to_disk('runs/data/synthetic-train-n2000-seed0-192px')"
.venv/bin/python -c "
import datasets
parts = [datasets.load_from_disk(p) for p in ('$DATA', 'runs/data/synthetic-train-n2000-seed0-192px')]
datasets.concatenate_datasets(parts).save_to_disk('runs/data/mixed-n5000-seed0-192px')"
$LAUNCH training/train_regressor.py --output_dir runs/regressor_kp2 --init_from runs/regressor_kp \
  --train_data_dir runs/data/mixed-n5000-seed0-192px --body_keypoints --keypoint_lr_multiplier 10 \
  --synthetic_image_size 192 --resolution 128 --train_batch_size 16 --learning_rate 2e-4 --lr_warmup_steps 30 \
  --lr_scheduler cosine --use_ema --checkpointing_steps 350 --checkpoints_total_limit 2 \
  --resume_from_checkpoint latest --max_train_steps 700 --seed 1

# The prior again, on the second regressor's tokens and keypoints, from the first prior: 600 steps (about 3 min).
$LAUNCH training/train_denoiser.py --output_dir runs/pipeline_kp2 --init_from runs/pipeline_kp --regressor_path runs/regressor_kp2 \
  --train_data_dir runs/data/mixed-n5000-seed0-192px --body_keypoints --num_param_samples 4000 --train_batch_size 32 \
  --param_only_fraction 0.5 --max_train_steps 600 --learning_rate 3e-4 --lr_warmup_steps 30 --checkpointing_steps 300 \
  --synthetic_image_size 192 --resolution 128 --lr_scheduler cosine --use_ema --checkpoints_total_limit 2 \
  --resume_from_checkpoint latest --seed 1

# Validation slice (indices 20000-20095 of the train stream, never the test split), simulated detections, pictures in:
# the shipped pipeline against the new one, regressor alone, full method at N = 2, and the prior's round trip from the
# truth with guidance off. The new folder first gets the shipped guidance weights (train_denoiser.py writes none, and
# the defaults differ), so that only the models differ.
.venv/bin/python training/copy_guidance.py --target runs/pipeline_kp2
.venv/bin/python training/validate_keypoints.py --pipeline $SHIPPED --num-samples 96 --cycles 2 --round-trip \
  --out runs/validation_shipped_rt.json
.venv/bin/python training/validate_keypoints.py --pipeline $SHIPPED runs/pipeline_kp2 --num-samples 96 --cycles 2 \
  --round-trip --reuse runs/validation_shipped_rt.json --out runs/validation_kp2.json
