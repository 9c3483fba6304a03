#!/bin/sh
# Runs on the Docker host (pulumi-command). stdin: the release bundle, base64.
# Checks and installs the release in a throwaway container of the service's image, then has the
# running service (if any) reload it, and waits until the service reports the new release;
# fails the deployment otherwise. A reload changes no container: no connection drops.
# The caller sets (configs/release.py): SOS_NAME, SOS_IMAGE, SOS_VOLUME, SOS_CONTAINER,
# SOS_INSTALL (install-release.sh), SOS_RELEASE_DIR, SOS_USER, SOS_CHECK, SOS_MARKER_FILE,
# SOS_MARKER, SOS_SCRATCH (directories the check writes, as the service does), SOS_RELOAD and
# SOS_PROBE (shell run inside the service's container: the reload, and what prints the id of
# the release it runs).
set -eu
bundle="$(mktemp)"
installed="$(mktemp)"
trap 'rm -f "$bundle" "$installed"' EXIT
base64 -d > "$bundle"

scratch=""
for dir in $SOS_SCRATCH; do
    scratch="$scratch --tmpfs $dir:rw,noexec,nosuid,size=1m,uid=${SOS_USER%%:*},gid=${SOS_USER##*:}"
done
# A throwaway container of the image, as the service's user, on the release volume alone.
in_image() {
    # shellcheck disable=SC2086 # $scratch is a list of options
    docker run --rm -i --network none --user "$SOS_USER" --read-only --cap-drop ALL \
        --security-opt no-new-privileges:true --pids-limit 64 --memory 128m \
        --tmpfs /tmp:rw,noexec,nosuid,size=16m $scratch \
        --mount "type=volume,src=$SOS_VOLUME,dst=$SOS_RELEASE_DIR" \
        --env "SOS_RELEASE_DIR=$SOS_RELEASE_DIR" --env "SOS_CHECK=$SOS_CHECK" \
        --env "SOS_MARKER_FILE=$SOS_MARKER_FILE" --env "SOS_MARKER=$SOS_MARKER" --entrypoint /bin/sh \
        "$SOS_IMAGE" -c "$@"
}
# Not a pipeline: sh has no pipefail, and a refused release must stop here.
in_image "$SOS_INSTALL" < "$bundle" > "$installed"
id="$(tail -n 1 "$installed")"
previous="$(sed -n 's/^previous=//p' "$installed")"

# Reloaded only if it runs and runs on releases: a container from before releases (its files
# were uploads) is about to be replaced by one that starts on this release.
state="$(docker container inspect --format '{{.State.Running}}{{range .Mounts}} {{.Name}}{{end}} ' \
    "$SOS_CONTAINER" 2>/dev/null || true)"
case "$state" in
    "true"*" $SOS_VOLUME "*) ;;
    *)
        echo "$SOS_NAME release $id installed; $SOS_CONTAINER starts with it"
        exit 0
        ;;
esac
# From inside the container, not `docker kill --signal HUP`: the engine takes any signal sent
# through its kill API as the user stopping the container, and `unless-stopped` would then no
# longer restart the service after a crash or a reboot (tests/test_docker_engine.py).
docker exec "$SOS_CONTAINER" sh -c "$SOS_RELOAD"
tries=0
until report="$(docker exec "$SOS_CONTAINER" sh -c "$SOS_PROBE" 2>&1 || true)" && [ "$report" = "$id" ]; do
    tries=$((tries + 1))
    if [ "$tries" -ge 30 ]; then
        echo "$SOS_CONTAINER did not load $SOS_NAME release $id within 30 s; it reports: $report; its log:" >&2
        docker logs --tail 30 "$SOS_CONTAINER" >&2 || true
        # Back to the release it ran, so that a restart does not start it on this one.
        if [ -n "$previous" ] && [ "$previous" != "releases/$id" ]; then
            # shellcheck disable=SC2016 # expanded in the container
            in_image 'cd "$SOS_RELEASE_DIR" && rm -f .current.new && ln -s "$1" .current.new && mv -f -T .current.new current' \
                sh "$previous" < /dev/null
            docker exec "$SOS_CONTAINER" sh -c "$SOS_RELOAD" || true
            echo "$SOS_CONTAINER is back on $previous" >&2
        fi
        exit 1
    fi
    sleep 1
done
echo "$SOS_NAME release $id live in $SOS_CONTAINER"
