# shellcheck shell=sh
# The backup metric file for node_exporter's textfile collector: `record_ok SIZE` and
# `record_failure`, for SOS_KIND in SOS_METRICS_DIR (set by the header the renderer writes).
# The file is replaced atomically (rename), so the collector never reads half of it, and a
# failure keeps the time of the last success: the alert is on its age.
metric_text() {
  # $1: when the last good backup finished (unix time), $2: its size in bytes, $3: 1 if this run succeeded.
  printf '# HELP sos_backup_last_success_timestamp_seconds When the last good backup finished.\n# TYPE sos_backup_last_success_timestamp_seconds gauge\nsos_backup_last_success_timestamp_seconds{kind="%s"} %s\n# HELP sos_backup_last_size_bytes Size of the last good backup.\n# TYPE sos_backup_last_size_bytes gauge\nsos_backup_last_size_bytes{kind="%s"} %s\n# HELP sos_backup_last_run_ok 1 if the last run succeeded, 0 if it failed.\n# TYPE sos_backup_last_run_ok gauge\nsos_backup_last_run_ok{kind="%s"} %s\n' \
    "$SOS_KIND" "$1" "$SOS_KIND" "$2" "$SOS_KIND" "$3"
}
write_metric() {
  tmp="$SOS_METRICS_DIR/.$SOS_KIND.prom.$$"
  printf '%s\n' "$1" > "$tmp" && mv "$tmp" "$SOS_METRICS_DIR/$SOS_KIND.prom"
}
record_ok() {
  write_metric "$(metric_text "$(date +%s)" "$1" 1)"
}
record_failure() {
  previous=$(sed -n "s/^sos_backup_last_success_timestamp_seconds{kind=\"$SOS_KIND\"} //p" \
    "$SOS_METRICS_DIR/$SOS_KIND.prom" 2>/dev/null || true)
  write_metric "$(metric_text "${previous:-0}" 0 0)"
}
