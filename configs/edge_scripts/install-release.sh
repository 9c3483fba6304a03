#!/bin/sh
# Installs one edge release, inside a throwaway container of the edge's own image, as the
# nginx user, with the edge's configuration volume mounted at $SOS_EDGE_DIR.
# stdin: the release as a tar (nginx.conf, tls/*). stdout: the release id.
# A release that `nginx -t` refuses is removed again and `current` is left as it was, so the
# running edge keeps its configuration and nginx's own message fails the deployment.
set -eu
: "${SOS_EDGE_DIR:=/etc/sos/edge}"
: "${SOS_NGINX:=nginx}"
cd "$SOS_EDGE_DIR"
mkdir -p releases
incoming="$(mktemp -d releases/.incoming.XXXXXX)"
trap 'rm -rf "$incoming"' EXIT
tar -x -f - -C "$incoming"

# The id names the content (file names and bytes), so re-applying a release changes nothing.
id="$(cd "$incoming" && find . -type f | LC_ALL=C sort | while read -r f; do
    printf '%s\n' "$f"
    cat "$f"
done | sha256sum | cut -c1-16)"
# The edge's health endpoint answers with the id of the configuration it runs.
# shellcheck disable=SC2016 # $sos_release is nginx's variable, written as is
printf 'geo $sos_release {\n    default "%s";\n}\n' "$id" > "$incoming/release.conf"
[ -d "releases/$id" ] || mv "$incoming" "releases/$id"

previous="$(readlink current 2>/dev/null || true)"
if ! out="$("$SOS_NGINX" -t -q -c "$PWD/releases/$id/nginx.conf" 2>&1)"; then
    printf '%s\n' "$out" >&2
    echo "edge release $id refused by nginx -t; the running configuration is unchanged" >&2
    [ "$previous" = "releases/$id" ] || rm -rf "releases/$id"
    exit 1
fi

# rename(2) replaces the link in one step: a restarting nginx finds the old or the new release.
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
