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

# The pinned reference each shape stands in for.
SHAPES = {DEFAULT_IMAGES["nginx"]: NGINX, DEFAULT_IMAGES["redis"]: REDIS}
