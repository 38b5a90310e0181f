#!/bin/sh
# specs/sentiment.yaml trained on the labelled reviews of make_data.py: examples/sentiment/weights.npz and its log,
# examples/sentiment/train.log; then its accuracy on train and test. Seeded: the same command gives the same weights.
#   sh examples/sentiment/train.sh            # 10 epochs, about 10 s
#   sh examples/sentiment/train.sh 1 DIR      # the first epoch into DIR (tests/test_trained_examples.py)
set -e
EPOCHS=${1:-10}
OUT=${2:-examples/sentiment}
python3 examples/sentiment/make_data.py --out "$OUT"
rnncompile train specs/sentiment.yaml --input "$OUT/train.npz" --epochs "$EPOCHS" --batch 16 --lr 0.01 --seed 0 \
    --no-progress --save-weights "$OUT/weights.npz" > "$OUT/train.log"
cat "$OUT/train.log"
python3 examples/sentiment/evaluate.py --weights "$OUT/weights.npz"
