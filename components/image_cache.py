"""The cluster's images through ECR's pull-through cache (issue 26, item 6; configs/images.py
says why and which upstreams).

Per upstream the stack's images use: one pull-through cache rule under the stack's own prefix
(rules are unique per account and region), a repository creation template (the cached
repositories are created by ECR at the first pull, not by Pulumi: the template gives them a
lifecycle) and, for an upstream that needs them, the `registry` setting's credentials in a
Secrets Manager secret named `ecr-pullthroughcache/...` (ECR reads it with its service-linked
role, AWSServiceRoleForECRPullThroughCache). An image that is pulled directly with those
credentials gets them as the task's `repositoryCredentials`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_aws as aws

from configs import images
from settings import Registry

# ECR fetches the upstream's image at the first pull, and keeps every tag pulled since: the
# cached repository keeps the newest ones. An expired image is fetched again by tag, but a
# deployment's tasks pull the digest ECS resolved at deploy time, and a pull by digest does not
# fill the cache (aws/containers-roadmap#2837): enough are kept that a running deploy's stays.
KEEP_IMAGES = 30


@dataclass(frozen=True)
class ImagePull:
    """What a task definition needs to pull one image."""

    image: pulumi.Input[str]  # the URI the task definition names
    # The cached repositories the execution role may create and import into (ARN pattern).
    cache_repositories: pulumi.Input[str] | None = None
    # A Secrets Manager secret with the registry's username and password (repositoryCredentials).
    credentials_arn: pulumi.Input[str] | None = None
    # The rule, template and credentials: a task that pulls before they exist fails to start.
    ready: Sequence[pulumi.Resource] = ()


@dataclass
class ImageCacheArgs:
    namespace: str  # the stack's prefix (sos-production)
    region: str
    images: Sequence[str]  # every image the stack's tasks run
    registry: Registry | None
    recovery_window_days: int


def lifecycle_policy(keep: int = KEEP_IMAGES) -> str:
    return json.dumps({"rules": [{
        "rulePriority": 1, "description": f"keep the {keep} newest images of each cached repository",
        "selection": {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": keep},
        "action": {"type": "expire"}}]})


def execution_pull_policy(repositories_arn: str) -> str:
    """What the cache asks of the caller at a first pull, beyond the managed execution policy's
    BatchGetImage (ECR user guide, "IAM permissions required to sync an upstream registry")."""
    return json.dumps({"Version": "2012-10-17", "Statement": [{
        "Sid": "PullThroughCache", "Effect": "Allow",
        "Action": ["ecr:BatchImportUpstreamImage", "ecr:CreateRepository"], "Resource": repositories_arn}]})


class ImageCache(pulumi.ComponentResource):
    registry: pulumi.Output[str]  # <account>.dkr.ecr.<region>.amazonaws.com

    def __init__(self, name: str, args: ImageCacheArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("storiesofsoftware:platform:ImageCache", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self._args = args
        token = args.registry.token if args.registry is not None else None
        credentialed = args.registry.server if args.registry is not None and token is not None else None
        self._routes = {image: images.route(image, credentialed) for image in args.images}
        account = aws.get_caller_identity_output(opts=pulumi.InvokeOutputOptions(parent=self)).account_id
        self.registry = account.apply(lambda a: f"{a}.dkr.ecr.{args.region}.amazonaws.com")
        self._repositories = account.apply(lambda a: f"arn:aws:ecr:{args.region}:{a}:repository/{args.namespace}/*")

        def credentials(key: str, prefix: str, password_field: str) -> tuple[aws.secretsmanager.Secret,
                                                                             aws.secretsmanager.SecretVersion]:
            assert args.registry is not None and token is not None
            secret = aws.secretsmanager.Secret(
                f"{name}-{key}-credentials", name_prefix=prefix,
                description=f"{args.namespace}: {args.registry.server} credentials for image pulls",
                recovery_window_in_days=args.recovery_window_days, opts=child)
            version = aws.secretsmanager.SecretVersion(
                f"{name}-{key}-credentials-value", secret_id=secret.id,
                secret_string=pulumi.Output.secret(token).apply(lambda t, user=args.registry.username: json.dumps(
                    {"username": user, password_field: t})), opts=child)
            self._ready.append(version)
            return secret, version

        self._ready: list[pulumi.Resource] = []
        upstreams = sorted({r.upstream for r in self._routes.values() if r.upstream is not None}, key=lambda u: u.key)
        for upstream in upstreams:
            prefix = images.cache_prefix(args.namespace, upstream)
            secret, version = (credentials(upstream.key, f"ecr-pullthroughcache/{args.namespace}-{upstream.key}-",
                                           "accessToken") if upstream.credentials else (None, None))
            self._ready.append(aws.ecr.RepositoryCreationTemplate(
                f"{name}-{upstream.key}-template", prefix=prefix, applied_fors=["PULL_THROUGH_CACHE"],
                description=f"{args.namespace}: images cached from {upstream.url}",
                image_tag_mutability="MUTABLE", lifecycle_policy=lifecycle_policy(),
                encryption_configurations=[aws.ecr.RepositoryCreationTemplateEncryptionConfigurationArgs(
                    encryption_type="AES256")], opts=child))
            self._ready.append(aws.ecr.PullThroughCacheRule(
                f"{name}-{upstream.key}", ecr_repository_prefix=prefix, upstream_registry_url=upstream.url,
                credential_arn=secret.arn if secret is not None else None,
                # ECR reads the secret as it creates the rule (UnableToAccessSecretException).
                opts=pulumi.ResourceOptions(parent=self, depends_on=[version] if version is not None else [])))
        self._direct_credentials = (credentials("direct", f"{args.namespace}/registry-", "password")[0]
                                    if any(r.credentials for r in self._routes.values()) else None)
        self.register_outputs({})

    def route(self, image: str) -> images.Route:
        if image not in self._routes:
            raise ValueError(f"{image}: not among the images the cache was built for ({', '.join(self._routes)})")
        return self._routes[image]

    def pull(self, image: str) -> ImagePull:
        route = self.route(image)
        if route.upstream is None:
            return ImagePull(image=image, credentials_arn=self._direct_credentials.arn
                             if route.credentials and self._direct_credentials is not None else None,
                             ready=self._ready)
        return ImagePull(image=self.registry.apply(lambda r: route.uri(r, self._args.namespace)),
                         cache_repositories=self._repositories, ready=self._ready)
