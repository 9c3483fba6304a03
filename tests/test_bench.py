"""The benchmarks' set-up, not their figures: the seed's nginx.conf is changed only where the
benchmark says it is, and both configurations are valid for the nginx that runs them."""

from __future__ import annotations

import subprocess

import crossplane

from bench import edge
from testsupport.edge import TestPki, nginx_binary
from testsupport.servers import free_port


def _directives(tree: list[dict]) -> list[tuple[str, tuple[str, ...]]]:
    out = []
    for node in tree:
        out.append((node["directive"], tuple(node["args"])))
        out += _directives(node.get("block", []))
    return out


def test_seed_is_changed_only_in_addresses_paths_user_and_rate_limits(tmp_path):
    work = tmp_path / "seed"
    work.mkdir()
    pki = TestPki(tmp_path, "storiesofsoftware.com")
    proxy, port, domain = edge.seed(work, pki, {"frontend": 1, "api": 2, "n8n": 3, "grafana": 4})
    proxy.stop()
    original = crossplane.parse(str(edge.SEED), single=True, comments=False, check_ctx=False,
                                check_args=False)["config"][0]["parsed"]
    changed = crossplane.parse(str(proxy.conf), single=True, comments=False, check_ctx=False,
                               check_args=False)["config"][0]["parsed"]
    allowed = {"listen", "server", "ssl_certificate", "ssl_certificate_key", "user", "error_log", "access_log",
               "pid", "include", "limit_req"}
    before = [d for d in _directives(original) if d[0] not in allowed]
    after = [d for d in _directives(changed) if d[0] not in allowed and not d[0].endswith("_temp_path")]
    assert before == after
    assert not [d for d in _directives(changed) if d[0] == "limit_req"]
    assert [d for d in _directives(original) if d[0] == "limit_req"], "the seed had limits to lift"
    assert domain == "storiesofsoftware.com" and port > 0


def test_both_benchmark_configurations_pass_nginx_t(tmp_path):
    pki = TestPki(tmp_path, "localhost")
    upstreams = {"frontend": free_port(), "api": free_port(), "n8n": free_port(), "grafana": free_port()}
    for name, build in (("ours", edge.ours), ("seed", edge.seed)):
        work = tmp_path / name
        work.mkdir()
        (work / "cache").mkdir()
        proxy, _, _ = build(work, pki, upstreams)
        proxy.stop()
        result = subprocess.run([nginx_binary(), "-t", "-c", str(proxy.conf), "-p", str(work)],
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr


def test_the_seed_copy_is_the_seed():
    shared = edge.ROOT.parent / "shared" / "baselines" / "seed_nginx.conf"
    if shared.exists():
        assert edge.SEED.read_bytes() == shared.read_bytes()
    assert "upstream frontend" in edge.SEED.read_text()


# ------------------------------------------------------------------------------ whole-host restore

def test_restore_runs_only_when_named_and_quick_means_the_small_sizes(monkeypatch, capsys):
    from bench import __main__ as cli
    from bench import ci, db, deploy, plan, restore

    called: list[tuple[str, tuple]] = []

    def fake(name: str):
        def run(*args: object) -> tuple:
            called.append((name, args))
            return ("text", f"{name}: ok") if name != "edge" else ("text", f"{name}: ok", {})
        return run

    for module, attr in ((plan, "run"), (edge, "measure"), (db, "run"), (deploy, "run"), (ci, "run"),
                         (restore, "run")):
        monkeypatch.setattr(module, attr, fake(module.__name__.rsplit(".", 1)[1]))
    assert cli.main([]) == 0
    assert "restore" not in [name for name, _ in called] and "ci" not in [name for name, _ in called]
    called.clear()
    assert cli.main(["--quick", "restore"]) == 0
    assert called == [("restore", tuple(restore.QUICK))]
    assert "restore: ok" in capsys.readouterr().out


def test_restore_check_counts_lost_writes_and_finds_holes_strangers_and_changed_times():
    from bench.restore import _check_writes

    acked = {1: "10.0", 2: "10.1", 3: "10.2", 4: "10.3"}
    assert _check_writes(acked, {1: "10.0", 2: "10.1"}) == (2, [])
    # The row whose acknowledgement the loss cut off may be there.
    assert _check_writes(acked, {**acked, 5: "10.4"}) == (0, [])
    lost, problems = _check_writes(acked, {1: "10.0", 3: "9.9", 7: "11.0"})
    assert lost == 0
    assert problems == ["1 rows restored that were never written",
                        "2 acknowledged rows missing before the recovery point",
                        "1 rows restored with another time"]

