#!/usr/bin/env bash
# SIGTERM with a cluster's 30 s grace, on 8m with a 50k-env-step test interval: how soon the run stops, how
# old its checkpoint is, and whether the resumed run ends identical to an uninterrupted one (save_replay=true).
#   docs/results/sigterm-8m/sigterm_8m.sh [SCRATCH_FOLDER]     (QMIX=path/to/qmix to choose the command)
set -u
Q=${QMIX:-qmix}
A=${1:-/tmp/sigterm-8m}; mkdir -p $A
rm -rf $A/ref $A/run
ARGS="--map 8m --env-steps 60000 --seed 0 --no-progress test_interval_env_steps=50000 checkpoint_interval_env_steps=50000 save_replay=true buffer_size_episodes=1000"
start=$(date +%s); $Q train $ARGS --out $A/ref > $A/ref.log 2>&1; echo "reference: exit $? in $(( $(date +%s) - start )) s"
start=$(date +%s)
$Q train $ARGS --out $A/run > $A/run.log 2>&1 &
pid=$!
until [ -s $A/run/metrics.jsonl ]; do sleep 1; done   # the step-0 test is logged: training is under way
sleep 40
sent=$(date +%s.%N); kill -TERM $pid
for i in $(seq 1 300); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
if kill -0 $pid 2>/dev/null; then kill -KILL $pid; echo "not stopped within 30 s: killed"; fi
wait $pid; code=$?; ended=$(date +%s.%N)
echo "stopped run: exit $code, $(python3 -c "print(round($ended-$sent,1))") s after SIGTERM"
tail -2 $A/run.log
for m in $A/run/checkpoints/*/qmix_complete.json; do
  python3 -c "import os;print('checkpoint', '$m'.split('/')[-2], 'written', round(os.path.getmtime('$m')-$sent,1), 's after the signal')"; done
start=$(date +%s); $Q train --resume $A/run --no-progress > $A/resume.log 2>&1; echo "resume: exit $? in $(( $(date +%s) - start )) s"
python3 - "$A" <<'PY'
import json, sys
from pathlib import Path
wall = {"wall_seconds", "env_steps_per_second"}
rec = lambda d: [{k: v for k, v in json.loads(l).items() if k not in wall} for l in (Path(d) / "metrics.jsonl").read_text().splitlines()]
A = sys.argv[1]
a, b = rec(f"{A}/ref"), rec(f"{A}/run")
print("metrics identical:", a == b, len(a), "records;", "params identical:",
      (Path(f"{A}/ref/params.msgpack").read_bytes() == Path(f"{A}/run/params.msgpack").read_bytes()))
PY
