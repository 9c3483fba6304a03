#!/bin/sh
# dev's preflight, run by `pulumi preview` and `pulumi up` before anything is created (an invoke
# of components/local_docker_host.py). It only reports; components/local_docker_host.Preflight
# judges. One fact per line, fields separated by tabs:
#   engine     <engine's host name> <this machine's host name> <security options>
#   container  <name> <project label> <stack label> <published ports, as `docker ps` shows them>
#   network    <name> <project label> <stack label> <id> <subnets, space separated>
#   listen     <local address:port>           (this machine's TCP listeners)
#   route      <destination> <interface>      (this machine's IPv4 unicast routes)
#   unprivileged_port_start <n>
# The caller sets DOCKER_HOST (the one endpoint of the provider and the CLI).
set -eu
tab="$(printf '\t')"
engine="$(docker info --format "{{.Name}}${tab}{{join .SecurityOptions \",\"}}")"
printf 'engine\t%s\t%s\n' "${engine%%"$tab"*}" "$(uname -n)${tab}${engine#*"$tab"}"
docker ps --format "container${tab}{{.Names}}${tab}{{.Label \"project\"}}${tab}{{.Label \"stack\"}}${tab}{{.Ports}}"
networks="$(docker network ls -q)"
# A network removed since `ls` is no longer there to clash: what inspect found is enough.
# shellcheck disable=SC2086 # one id per word
[ -z "$networks" ] || docker network inspect --format \
    "network${tab}{{.Name}}${tab}{{index .Labels \"project\"}}${tab}{{index .Labels \"stack\"}}${tab}{{.Id}}${tab}{{range .IPAM.Config}}{{.Subnet}} {{end}}" \
    $networks 2>/dev/null || true
# Listeners and routes of this machine matter only when the engine is reached through a socket
# on it; the verdict decides, from the engine fact, whether its bridges share this machine's
# routes. (Native Windows has no /bin/sh to run this; WSL2 sees only its own distribution.)
case "${DOCKER_HOST:-}" in
    unix://*) ;;
    *) exit 0 ;;
esac
if command -v ss > /dev/null 2>&1; then
    ss -Hltn | awk '{print "listen\t" $4}'
elif command -v netstat > /dev/null 2>&1; then
    # macOS and the BSDs: "tcp4 0 0 127.0.0.1.80 *.* LISTEN".
    netstat -an -p tcp 2>/dev/null | awk '$NF == "LISTEN" {print "listen\t" $4}'
fi
if command -v ip > /dev/null 2>&1; then
    # Unicast only (no blackhole, unreachable or prohibit routes), one line per route (-o folds
    # a multipath route's nexthops into it).
    ip -4 -o route show type unicast | awk '{dev = ""; for (i = 1; i < NF; i++) if ($i == "dev") dev = $(i + 1); print "route\t" $1 "\t" dev}'
fi
if [ -r /proc/sys/net/ipv4/ip_unprivileged_port_start ]; then
    printf 'unprivileged_port_start\t%s\n' "$(cat /proc/sys/net/ipv4/ip_unprivileged_port_start)"
fi
