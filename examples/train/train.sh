#!/bin/sh
# The character predictor (specs/char_predictor.yaml) trained on corpus.txt: examples/train/char_predictor.npz,
# and its log, examples/train/char_predictor.log. Seeded: the same command gives the same weights.
#   sh examples/train/train.sh            # 100 epochs, about 10 s
#   sh examples/train/train.sh 2 DIR      # the first 2 epochs into DIR (tests/test_trained_examples.py)
set -e
EPOCHS=${1:-100}
OUT=${2:-examples/train}
rnncompile train specs/char_predictor.yaml --text examples/train/corpus.txt --epochs "$EPOCHS" --bptt 25 \
    --batch 16 --lr 0.01 --seed 0 --no-progress --save-weights "$OUT/char_predictor.npz" > "$OUT/char_predictor.log"
cat "$OUT/char_predictor.log"
