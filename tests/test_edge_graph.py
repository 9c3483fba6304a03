"""The way in, as registered: Cloudflare in front of staging and production, the origin's TLS,
and the security group that only Cloudflare can pass."""

from __future__ import annotations

import json

import pytest

from components.cloudflare_edge import STATIC_CACHE_EXPRESSION, zone_settings
from configs import edge_release
from offline import canned, harness
from offline.harness import Secret, unwrap
from testsupport.plans import edge_release_files, plan_for

HOSTS = {
    "staging": ["staging.storiesofsoftware.com", "www.staging.storiesofsoftware.com",
                "api.staging.storiesofsoftware.com", "n8n.staging.storiesofsoftware.com",
                "grafana.staging.storiesofsoftware.com"],
    "production": ["storiesofsoftware.com", "www.storiesofsoftware.com", "api.storiesofsoftware.com",
                   "n8n.storiesofsoftware.com", "grafana.storiesofsoftware.com"],
}


def test_security_group_admits_web_traffic_only_from_cloudflare(cloud_plan):
    web = {(r.inputs["fromPort"], r.inputs.get("cidrIpv4") or r.inputs.get("cidrIpv6"))
           for r in cloud_plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")
           if r.inputs["fromPort"] in (80, 443)}
    expected = {(port, cidr) for port in (80, 443) for cidr in canned.CF_IPV4 + canned.CF_IPV6}
    assert web == expected
    assert not any(cidr in ("0.0.0.0/0", "::/0") for _, cidr in web)
    (call,) = [a for tok, a in cloud_plan.invokes if tok == "cloudflare:index/getIpRanges:getIpRanges"]
    assert call == {} or "networks" not in call


def test_zone_is_looked_up_by_name(cloud_plan):
    (call,) = [a for tok, a in cloud_plan.invokes if tok == "cloudflare:index/getZone:getZone"]
    assert call["filter"]["name"] == "storiesofsoftware.com"
    assert unwrap(cloud_plan.outputs["cloudflareZoneId"]) == canned.ZONE_ID


def test_proxied_dns_records_for_every_host(cloud_plan):
    records = cloud_plan.of_type("cloudflare:index/dnsRecord:DnsRecord")
    assert sorted(r.inputs["name"] for r in records) == sorted(HOSTS[cloud_plan.stack])
    for r in records:
        assert r.inputs["type"] == "A" and r.inputs["content"] == canned.EIP
        assert r.inputs["proxied"] is True and r.inputs["ttl"] == 1
        assert r.inputs["zoneId"] == canned.ZONE_ID


def test_origin_certificate_from_cloudflares_origin_ca_with_a_secret_key(cloud_plan):
    cert = cloud_plan.one("cloudflare:index/originCaCertificate:OriginCaCertificate")
    domain = HOSTS[cloud_plan.stack][0]
    assert cert.inputs["hostnames"] == [domain, f"*.{domain}"]
    assert cert.inputs["requestType"] == "origin-ecc"
    key = cloud_plan.one("tls:index/privateKey:PrivateKey", "cdn-origin-key")
    assert "privateKeyPem" in key.additional_secret_outputs
    csr = cloud_plan.one("tls:index/certRequest:CertRequest", "cdn-origin-csr")
    assert isinstance(csr.inputs["privateKeyPem"], Secret)
    # The key reaches nginx inside the edge release, whose bundle is secret as a whole.
    command, files = edge_release_files(cloud_plan)
    assert isinstance(command.inputs["stdin"], Secret)
    assert files[edge_release.KEY_FILE].mode == 0o400
    assert files[edge_release.KEY_FILE].content == canned._pem("PRIVATE KEY", "cdn-origin-key")


def test_authenticated_origin_pulls_per_hostname_with_the_stacks_own_ca(cloud_plan):
    upload = cloud_plan.one("cloudflare:index/authenticatedOriginPullsHostnameCertificate:"
                            "AuthenticatedOriginPullsHostnameCertificate")
    assert isinstance(upload.inputs["privateKey"], Secret)
    client = cloud_plan.one("tls:index/locallySignedCert:LocallySignedCert")
    assert "client_auth" in client.inputs["allowedUses"]
    ca = cloud_plan.one("tls:index/selfSignedCert:SelfSignedCert", "cdn-pull-ca")
    assert ca.inputs["isCaCertificate"] is True
    pulls = cloud_plan.one("cloudflare:index/authenticatedOriginPulls:AuthenticatedOriginPulls")
    assert sorted(c["hostname"] for c in pulls.inputs["configs"]) == sorted(HOSTS[cloud_plan.stack])
    assert all(c["enabled"] is True for c in pulls.inputs["configs"])
    # nginx trusts exactly that CA.
    _, files = edge_release_files(cloud_plan)
    assert files[edge_release.CLIENT_CA_FILE].content == canned._pem("CERTIFICATE", "cdn-pull-ca")


def test_zone_settings_and_cache_rule_belong_to_the_stack_at_the_zone_apex():
    production, staging = plan_for("production"), plan_for("staging")
    settings = {r.inputs["settingId"]: r.inputs["value"]
                for r in production.of_type("cloudflare:index/zoneSetting:ZoneSetting")}
    assert settings["ssl"] == "strict"
    assert settings["min_tls_version"] == "1.2"
    assert settings["tls_1_3"] == "on"
    assert settings["always_use_https"] == "on"
    assert settings["brotli"] == "on"
    hsts = json.loads(settings["security_header"]) if isinstance(settings["security_header"], str) \
        else settings["security_header"]
    assert hsts["strict_transport_security"]["enabled"] is True
    assert settings.keys() == zone_settings().keys()
    (rules,) = production.of_type("cloudflare:index/ruleset:Ruleset")
    assert rules.inputs["phase"] == "http_request_cache_settings"
    (rule,) = rules.inputs["rules"]
    assert rule["expression"] == STATIC_CACHE_EXPRESSION and rule["actionParameters"]["cache"] is True
    # A year for the asset; an error in its place (a 404 mid-rollout, the edge's 503) is not kept.
    ttl = rule["actionParameters"]["edgeTtl"]
    assert (ttl["mode"], ttl["default"]) == ("override_origin", 31536000)
    assert ttl["statusCodeTtls"] == [{"value": -1, "statusCodeRange": {"from": 400, "to": 599}}]
    # staging lives under production's zone: it must not fight over zone-wide settings.
    assert not staging.of_type("cloudflare:index/zoneSetting:ZoneSetting")
    assert not staging.of_type("cloudflare:index/ruleset:Ruleset")


def test_a_domain_outside_the_zone_is_refused():
    with pytest.raises(Exception, match="storiesofsoftware:cloudflareZone on stack staging"):
        harness.run("staging", overrides={"domain": "staging.example.org"})


def test_cloudflare_uses_an_explicit_provider_without_a_token_in_state(cloud_plan):
    provider = cloud_plan.one("pulumi:providers:cloudflare")
    assert "apiToken" not in provider.inputs and "apiKey" not in provider.inputs
    for r in cloud_plan.resources:
        if r.type.startswith("cloudflare:index/"):
            assert r.provider_urn == provider.urn


def test_dev_uses_a_self_signed_certificate_on_localhost():
    plan = plan_for("dev")
    cert = plan.one("tls:index/selfSignedCert:SelfSignedCert")
    assert cert.inputs["dnsNames"] == ["localhost", "www.localhost", "api.localhost",
                                       "n8n.localhost", "grafana.localhost"]
    assert "server_auth" in cert.inputs["allowedUses"]
    edge = plan.one("docker:index/container:Container", "edge-svc")
    assert {p["ip"] for p in edge.inputs["ports"]} == {"127.0.0.1"}
