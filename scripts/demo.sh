#!/usr/bin/env bash
# The main job on embedded defaults, end to end:
#   set up .venv -> init a workspace -> create the "shapes" project -> generate and import a sample
#   dataset (train + val) -> train the built-in detector as a job -> run it over the val set ->
#   print the summary -> serve the hub and print the URL and login.
# Idempotent: a second run reuses the workspace, datasets and model it finds.
# Settings: YMIR_HOME (workspace, default ./ymir-workplace), DEMO_PORT (8080), DEMO_EPOCHS (training
# epochs, default: the executor's default), DEMO_SERVE=0 to stop before serving.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh all

HOME_DIR="${YMIR_HOME:-$PWD/ymir-workplace}"
PORT="${DEMO_PORT:-8080}"
PY=.venv/bin/python
hub() { .venv/bin/ymir-hub --home "$HOME_DIR" "$@"; }
jq_py() { "$PY" -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
say() { echo; echo "== $*"; }

say "workspace $HOME_DIR"
LOGIN_FILE="$HOME_DIR/.demo-login"
if [[ ! -f "$HOME_DIR/hub.db" ]]; then
  PASSWORD="$("$PY" -c 'import secrets; print(secrets.token_urlsafe(9))')"
  hub init --admin-password "$PASSWORD"
  echo "admin $PASSWORD" > "$LOGIN_FILE"
  chmod 600 "$LOGIN_FILE"
fi

say "classes and project"
existing=$(hub class list --json | jq_py '" ".join(c["name"] for c in d)')
for c in circle square triangle; do
  [[ " $existing " == *" $c "* ]] || hub class add "$c"
done
if ! hub project list --json | jq_py '"shapes" in [p["name"] for p in d]' | grep -q True; then
  hub project create shapes --classes circle,square,triangle
fi

say "sample dataset"
version_of() { hub dataset list --project shapes --json | jq_py "next((v['id'] for v in d if v['group_name']=='$1' and v['state']=='ready'), '')"; }
for spec in "train 400 1" "val 100 2"; do
  read -r name n seed <<<"$spec"
  if [[ -z "$(version_of "$name")" ]]; then
    hub sample-data --out "$HOME_DIR/sharing/shapes-$name.zip" --images "$n" --seed "$seed"
    hub dataset import --project shapes --path "$HOME_DIR/sharing/shapes-$name.zip" --name "$name"
  fi
done
TRAIN=$(version_of train); VAL=$(version_of val)
hub dataset show "$TRAIN"

say "training the built-in detector (a job; progress below)"
MODEL=$(hub model list --project shapes --json | jq_py "d[0]['model_id'] if d else ''")
if [[ -z "$MODEL" ]]; then
  extra=()
  [[ -n "${DEMO_EPOCHS:-}" ]] && extra=(--set "epochs=$DEMO_EPOCHS")
  MODEL=$(hub train --project shapes --train "$TRAIN" --val "$VAL" --name shapes-detector "${extra[@]}" --wait --json \
          | jq_py 'd["model_id"]')
fi
hub model list --project shapes

say "inference of model $MODEL over the validation set"
PRED=$(hub dataset list --project shapes --json | jq_py "next((v['id'] for v in d if v['operation']=='infer' and v['state']=='ready'), '')")
if [[ -z "$PRED" ]]; then
  hub infer --model "$MODEL" --dataset "$VAL" --wait
else
  echo "prediction version $PRED already made"
fi

say "summary"
hub dataset list --project shapes
hub job list --project shapes

if [[ "${DEMO_SERVE:-1}" == 0 ]]; then exit 0; fi
read -r USER PASS < "$LOGIN_FILE" 2>/dev/null || { USER=admin; PASS="(the password printed at init)"; }
say "hub at http://127.0.0.1:$PORT  login: $USER / $PASS   (Ctrl-C stops it)"
exec .venv/bin/ymir-hub --home "$HOME_DIR" serve --port "$PORT"
