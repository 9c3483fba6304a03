#!/bin/sh
# Installs one release, inside a throwaway container of the service's own image, as the
# service's user, with the release volume mounted at $SOS_RELEASE_DIR.
# stdin: the release as a tar. stdout: the release id.
# Settings (configs/release.py): SOS_RELEASE_DIR; SOS_CHECK, a shell command run with the new
# release's directory as $1 that fails on anything the service would refuse (nginx -t,
# postgres -C); SOS_MARKER_FILE and SOS_MARKER, a printf format that appends the release id to
# a file of the release (a new one, or one of its own) in the service's own syntax, so that the
# running service can report which release it has loaded.
# A release that the check refuses is removed again and `current` is left as it was, so the
# running service keeps its configuration and the check's own message fails the deployment.
set -eu
: "${SOS_RELEASE_DIR:?}" "${SOS_CHECK:?}" "${SOS_MARKER_FILE:?}" "${SOS_MARKER:?}"
cd "$SOS_RELEASE_DIR"
mkdir -p releases
incoming="$(mktemp -d releases/.incoming.XXXXXX)"
trap 'rm -rf "$incoming"' EXIT
tar -x -f - -C "$incoming"

# The id names the content (file names and bytes), so re-applying a release changes nothing.
id="$(cd "$incoming" && find . -type f | LC_ALL=C sort | while read -r f; do
    printf '%s\n' "$f"
    cat "$f"
done | sha256sum | cut -c1-16)"
# A file of the release is read-only as shipped (its owner may make it writable).
[ ! -e "$incoming/$SOS_MARKER_FILE" ] || chmod u+w "$incoming/$SOS_MARKER_FILE"
# shellcheck disable=SC2059 # the format is the setting
printf "$SOS_MARKER" "$id" >> "$incoming/$SOS_MARKER_FILE"
[ -d "releases/$id" ] || mv "$incoming" "releases/$id"

previous="$(readlink current 2>/dev/null || true)"
# For apply-release.sh: where to go back to if the service then refuses to run it.
echo "previous=$previous"
if ! out="$(sh -c "$SOS_CHECK" check "$PWD/releases/$id" 2>&1)"; then
    printf '%s\n' "$out" >&2
    echo "release $id refused by its check; the running configuration is unchanged" >&2
    [ "$previous" = "releases/$id" ] || rm -rf "releases/$id"
    exit 1
fi

# rename(2) replaces the link in one step: a restarting service finds the old or the new release.
rm -f .current.new
ln -s "releases/$id" .current.new
mv -f -T .current.new current
for dir in releases/*; do
    case "$dir" in
        "releases/$id" | "$previous") ;;
        *) rm -rf "$dir" ;;
    esac
done
echo "$id"
