"""staging/production: Cloudflare in front. DNS, the origin's certificate, Authenticated Origin
Pulls, and (for the stack that owns the zone apex) the zone's TLS settings and cache rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_cloudflare as cloudflare
import pulumi_tls as tls

from configs import nginx as nginx_config

# 15 years: Cloudflare's longest Origin CA validity; the origin is reached only through it.
ORIGIN_CA_VALIDITY_DAYS = 5475


@dataclass(frozen=True)
class IpRanges:
    ipv4: tuple[str, ...]
    ipv6: tuple[str, ...]

    @property
    def all(self) -> tuple[str, ...]:
        return self.ipv4 + self.ipv6


def ip_ranges(provider: cloudflare.Provider) -> IpRanges:
    """Cloudflare's published ranges, read at every preview and update."""
    result = cloudflare.get_ip_ranges(opts=pulumi.InvokeOptions(provider=provider))
    return IpRanges(tuple(result.ipv4_cidrs), tuple(result.ipv6_cidrs))


def zone_settings() -> dict[str, object]:
    return {
        "ssl": "strict",
        "min_tls_version": "1.2",
        "tls_1_3": "on",
        "always_use_https": "on",
        "automatic_https_rewrites": "on",
        "brotli": "on",
        "security_header": {"strict_transport_security": {
            "enabled": True, "max_age": nginx_config.HSTS_MAX_AGE, "include_subdomains": True,
            "nosniff": True, "preload": False}},
    }


STATIC_CACHE_EXPRESSION = 'starts_with(http.request.uri.path, "/_next/static/")'


@dataclass
class CloudflareEdgeArgs:
    zone: str
    domain: str
    hostnames: Sequence[str]
    # The origin: the host's Elastic IP (an A record) or the load balancer's DNS name (a CNAME,
    # which Cloudflare proxies like any other). None: `point_at` names it later (the load
    # balancer needs this component's certificate first).
    origin: pulumi.Input[str] | None
    manage_zone: bool
    origin_is_hostname: bool = False


class CloudflareEdge(pulumi.ComponentResource):
    zone_id: pulumi.Output[str]
    origin_cert_pem: pulumi.Output[str]
    origin_cert_expires: pulumi.Output[str]
    origin_key_pem: pulumi.Output[str]
    client_ca_pem: pulumi.Output[str]

    def __init__(self, name: str, args: CloudflareEdgeArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:CloudflareEdge", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        zone = cloudflare.get_zone_output(
            filter=cloudflare.GetZoneFilterArgs(name=args.zone, match="all"),
            opts=pulumi.InvokeOutputOptions(parent=self))
        self.zone_id = zone.zone_id

        self._record_prefix, self._hostnames = name, list(args.hostnames)
        if args.origin is not None:
            self.point_at(args.origin, is_hostname=args.origin_is_hostname)

        # The origin's certificate: a key that never leaves the stack, certified by Cloudflare's
        # Origin CA for the stack's domain and every name one label below it (*.<domain>).
        origin_key = tls.PrivateKey(f"{name}-origin-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        csr = tls.CertRequest(
            f"{name}-origin-csr", private_key_pem=origin_key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=args.domain, organization="Stories of Software"),
            dns_names=[args.domain, f"*.{args.domain}"], opts=child)
        origin_cert = cloudflare.OriginCaCertificate(
            f"{name}-origin-cert", csr=csr.cert_request_pem,
            hostnames=[args.domain, f"*.{args.domain}"], request_type="origin-ecc",
            requested_validity=ORIGIN_CA_VALIDITY_DAYS, opts=child)
        self.origin_cert_pem = origin_cert.certificate
        # For the certificate-expiry alert.
        self.origin_cert_expires = origin_cert.expires_on
        self.origin_key_pem = pulumi.Output.secret(origin_key.private_key_pem)

        # Authenticated Origin Pulls per hostname, with a CA of this stack's own: the origin
        # accepts only Cloudflare presenting this certificate, not any Cloudflare customer.
        ca_key = tls.PrivateKey(f"{name}-pull-ca-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        ca_cert = tls.SelfSignedCert(
            f"{name}-pull-ca", private_key_pem=ca_key.private_key_pem, is_ca_certificate=True,
            subject=tls.SelfSignedCertSubjectArgs(common_name=f"{args.domain} origin pull CA"),
            validity_period_hours=10 * 8766, allowed_uses=["cert_signing", "crl_signing"],
            opts=child)
        client_key = tls.PrivateKey(f"{name}-pull-client-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        client_csr = tls.CertRequest(
            f"{name}-pull-client-csr", private_key_pem=client_key.private_key_pem,
            subject=tls.CertRequestSubjectArgs(common_name=f"cloudflare origin pull for {args.domain}"),
            opts=child)
        client_cert = tls.LocallySignedCert(
            f"{name}-pull-client", cert_request_pem=client_csr.cert_request_pem,
            ca_private_key_pem=ca_key.private_key_pem, ca_cert_pem=ca_cert.cert_pem,
            validity_period_hours=5 * 8766, early_renewal_hours=90 * 24,
            allowed_uses=["digital_signature", "client_auth"], opts=child)
        uploaded = cloudflare.AuthenticatedOriginPullsHostnameCertificate(
            f"{name}-pull-cert", zone_id=self.zone_id, certificate=client_cert.cert_pem,
            private_key=pulumi.Output.secret(client_key.private_key_pem), opts=child)
        cloudflare.AuthenticatedOriginPulls(
            f"{name}-pulls", zone_id=self.zone_id,
            configs=[cloudflare.AuthenticatedOriginPullsConfigArgs(hostname=h, cert_id=uploaded.id, enabled=True)
                     for h in args.hostnames],
            opts=child)
        self.client_ca_pem = ca_cert.cert_pem

        if args.manage_zone:
            # Zone-wide: managed by the one stack whose domain is the zone apex, so two stacks
            # never fight over them.
            for setting, value in zone_settings().items():
                cloudflare.ZoneSetting(f"{name}-setting-{setting.replace('_', '-')}", zone_id=self.zone_id,
                                       setting_id=setting, value=value, opts=child)
            cloudflare.Ruleset(
                f"{name}-cache-rules", zone_id=self.zone_id, kind="zone",
                phase="http_request_cache_settings", name="storiesofsoftware cache rules",
                description="Content-hashed Next.js assets: cache at the edge for a year",
                rules=[cloudflare.RulesetRuleArgs(
                    action="set_cache_settings", expression=STATIC_CACHE_EXPRESSION,
                    description="/_next/static/ is immutable", enabled=True,
                    action_parameters=cloudflare.RulesetRuleActionParametersArgs(
                        cache=True,
                        edge_ttl=cloudflare.RulesetRuleActionParametersEdgeTtlArgs(
                            mode="override_origin", default=31536000,
                            # The year is for the asset, never for an error in its place: a
                            # replica of the previous release answers 404 for a new asset
                            # during a rollout, the edge 503 while the site is down. -1 is
                            # no-store.
                            status_code_ttls=[cloudflare.RulesetRuleActionParametersEdgeTtlStatusCodeTtlArgs(
                                value=-1, status_code_range=cloudflare
                                .RulesetRuleActionParametersEdgeTtlStatusCodeTtlStatusCodeRangeArgs(
                                    from_=400, to=599))]),
                        browser_ttl=cloudflare.RulesetRuleActionParametersBrowserTtlArgs(
                            mode="respect_origin")),
                )], opts=child)
        self.register_outputs({})

    def point_at(self, origin: pulumi.Input[str], *, is_hostname: bool) -> None:
        """Every host name, proxied by Cloudflare to `origin`."""
        for host in self._hostnames:
            cloudflare.DnsRecord(
                f"{self._record_prefix}-dns-{host.replace('.', '-')}", zone_id=self.zone_id, name=host,
                type="CNAME" if is_hostname else "A", content=origin, proxied=True, ttl=1,
                comment="storiesofsoftware: proxied to the origin",
                # A CNAME cannot stand beside an A record of the same name: a switch of placement
                # (A to the host, CNAME to the load balancer) replaces the record delete-first.
                opts=pulumi.ResourceOptions(parent=self, delete_before_replace=True))
