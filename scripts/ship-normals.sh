#!/usr/bin/env bash
# Copies the best checkpoint of a normals training run into models/normals (the bundled model):
# weights, state.json (model and training configuration), and the run's metrics and curves;
# further arguments name the runs it was fine-tuned from, first stage first, whose metrics and
# curves are copied as metrics-stage1.jsonl, curves-stage1.svg, metrics-stage2.jsonl, ...
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
stage=0
for earlier in "${@:2}"; do
  stage=$((stage + 1))
  cp "$earlier/metrics.jsonl" "models/normals/metrics-stage$stage.jsonl"
  if [ -f "$earlier/curves.svg" ]; then cp "$earlier/curves.svg" "models/normals/curves-stage$stage.svg"; fi
done
ls -la models/normals
