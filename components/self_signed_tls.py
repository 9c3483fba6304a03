"""dev: a self-signed certificate for localhost and its subdomains, from pulumi-tls."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_tls as tls


@dataclass
class SelfSignedTlsArgs:
    domain: str
    # Named one by one: a wildcard over a single label (*.localhost) matches nothing in
    # browsers or OpenSSL.
    hostnames: list[str]


class SelfSignedTls(pulumi.ComponentResource):
    cert_pem: pulumi.Output[str]
    cert_expires: pulumi.Output[str]
    key_pem: pulumi.Output[str]

    def __init__(self, name: str, args: SelfSignedTlsArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:SelfSignedTls", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        key = tls.PrivateKey(f"{name}-key", algorithm="ECDSA", ecdsa_curve="P256", opts=child)
        cert = tls.SelfSignedCert(
            f"{name}-cert", private_key_pem=key.private_key_pem,
            subject=tls.SelfSignedCertSubjectArgs(common_name=args.domain, organization="Stories of Software dev"),
            dns_names=list(args.hostnames),
            validity_period_hours=8766, early_renewal_hours=30 * 24,
            allowed_uses=["digital_signature", "key_encipherment", "server_auth"], opts=child)
        self.cert_pem = cert.cert_pem
        self.cert_expires = cert.validity_end_time
        self.key_pem = pulumi.Output.secret(key.private_key_pem)
        self.register_outputs({})
