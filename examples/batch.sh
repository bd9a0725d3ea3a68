#!/usr/bin/env bash
# A batch of experiments as a plain shell loop: one `nncli train` per learning rate,
# then every run of the batch ranked by validation accuracy.
#
#   bash examples/batch.sh            # from the repository root
#
# Each run goes into its own directory under runs/batch-<time>/ (a fresh one each time the script
# runs), stdout of `nncli train -q` is just that directory, and a failed run (exit 1, e.g.
# a diverging learning rate) is reported and does not stop the loop.
set -u
runs="runs/batch-$(date +%Y%m%d-%H%M%S)"
for lr in 0.01 0.1 0.3 1.0; do
  if dir=$(nncli train configs/moons.yaml --set "train.lr=$lr" --set train.epochs=100 \
             --name "moons-lr$lr" --runs-dir "$runs" --quiet --no-plots); then
    echo "lr=$lr -> $dir"
  else
    echo "lr=$lr failed with exit code $?" >&2
  fi
done
nncli runs "$runs" --sort val_accuracy
