#!/bin/sh
# The shipped LSTM predictor: trained on k2/ (two distractor sentences) with a fixed seed, and the checkpoint
# one epoch before the end, from which tests/test_long_range.py reproduces the final weights. Run from the
# repository root after make_data.sh.
set -e
nice -n 10 rnncompile train specs/long_range_lstm.yaml --input examples/long_range/k2/train.npz --epochs 30 \
  --batch 16 --lr 0.02 --seed 0 --checkpoint scratch/long_range_lstm --save-weights examples/long_range/lstm.npz \
  --no-progress
cp scratch/long_range_lstm/epoch-0029.npz examples/long_range/lstm_epoch29.npz
