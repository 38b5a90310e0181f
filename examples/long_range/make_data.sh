#!/bin/sh
# The long-range corpus: one folder per distractor count (train.txt/.npz: 600 sentences, test: 200), seed 0,
# and the vocabulary the specs/long_range_*.yaml read. Run from the repository root.
set -e
python3 -m rnncompile.corpora.long_range --vocab specs/data/long_range_words.txt
for k in 0 2 5 10; do
  python3 -m rnncompile.corpora.long_range --distractors $k --seed 0 --train 600 --test 200 -o examples/long_range/k$k
done
