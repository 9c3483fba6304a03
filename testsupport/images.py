"""Local stand-ins for the images the stacks pin, shaped like the official ones where Docker's
behaviour depends on it (testsupport/engine.py builds them; no registry is reachable here).

Each shape says which lines of the official Dockerfile and entrypoint it reproduces, read at the
pinned tag (or the nearest readable commit, as noted); the programs are Debian's where a package
has them, and the shell scripts are our own wording of the official ones' behaviour.
"""

from __future__ import annotations

from settings.defaults import DEFAULT_IMAGES
from testsupport.engine import Directory, ImageShape

# nginx:1.28.0-alpine (nginx/docker-nginx, stable/alpine at its 1.28.0 build commit 7f1d49f6):
# `addgroup -g 101 -S nginx && adduser -S -D -H -u 101 -h /var/cache/nginx … -G nginx nginx`;
# /var/cache/nginx is made by nginx.org's package as root (0755) and no line chowns it. The edge's
# volumes meet exactly these. (nginx itself is not in it: the edge's config runs in real nginx
# elsewhere, tests/test_edge_nginx.py.)
NGINX = ImageShape(users={"nginx": (101, 101)}, directories=[Directory("/var/cache/nginx")],
                   cmd=("nginx", "-g", "daemon off;"))

# redis:7.4.5-alpine (redis/docker-library-redis 7.4/alpine; the 7.4.5 commit 732a2608 was not
# readable, so 7.4.3's Dockerfile 0642e861 and the entrypoint unchanged since 0f2bb676, 2022):
# `addgroup -S -g 1000 redis; adduser -S -G redis -u 999 redis`; `mkdir /data && chown
# redis:redis /data`; `VOLUME /data`; `WORKDIR /data`; `ENTRYPOINT ["docker-entrypoint.sh"]`;
# `CMD ["redis-server"]`. The entrypoint's behaviour, in our words below: a first argument that
# is an option or a .conf file means redis-server; as root it gives the working directory's
# files to redis and drops to it (gosu: not reproduced, the stacks run it as 999); and it sets
# umask 0077 when it finds 0022, so Redis writes its RDB and AOF files 0600.
# The server is Debian's redis-server (7.0), with redis-cli for the health check.
REDIS_ENTRYPOINT = """#!/bin/sh
set -e
case "$1" in -*|*.conf) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ] && [ "$(id -u)" = 0 ]; then
    echo "stand-in: the official image drops from root to redis here (gosu); run it as 999" >&2
    exit 1
fi
if [ "$(umask)" = 0022 ]; then umask 0077; fi
exec "$@"
"""
REDIS = ImageShape(users={"redis": (999, 1000)}, directories=[Directory("/data", 999, 1000, 0o755)],
                   volumes=("/data",), workdir="/data", programs=("/usr/bin/redis-server", "/usr/bin/redis-cli"),
                   files={"/usr/local/bin/docker-entrypoint.sh": (REDIS_ENTRYPOINT, 0o755)},
                   entrypoint=("docker-entrypoint.sh",), cmd=("redis-server",))

# postgres:16.10-alpine (docker-library/postgres 16/alpine3.22, build commit 5ec89312):
# `addgroup -g 70 -S postgres; adduser -u 70 -S -D -G postgres -H -h /var/lib/postgresql postgres`;
# `install --directory --owner postgres --group postgres --mode 1777 /var/lib/postgresql`;
# `mkdir /docker-entrypoint-initdb.d`; `install … --mode 3777 /var/run/postgresql`;
# `install … --mode 1777 "$PGDATA"` (/var/lib/postgresql/data); `VOLUME /var/lib/postgresql/data`.
# The server is not in it (PostgreSQL 16 runs in tests/test_postgres_server.py). For the
# project's Dockerfile, which builds FROM it, `apk` is a stand-in of ours: it admits `add` of the
# packages listed below at these versions (what Alpine 3.22 has) and installs stand-in programs
# that only print their version; the Dockerfile's own `install -d` lines run for real.
APK_WORLD = {"pgbackrest": "2.55.1", "curl": "8.14.1", "openssl": "3.5.1"}
APK = """#!/bin/sh
# Stand-in for Alpine's apk: `apk add [--no-cache] NAME[>=VERSION]...`, from the list in the image.
set -eu
[ "$1" = add ] || { echo "stand-in apk: only add" >&2; exit 1; }
shift
newer() { # is $1 >= $2, dotted numbers
    a="$1."; b="$2."
    while [ -n "$b" ]; do
        x="${a%%.*}"; y="${b%%.*}"; a="${a#*.}"; b="${b#*.}"
        [ "${x:-0}" -gt "$y" ] && return 0
        [ "${x:-0}" -lt "$y" ] && return 1
    done
    return 0
}
for spec in "$@"; do
    case "$spec" in --*) continue ;; esac
    name="${spec%%>=*}"; want=""; [ "$name" = "$spec" ] || want="${spec#*>=}"
    have="$(grep "^$name " /usr/lib/sos-apk/world | cut -d' ' -f2)" || { echo "ERROR: unable to select packages: $name" >&2; exit 1; }
    if [ -n "$want" ] && ! newer "$have" "$want"; then echo "ERROR: $name-$have is older than $want" >&2; exit 1; fi
    printf '#!/bin/sh\necho "%s %s (stand-in)"\n' "$name" "$have" > "/usr/bin/$name"
    chmod 0755 "/usr/bin/$name"
done
"""
POSTGRES = ImageShape(
    users={"postgres": (70, 70)},
    directories=[Directory("/var/lib/postgresql", 70, 70, 0o1777), Directory("/docker-entrypoint-initdb.d"),
                 Directory("/var/run/postgresql", 70, 70, 0o3777), Directory("/var/lib/postgresql/data", 70, 70, 0o1777),
                 Directory("/usr/bin")],
    volumes=("/var/lib/postgresql/data",),
    files={"/sbin/apk": (APK, 0o755),
           "/usr/lib/sos-apk/world": ("".join(f"{k} {v}\n" for k, v in APK_WORLD.items()), 0o644)},
    cmd=("postgres",))

# prom/prometheus:v3.5.0 (prometheus/prometheus v3.5.0, 8be3a956): busybox's nobody (65534);
# `WORKDIR /prometheus`; `RUN chown -R nobody:nobody /etc/prometheus /prometheus && chmod g+w
# /prometheus`; `USER nobody`; `VOLUME [ "/prometheus" ]`.
PROMETHEUS = ImageShape(users={"nobody": (65534, 65534)},
                        directories=[Directory("/etc/prometheus", 65534, 65534), Directory("/prometheus", 65534, 65534,
                                                                                           0o775)],
                        volumes=("/prometheus",), workdir="/prometheus", user="nobody")

# grafana/grafana:12.1.1 (grafana/grafana Dockerfile 78515af6 and packaging/docker/run.sh 07754534,
# the nearest readable): grafana is uid 472 in group root (0); DATA (/var/lib/grafana), LOGS,
# PLUGINS and PROVISIONING are `chown -R grafana:root` and `chmod -R 777`; `WORKDIR
# /usr/share/grafana`; `USER 472`; no VOLUME.
GRAFANA = ImageShape(users={"grafana": (472, 0)},
                     directories=[Directory("/var/lib/grafana", 472, 0, 0o777),
                                  Directory("/var/lib/grafana/plugins", 472, 0, 0o777),
                                  Directory("/var/log/grafana", 472, 0, 0o777),
                                  Directory("/etc/grafana/provisioning", 472, 0, 0o777),
                                  Directory("/usr/share/grafana")],
                     workdir="/usr/share/grafana", user="472")

# n8nio/n8n:1.123.5 (n8n-io/n8n docker/images/n8n, read at October 2025's b24276cf): node:alpine's
# `node` (1000:1000); `mkdir -p /home/node/.n8n && chown -R node:node /home/node`; `WORKDIR
# /home/node`; `USER node`; no VOLUME.
N8N = ImageShape(users={"node": (1000, 1000)},
                 directories=[Directory("/home/node", 1000, 1000), Directory("/home/node/.n8n", 1000, 1000)],
                 workdir="/home/node", user="node")

# minio/minio:RELEASE.2025-04-22T22-12-26Z (minio/minio Dockerfile.release at the tag, 0d7408fc):
# root; `VOLUME ["/data"]`; no /data directory of its own (the volume makes it).
MINIO = ImageShape(volumes=("/data",), cmd=("minio",))

# The pinned reference each shape stands in for.
SHAPES = {DEFAULT_IMAGES["nginx"]: NGINX, DEFAULT_IMAGES["redis"]: REDIS, DEFAULT_IMAGES["postgres"]: POSTGRES,
          DEFAULT_IMAGES["prometheus"]: PROMETHEUS, DEFAULT_IMAGES["grafana"]: GRAFANA, DEFAULT_IMAGES["n8n"]: N8N,
          DEFAULT_IMAGES["minio"]: MINIO}
