#!/usr/bin/env bash
# scripts/soak.sh N — SIGKILLs the host N times at random moments while it
# runs a multi-engine, platform-billed pipeline (RunPod image → Kling video →
# RunPod poster, credits reserved and settled, usage metered to Stripe)
# against the stand-ins, resuming after every kill, then prints what matters:
# runs lost, provider submissions per step, double charges, outbox deliveries
# per event and artifact hash mismatches. Exits 1 if any of those is wrong.
# Kills are drawn uniformly from 20 ms to 1.2 × the length of one unkilled
# run, measured first on this machine.
#
#   scripts/soak.sh 50          # the figure in docs/benchmarks.md
#   SOAK_SEED=7 scripts/soak.sh 5
#
# SKIP_BUILD=1 uses the last build; KEEP=1 keeps the work folder (printed).
# The stand-ins run in one process that outlives every kill, so the
# provider's side of the ledger is never lost with the host.
set -euo pipefail
cd "$(dirname "$0")/.."
kills="${1:-50}"
seed="${SOAK_SEED:-$$}"
RANDOM=$seed
[ -n "${SKIP_BUILD:-}" ] || scripts/build.sh debug >/dev/null
yard="$(swift build --show-bin-path)/yard"
work="$(mktemp -d "${TMPDIR:-/tmp}/yard-soak.XXXXXX")"
export YARD_HOME="$work/home" YARD_PLUGIN_PATH="" YARD_MAX_POLL_MS="${YARD_MAX_POLL_MS:-150}"
mkdir -p "$YARD_HOME/config"

"$yard" standin soak --urls-file "$work/standins.json" >"$work/standins.log" 2>&1 &
standins=$!
child=""
cleanup() {
  [ -n "$child" ] && kill -9 "$child" 2>/dev/null || true
  kill "$standins" 2>/dev/null || true
  wait "$standins" 2>/dev/null || true
  if [ -n "${KEEP:-}" ]; then echo "work folder kept: $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT
for _ in $(seq 1 300); do [ -f "$work/standins.json" ] && break; sleep 0.1; done
[ -f "$work/standins.json" ] || { echo "soak: the stand-ins did not start:"; cat "$work/standins.log"; exit 1; }

# Engines pointed at the stand-ins, keys in the environment, every engine platform-billed.
eval "$(python3 - "$work/standins.json" "$YARD_HOME/config" <<'PY'
import json, sys, os
u = json.load(open(sys.argv[1])); config = sys.argv[2]
def write(name, value): json.dump(value, open(os.path.join(config, name), "w"))
write("runpod.json", {"endpoint_id": u["runpod"]["endpoint_id"], "base_url": u["runpod"]["base_url"], "rest_url": u["runpod"]["rest_url"]})
write("kling.json", {"base_url": u["kling"]["base_url"]})
write("stripe-billing.json", {"base_url": u["stripe"]["base_url"]})
write("billing.json", {"default_mode": "platform", "default_account": "acme",
                       "meter": {"plugin": "stripe-billing", "event_name": "switchyard_usage_minor"}})
print(f'export RUNPOD_API_KEY={u["runpod"]["api_key"]} KLING_ACCESS_KEY={u["kling"]["access_key"]} '
      f'KLING_SECRET_KEY={u["kling"]["secret_key"]} STRIPE_API_KEY={u["stripe"]["api_key"]} STATS_URL={u["stats_url"]}')
PY
)"
"$yard" credits account acme --stripe-customer cus_SOAK >/dev/null
"$yard" credits grant --account acme --amount 100000.00 --id soak-credits >/dev/null

cat >"$work/soak.yaml" <<'YAML'
id: soak
inputs:
  n: {type: string, required: true}
steps:
  still: {capability: image.generate, engines: [runpod], inputs: {prompt: "soak ${inputs.n} still"}}
  clip: {capability: video.from_text, engines: [kling], inputs: {prompt: "soak ${inputs.n} clip", duration_seconds: 5}}
  poster: {capability: image.generate, engines: [runpod], after: [clip], inputs: {prompt: "soak ${inputs.n} poster"}}
YAML

unfinished() {
  python3 - "$YARD_HOME/yard.sqlite" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
def count(sql):
    try: return db.execute(sql).fetchone()[0]
    except sqlite3.OperationalError: return 0
print(count("SELECT count(*) FROM pipeline_run WHERE state = 'running'")
      + count("SELECT count(*) FROM job WHERE phase IN ('submitting', 'queued', 'running')"))
PY
}

# One run without a kill first: it must succeed, and its length sets the
# range kills are drawn from, so they land anywhere in a run on this machine.
calibrate_start=$(date +%s%N)
"$yard" run "$work/soak.yaml" --input "n=r0" >>"$work/rounds.log" 2>&1 || { echo "soak: the pipeline fails without any kill:"; tail -20 "$work/rounds.log"; exit 1; }
run_ms=$(( ($(date +%s%N) - calibrate_start) / 1000000 ))
max_delay_ms=$(( run_ms * 12 / 10 > 500 ? run_ms * 12 / 10 : 500 ))

# The kills: each round starts a new run or resumes what a kill left, and is
# killed after a random delay in 20 ms … 1.2 × a whole run unless it finished first.
killed=0 runs=0 rounds=0 start=$(date +%s)
while [ "$killed" -lt "$kills" ]; do
  rounds=$((rounds + 1))
  if [ "$(unfinished)" -gt 0 ]; then
    "$yard" jobs resume >>"$work/rounds.log" 2>&1 & child=$!
  elif [ $((RANDOM % 5)) -eq 0 ]; then
    "$yard" credits deliver >>"$work/rounds.log" 2>&1 & child=$!
  else
    runs=$((runs + 1))
    "$yard" run "$work/soak.yaml" --input "n=r$runs" >>"$work/rounds.log" 2>&1 & child=$!
  fi
  delay_ms=$((20 + (RANDOM * 32768 + RANDOM) % max_delay_ms))
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  # Only a process still running counts as killed (a zombie has already finished).
  if [ -r "/proc/$child/stat" ] && [ "$(awk '{print $3}' "/proc/$child/stat" 2>/dev/null)" != "Z" ] && kill -9 "$child" 2>/dev/null; then
    killed=$((killed + 1))
  fi
  wait "$child" 2>/dev/null || true
  child=""
done

# Then let everything finish without kills, and deliver what is still pending.
for _ in $(seq 1 20); do
  [ "$(unfinished)" -eq 0 ] && break
  "$yard" jobs resume >>"$work/rounds.log" 2>&1 || true
done
"$yard" credits deliver --include-failed >>"$work/rounds.log" 2>&1 || true
curl -s "$STATS_URL" >"$work/stats.json" 2>/dev/null || python3 -c "import urllib.request,sys; sys.stdout.write(urllib.request.urlopen('$STATS_URL').read().decode())" >"$work/stats.json"

python3 - "$YARD_HOME" "$work/stats.json" "$kills" "$runs" "$rounds" "$(( $(date +%s) - start ))" "$seed" "$run_ms" <<'PY'
import hashlib, json, os, sqlite3, sys, collections
home, stats_file = sys.argv[1], sys.argv[2]
kills, runs_started, rounds, seconds, seed, run_ms = map(int, sys.argv[3:9])
stats = json.load(open(stats_file))
db = sqlite3.connect(os.path.join(home, "yard.sqlite"))
q = lambda sql, *a: db.execute(sql, a).fetchall()

runs = q("SELECT id, state FROM pipeline_run")
steps = q("SELECT run_id, name, state, job_id FROM pipeline_step")
jobs = q("SELECT id, idempotency_key, plugin_id, phase, inputs_json, error_json FROM job")
by_state = collections.Counter(state for _, state in runs)

# A run is lost if it is unfinished after the final resume, or failed
# without a job that says why (a parked job, needing attention, says why).
parked_runs, lost_runs = set(), set()
failed_steps = collections.defaultdict(list)
for run_id, name, state, job_id in steps: failed_steps[run_id].append((state, job_id))
job_phase = {j[0]: j[3] for j in jobs}
for run_id, state in runs:
    if state == "running": lost_runs.add(run_id)
    elif state == "failed":
        if any(job_phase.get(job) == "needs_attention" for _, job in failed_steps[run_id]): parked_runs.add(run_id)
        else: lost_runs.add(run_id)

# Provider submissions per pipeline step: RunPod by prompt (one prompt per
# run and step), Kling by external_task_id (sy-<job id>), summed over every
# job a step ever had.
step_of_job = {}
for job_id, key, plugin, phase, inputs, _ in jobs:
    parts = key.split("/")
    if key.startswith("pipeline/") and len(parts) >= 5: step_of_job[job_id] = (parts[1], parts[2])
submissions = collections.Counter()
runpod = stats.get("runpod_submissions_by_prompt", {})
kling = stats.get("kling_submissions_by_external_id", {})
known_prompts, known_external = set(), set()
for job_id, key, plugin, phase, inputs, _ in jobs:
    step = step_of_job.get(job_id, ("-", job_id))
    if plugin == "runpod":
        prompt = json.loads(inputs).get("prompt", "")
        if prompt not in known_prompts: submissions[step] += runpod.get(prompt, 0)
        known_prompts.add(prompt)
    elif plugin == "kling":
        for external, count in kling.items():
            if external == f"sy-{job_id}" or external.startswith(f"sy-{job_id}-a"):
                submissions[step] += count; known_external.add(external)
orphans = sum(c for p, c in runpod.items() if p not in known_prompts) + sum(c for e, c in kling.items() if e not in known_external)
duplicates = sum(1 for c in submissions.values() if c > 1)
per_step = collections.Counter(submissions.values())

# Charges: a step charged by more than one job, or a job settled twice.
charged = q("SELECT lj.job_id, lj.charged_minor, lj.state FROM ledger_job lj")
charged_steps = collections.Counter(step_of_job.get(j, ("-", j)) for j, minor, _ in charged if (minor or 0) > 0)
double_charges = sum(1 for c in charged_steps.values() if c > 1)
settles = collections.Counter(job for (job,) in q("SELECT job_id FROM ledger_txn WHERE kind IN ('settle', 'refund') AND job_id IS NOT NULL"))
double_charges += sum(1 for c in settles.values() if c > 1)
unbalanced = q("SELECT txn_id, sum(amount_minor) s FROM ledger_entry GROUP BY txn_id HAVING s != 0")
unsettled = q("SELECT count(*) FROM ledger_job lj JOIN job j ON j.id = lj.job_id WHERE j.phase IN ('succeeded','failed','cancelled','needs_attention') AND lj.settled_at IS NULL")[0][0]

# Usage reaching Stripe: each outbox event recorded exactly once.
recorded = stats.get("stripe_recorded_by_identifier", {})
attempts = stats.get("stripe_requests_by_identifier", {})
outbox = q("SELECT identifier, state FROM billing_outbox")
outbox_errors = dict(q("SELECT identifier, state || ': ' || coalesce(last_error, '') FROM billing_outbox"))
outbox_per_job = collections.Counter(j for (j,) in q("SELECT job_id FROM billing_outbox"))
delivered_per_event = collections.Counter(recorded.get(identifier, 0) for identifier, _ in outbox)
duplicate_deliveries = sum(1 for identifier, _ in outbox if recorded.get(identifier, 0) > 1) + sum(1 for c in outbox_per_job.values() if c > 1)
undelivered = sum(1 for identifier, _ in outbox if recorded.get(identifier, 0) == 0)

# Artifacts: every file's name is its sha256.
mismatches = files = 0
root = os.path.join(home, "artifacts", "sha256")
for folder, _, names in os.walk(root):
    for name in names:
        if name.startswith("."): continue
        files += 1
        if hashlib.sha256(open(os.path.join(folder, name), "rb").read()).hexdigest() != name: mismatches += 1

def dist(counter): return ", ".join(f"{k}×{v}" for k, v in sorted(counter.items())) or "none"
print(f"soak: {kills} SIGKILLs in {rounds} rounds over {runs_started} runs started, {seconds} s (seed {seed}; an unkilled run took {run_ms} ms)")
print(f"runs: {len(runs)} recorded, {by_state.get('succeeded', 0)} succeeded, {len(parked_runs)} parked for attention")
print(f"runs lost: {len(lost_runs)}")
print(f"provider submissions per step: {dist(per_step)} (submissions×steps); orphan submissions: {orphans}")
print(f"duplicate submissions: {duplicates}")
print(f"double charges: {double_charges} (unbalanced transactions: {len(unbalanced)}, terminal jobs unsettled: {unsettled})")
print(f"outbox deliveries per event: {dist(delivered_per_event)} (deliveries×events); duplicates: {duplicate_deliveries}, undelivered: {undelivered}, "
      f"attempts max {max(attempts.values(), default=0)}")
for reason, count in collections.Counter(outbox_errors[i][:160] for i, _ in outbox if recorded.get(i, 0) == 0).most_common(3):
    print(f"  undelivered ×{count}: {reason}")
print(f"artifact hash mismatches: {mismatches} (of {files} files)")
bad = len(lost_runs) + duplicates + orphans + double_charges + len(unbalanced) + duplicate_deliveries + mismatches
if not by_state.get("succeeded"):
    print("soak: no run succeeded, so nothing was measured (see the rounds log with KEEP=1)")
    bad += 1
sys.exit(1 if bad else 0)
PY
