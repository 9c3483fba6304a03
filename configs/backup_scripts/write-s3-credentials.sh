# shellcheck shell=sh
# Writes pgBackRest's S3 key pair (SOS_S3_KEY, SOS_S3_KEY_SECRET, from the task's env file) into
# SOS_CREDENTIALS_DIR, readable by SOS_CREDENTIALS_OWNER only. Each pgBackRest run (every
# archive-push, every backup) and each offsite upload reads the file anew, so a new key reaches
# them without restarting PostgreSQL. Replaced by one rename: no reader sees half a file.
set -eu
: "${SOS_S3_KEY:?}" "${SOS_S3_KEY_SECRET:?}"
umask 077
tmp="$SOS_CREDENTIALS_DIR/.s3-credentials.tmp"
printf '[global]\nrepo1-s3-key=%s\nrepo1-s3-key-secret=%s\n' "$SOS_S3_KEY" "$SOS_S3_KEY_SECRET" > "$tmp"
# Mode before owner: once the file is the owner's, root without CAP_FOWNER may not chmod it.
chmod 0400 "$tmp"
chown "$SOS_CREDENTIALS_OWNER" "$tmp"
mv -f "$tmp" "$SOS_CREDENTIALS_DIR/s3-credentials.conf"
