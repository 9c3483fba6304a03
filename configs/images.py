"""Where the cluster's tasks pull each image from (issue 26, item 6): a pure function of the image
reference and the `registry` setting.

Fargate tasks sit in private subnets. An image pulled straight from its registry leaves through a
NAT gateway, so every task of the stack shares one or three public addresses, and Docker Hub
admits 10 anonymous pulls an hour per IPv4 address (docker/docs, "Docker Hub usage and rate
limits", since 2025): an autoscaling burst or a redeploy of n8n's three processes exhausts it.
ECR's pull-through cache instead fetches the image once into the account's private registry,
and the tasks pull it through the ECR interface endpoints the VPC already pays for.

ECR caches these upstreams (CreatePullThroughCacheRule, `upstreamRegistryUrl`); GitHub's,
GitLab's and Docker Hub's need credentials in a Secrets Manager secret named
`ecr-pullthroughcache/...`, which ECR reads with its own service-linked role. Docker Hub's
official images (`nginx`, `postgres`) need none: Docker publishes the same images on ECR Public
(`public.ecr.aws/docker/library/<name>`), which is cached without credentials.

An image whose upstream needs credentials that the stack does not have, or whose registry ECR
cannot cache, is pulled directly (with `repositoryCredentials` when it is the `registry`
setting's server) — except from Docker Hub, where an anonymous pull through the NAT is refused
(settings name the image and what to set).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# ECR's rule prefix: 2 to 30 characters (CreatePullThroughCacheRule's ecrRepositoryPrefix).
MAX_PREFIX = 30
DOCKER_HUB = "docker.io"


@dataclass(frozen=True)
class Upstream:
    """A registry ECR's pull-through cache can fetch from."""

    key: str  # the short name in the cache's repository prefix
    url: str  # CreatePullThroughCacheRule's upstreamRegistryUrl
    credentials: bool  # ECR needs a username and token for it


ECR_PUBLIC = Upstream("ecr-public", "public.ecr.aws", False)
# The registry host as an image reference names it -> the upstream ECR caches it from.
UPSTREAMS: dict[str, Upstream] = {
    "public.ecr.aws": ECR_PUBLIC,
    "quay.io": Upstream("quay", "quay.io", False),
    "registry.k8s.io": Upstream("k8s", "registry.k8s.io", False),
    "ghcr.io": Upstream("github", "ghcr.io", True),
    "registry.gitlab.com": Upstream("gitlab", "registry.gitlab.com", True),
    DOCKER_HUB: Upstream("docker-hub", "registry-1.docker.io", True),
}
# Registry hosts a `registry` setting may spell differently from an image reference.
ALIASES = {"index.docker.io": DOCKER_HUB, "registry-1.docker.io": DOCKER_HUB, "registry.hub.docker.com": DOCKER_HUB}


@dataclass(frozen=True)
class Reference:
    registry: str  # the registry host, docker.io for Docker Hub
    repository: str  # the path on it (`library/nginx` for an official image)
    tag: str  # tag, and `@digest` when one is pinned

    @property
    def official(self) -> bool:
        """One of Docker Hub's official images, which ECR Public also publishes."""
        return self.registry == DOCKER_HUB and self.repository.startswith("library/") \
            and self.repository.count("/") == 1


def parse(image: str) -> Reference:
    """Split an image reference as Docker does: a first path part with a dot, a colon or
    `localhost` is a registry host; otherwise the image is on Docker Hub."""
    name, at, digest = image.partition("@")
    path, _, tag = name.rpartition(":") if ":" in name.rsplit("/", 1)[-1] else (name, "", "")
    first, _, rest = path.partition("/")
    if rest and (re.search(r"[.:]", first) or first == "localhost"):
        registry, repository = ALIASES.get(first, first), rest
    else:
        registry, repository = DOCKER_HUB, path
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return Reference(registry, repository, f"{tag}{at}{digest}" if at else tag)


def registry_host(server: str) -> str:
    """The `registry` setting's server as a host (a URL or `host/path` is allowed there)."""
    host = re.sub(r"^[a-z]+://", "", server.strip().lower()).split("/", 1)[0]
    return ALIASES.get(host, host)


@dataclass(frozen=True)
class Route:
    """How a task's image reaches Fargate."""

    image: str  # the reference as the settings give it
    reference: Reference
    upstream: Upstream | None  # through the pull-through cache; None: straight from the registry
    repository: str  # the repository on the upstream (ECR Public's path for an official image)
    credentials: bool  # direct, with the `registry` setting's credentials (repositoryCredentials)

    def cache_repository(self, namespace: str) -> str:
        """The ECR repository the cache creates: `<namespace>/<upstream>/<repository>`."""
        assert self.upstream is not None
        return f"{cache_prefix(namespace, self.upstream)}/{self.repository}"

    def uri(self, registry: str, namespace: str) -> str:
        """What the task definition names: the cached copy in `registry` (the account's
        `<account>.dkr.ecr.<region>.amazonaws.com`), or the image itself."""
        if self.upstream is None:
            return self.image
        separator = "" if self.reference.tag.startswith("@") else ":"
        return f"{registry}/{self.cache_repository(namespace)}{separator}{self.reference.tag}"

    @property
    def anonymous_docker_hub(self) -> bool:
        """Straight from Docker Hub without credentials: the NAT's address shares 10 pulls an hour."""
        return self.upstream is None and self.reference.registry == DOCKER_HUB and not self.credentials


def cache_prefix(namespace: str, upstream: Upstream) -> str:
    """The stack's rule prefix for an upstream: rules are unique per account and region, and
    staging and production may share both."""
    prefix = f"{namespace}/{upstream.key}"
    if not 2 <= len(prefix) <= MAX_PREFIX:
        raise ValueError(f"ECR allows a pull-through cache prefix of 2 to {MAX_PREFIX} characters: {prefix!r}")
    return prefix


def route(image: str, credentialed_registry: str | None) -> Route:
    """Where `image` comes from, given the host the `registry` setting has credentials for."""
    ref = parse(image)
    if ref.official:
        # Docker's official images, as Docker publishes them on ECR Public: no credentials.
        return Route(image, ref, ECR_PUBLIC, f"docker/{ref.repository}", False)
    upstream = UPSTREAMS.get(ref.registry)
    has_credentials = credentialed_registry is not None and registry_host(credentialed_registry) == ref.registry
    if upstream is not None and upstream.credentials == has_credentials:
        return Route(image, ref, upstream, ref.repository, False)
    # Credentials ECR's rule for this upstream cannot carry (a private quay.io image: ECR caches
    # Quay without authentication), or none for an upstream that needs them: directly.
    return Route(image, ref, None, ref.repository, has_credentials)


def pinned_by_digest(route: Route) -> bool:
    """A cached image named by digest: ECR's pull-through cache does not fill from a pull by
    digest, with or without a tag (aws/containers-roadmap#2837), so its first pull fails."""
    return route.upstream is not None and "@" in route.reference.tag
