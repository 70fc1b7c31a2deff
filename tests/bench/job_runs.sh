# Sourced by the GPU scripts that time variants of one job through a local cluster
# (step_cache_gpu.sh, flux_job_gpu.sh). Before sourcing, set CTL (raylightctl with its state
# flag), JOB (the `sample` arguments every variant shares), WORK, OUT and RUN_LOG (the log name
# prefix); CALLS_UNREPORTED is the model-call count to record when the job reports no step cache.

run() {  # NAME ARGS...: the job's sampling seconds, calls reused and calls into $WORK/NAME.txt
  local name=$1; shift
  local log="$OUT/${RUN_LOG}_$name.log"
  "${CTL[@]}" "${JOB[@]}" --out "$WORK/$name" "$@" >"$log" 2>&1
  local seconds reused calls
  seconds=$(grep -o "sampled in [0-9.]*" "$log" | awk '{print $3}')
  reused=$(grep -o "step cache: [0-9]* of [0-9]*" "$log" | awk '{print $3}' || true)
  calls=$(grep -o "step cache: [0-9]* of [0-9]*" "$log" | awk '{print $5}' || true)
  calls=${calls:-${CALLS_UNREPORTED:-0}}
  echo "$seconds ${reused:-0} $calls" >"$WORK/$name.txt"
  echo "$name: sampled in $seconds s, ${reused:-0} of $calls model calls reused"
}
