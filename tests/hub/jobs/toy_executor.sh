#!/bin/sh
# A YMIR-style toy executor written only against the executor contract (busybox sh).
# Reads env.yaml and config.yaml; behaves as config's `behavior` says.
IN="${YMIR_IN_DIR:-/in}"
val() { grep "^ *$1:" "$2" | head -1 | sed "s/^ *$1: *//; s/^'//; s/'\$//"; }
TASK=$(val task_id "$IN/env.yaml")
MONITOR=$(val monitor_file "$IN/env.yaml")
MODELS=$(val models_dir "$IN/env.yaml" | tail -1)
OUTROOT=$(dirname "$MONITOR")
BEHAVIOR=$(val behavior "$IN/config.yaml")
mon() { echo "$TASK	$(date +%s)	$1	$2" > "$MONITOR"; }
echo "toy executor: task $TASK behavior ${BEHAVIOR:-ok}"
mon 0.1 2
case "$BEHAVIOR" in
  exit1) echo "toy: failing on purpose" >&2; exit 1 ;;
  bad_monitor) echo "garbage" > "$MONITOR"; sleep 2; exit 0 ;;
  error_state) echo "$TASK	$(date +%s)	0.5	4	7" > "$MONITOR"; sleep 30; exit 0 ;;
  sleep) sleep 60 ;;
esac
if [ "$(val run_training "$IN/env.yaml")" = "true" ]; then
  n=$(wc -l < "$(val training_index_file "$IN/env.yaml")")
  mon 0.5 2
  mkdir -p "$OUTROOT/models"
  [ "$BEHAVIOR" = no_result ] && exit 0
  echo "weights trained on $n images" > "$OUTROOT/models/toy.weights"
  if [ "$BEHAVIOR" = missing_files ]; then
    printf 'model_stages:\n  last:\n    files: [toy.weights, gone.onnx]\n    mAP: 0.5\nbest_stage_name: last\n' > "$OUTROOT/models/result.yaml"
  elif [ "$BEHAVIOR" = legacy ]; then
    printf 'model: [toy.weights]\nmap: 0.42\n' > "$OUTROOT/models/result.yaml"
  else
    printf 'model_stages:\n  epoch1:\n    files: [toy.weights]\n    mAP: 0.3\n    timestamp: 1\n  best:\n    files: [toy.weights]\n    mAP: 0.6\n    timestamp: 2\nbest_stage_name: best\nmap: 0.6\n' > "$OUTROOT/models/result.yaml"
  fi
fi
if [ "$(val run_mining "$IN/env.yaml")" = "true" ]; then
  i=0; : > "$OUTROOT/result.tsv"
  while read -r asset; do i=$((i+1)); echo "$asset	0.$i" >> "$OUTROOT/result.tsv"; done < "$(val candidate_index_file "$IN/env.yaml")"
fi
if [ "$(val run_infer "$IN/env.yaml")" = "true" ]; then
  printf '{"detection": {' > "$OUTROOT/infer-result.json"; sep=""
  while read -r asset; do
    printf '%s"%s": {"annotations": [{"box": {"x": 1, "y": 2, "w": 10, "h": 20}, "class_name": "circle", "score": 0.9}]}' "$sep" "$(basename "$asset")" >> "$OUTROOT/infer-result.json"; sep=","
  done < "$(val candidate_index_file "$IN/env.yaml")"
  printf '}}' >> "$OUTROOT/infer-result.json"
fi
mon 1.0 2
exit 0
