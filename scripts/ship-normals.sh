#!/usr/bin/env bash
# Copies the best checkpoint of a normals training run into models/normals (the bundled model):
# weights, state.json (model and training configuration), and the run's metrics and curves;
# with a second argument (the run it was fine-tuned from), that run's metrics as well.
# The model card (models/normals/MODEL_CARD.md) is written by hand from these.
set -euo pipefail
cd "$(dirname "$0")/.."
run="${1:-runs/normals-real}"
src="$run/best"
[ -f "$src/model.safetensors" ] || { echo "no best checkpoint in $run" >&2; exit 1; }
mkdir -p models/normals
cp "$src/model.safetensors" models/normals/model.safetensors.tmp
mv models/normals/model.safetensors.tmp models/normals/model.safetensors
cp "$src/state.json" models/normals/state.json
cp "$run/metrics.jsonl" models/normals/metrics.jsonl
[ -f "$run/curves.svg" ] && cp "$run/curves.svg" models/normals/curves.svg
if [ -n "${2:-}" ]; then
  cp "$2/metrics.jsonl" models/normals/metrics-stage1.jsonl
  if [ -f "$2/curves.svg" ]; then cp "$2/curves.svg" models/normals/curves-stage1.svg; fi
fi
ls -la models/normals
