# shellcheck shell=sh
# usage: offsite BACKUP_DIR. Environment: SOS_S3_URL, SOS_S3_REGION, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, or SOS_S3_CREDENTIALS (pgBackRest's key file, read at each run so a
# rotated key needs no restart); SOS_S3_PREFIX (default `sets`).
set -u
root="$1"
if [ -n "${SOS_S3_CREDENTIALS:-}" ]; then
  AWS_ACCESS_KEY_ID=$(sed -n 's/^repo1-s3-key=//p' "$SOS_S3_CREDENTIALS")
  AWS_SECRET_ACCESS_KEY=$(sed -n 's/^repo1-s3-key-secret=//p' "$SOS_S3_CREDENTIALS")
fi
prefix="${SOS_S3_PREFIX:-sets}"
s3_put() {
  md5=$(openssl dgst -md5 -binary "$1" | base64)
  # Signed into the request, so S3 refuses a body that is not this file.
  sha=$(sha256sum "$1" | cut -c1-64)
  # The key pair goes on stdin as curl configuration, never on a command line.
  printf 'user = "%s:%s"\n' "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY" \
    | curl --config - --fail --silent --show-error --retry 3 --max-time 900 \
        --aws-sigv4 "aws:amz:$SOS_S3_REGION:s3" \
        -H "Content-MD5: $md5" -H "x-amz-content-sha256: $sha" \
        --upload-file "$1" "$SOS_S3_URL/$2" >/dev/null
}
shipped=0
bytes=0
for kind in $SOS_OFFSITE_KINDS; do
  [ -d "$root/$kind" ] || continue
  for set in $(sets_in "$root/$kind" | sort); do
    dir="$root/$kind/$set"
    [ -e "$dir/.shipped" ] && continue
    (cd "$dir" && sha256sum -c SHA256SUMS >/dev/null) || {
      record_failure; echo "offsite: $dir does not match its SHA256SUMS" >&2; exit 1; }
    for file in $(cut -c67- "$dir/SHA256SUMS") SHA256SUMS; do
      s3_put "$dir/$file" "$prefix/$kind/$set/$file" || {
        record_failure; echo "offsite: upload of $kind/$set/$file failed" >&2; exit 1; }
      bytes=$((bytes + $(wc -c < "$dir/$file")))
    done
    : > "$dir/.shipped"
    shipped=$((shipped + 1))
  done
done
record_ok "$bytes"
echo "offsite: $shipped set(s), $bytes bytes"
