# shellcheck shell=sh
# `begin_set DIR`, `fail MSG` and `publish`: a set is built in a hidden directory of DIR and
# appears under its final name (one rename) only once SHA256SUMS covers every file in it.
# Needs lib-metrics.sh and lib-sets.sh, and SOS_LOCAL_SETS_KEPT from the header.
begin_set() {
  out="$1"
  stamp="$(date -u +%Y%m%dT%H%M%SZ)"
  work="$out/.partial-$stamp"
  trap 'rm -rf "$work"' EXIT
  mkdir -p "$work"
}
fail() {
  rm -rf "$work"
  record_failure
  echo "$SOS_KIND backup failed: $1" >&2
  exit 1
}
publish() {
  (cd "$work" && find . -type f | sed 's|^\./||' | sort | xargs sha256sum > "../.sums-$stamp") \
    || fail "checksums"
  mv "$out/.sums-$stamp" "$work/SHA256SUMS" || fail "checksums"
  mv "$work" "$out/$stamp" || fail "publish"
  size=$(du -sk "$out/$stamp" | cut -f1)
  record_ok "$((size * 1024))"
  # Older complete sets beyond the newest few leave this volume (the bucket keeps them).
  sets_in "$out" | sort -r | tail -n +"$((SOS_LOCAL_SETS_KEPT + 1))" | while read -r old; do rm -rf "${out:?}/$old"; done
  echo "$out/$stamp"
}
