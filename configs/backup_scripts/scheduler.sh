# shellcheck shell=sh
# The backup container's main process: every tick, runs each job that is due, in order
# (`run_jobs`, which the renderer writes from configs/backup.jobs()). A job is due `every`
# seconds after its last success; a failed one is retried after `retry`. State lives on the
# backups volume, so a restart neither repeats nor skips a job.
set -u
state="${SOS_STATE_DIR:?}"
tick="${SOS_TICK_SECONDS:-60}"
mkdir -p "$state"
trap 'exit 0' TERM INT
run_if_due() {
  name=$1 every=$2 retry=$3
  shift 3
  now=$(date +%s)
  last=$(cat "$state/$name.ok" 2>/dev/null || echo 0)
  tried=$(cat "$state/$name.tried" 2>/dev/null || echo 0)
  [ $((now - last)) -ge "$every" ] || return 0
  [ $((now - tried)) -ge "$retry" ] || return 0
  echo "$now" > "$state/$name.tried"
  echo "$now" > "$state/heartbeat"
  echo "job $name: started"
  if "$@"; then
    date +%s > "$state/$name.ok"
    echo "job $name: ok"
  else
    echo "job $name: FAILED with status $?" >&2
  fi
}
while :; do
  # The healthcheck reads this: a stuck scheduler turns the container unhealthy.
  date +%s > "$state/heartbeat"
  run_jobs
  sleep "$tick" &
  wait $!
done
