"""The stack program: Pulumi stack config -> one `Namespace` per Create Namespace body.

The config is parsed by `mixpeek_infra.stackconfig` (the same parser `mixpeek-infra validate`
uses; its docstring lists the keys): every problem stops the run, naming its config path,
before any resource is registered. This module only turns the parsed config into resources.
"""

from __future__ import annotations

import gc
from typing import Any, NamedTuple

import pulumi

from .redact import redact_url
from .settings import shared_settings
from .stackconfig import NamespaceEntry, QdrantSettings, StackConfig, parse_stack_config
from .state_names import SHARED_RAY_NAME, kubernetes_name, ray_head_name
from .vocabulary import STACK_PROJECT


class StackConfigError(pulumi.RunError):
    """Stack config that cannot be deployed; the message lists every problem with its path under the
    project's config (`ray.mode`, `namespaces[0].ray.num_cpus`).

    Credentials inside URLs (`user:password@`) are redacted from the message.
    """

    def __init__(self, problems: list[Any]):
        self.problems = list(problems)
        super().__init__(
            redact_url("invalid stack config:\n" + "\n".join(f"  {p.path}: {p.message}" for p in self.problems))
        )


def read_stack_config() -> StackConfig:
    """The project's stack config as the engine passed it, parsed; raises `StackConfigError`."""
    from pulumi.runtime.config import CONFIG, get_config_env, get_config_secret_keys_env, is_config_secret

    prefix = f"{STACK_PROJECT}:"
    every = {**get_config_env(), **CONFIG.get()}  # what `pulumi.Config().get` reads, in its order
    values = {k[len(prefix) :]: v for k, v in every.items() if k.startswith(prefix)}
    env_secrets = set(get_config_secret_keys_env() or ())  # the engine may pass `null`
    secure = {k for k in values if is_config_secret(prefix + k) or prefix + k in env_secrets}
    config = parse_stack_config(values, secure=secure)
    if config.problems:
        raise StackConfigError(list(config.problems))
    return config


def _target(settings: QdrantSettings | None, api_key: pulumi.Input[str] | None):
    """A QdrantTarget from parsed settings (relative embedded paths resolve against the project root)."""
    from .qdrant.target import QdrantTarget

    if settings is None:
        return None  # the request's own infrastructure.qdrant_url
    if settings.url:
        return QdrantTarget(
            url=settings.url, api_key=api_key, timeout=settings.timeout, prefer_grpc=settings.prefer_grpc
        )
    return QdrantTarget(path=settings.path, timeout=settings.timeout)


def run() -> dict[str, Any]:
    """The stack program's body (the root __main__.py calls this); returns the namespaces by name."""
    from .namespace import NAMESPACE_TYPE, Namespace, NamespaceArgs
    from .ray.spec import RayHead

    # Each namespace keeps ~400 Outputs alive until the program ends; with the default third GC
    # threshold, full collections rescan them ever more often and cost per namespace grows with N.
    gen0, gen1, _ = gc.get_threshold()
    gc.set_threshold(gen0, gen1, 1000)
    config = read_stack_config()
    secrets = pulumi.Config()
    api_key = secrets.get_secret("qdrantApiKey")
    token = secrets.get_secret("rayAuthToken")

    # Each namespace's own or default head (None: the shared head or its request's ray_head_node_url), parsed
    # once by the stack config; Kubernetes heads take the stack's token here.
    rays: list[Any] = []
    for entry in config.namespaces:
        use, spec = config.head_of(entry)
        rays.append(spec.with_auth_token(token) if use in ("own", "default") else None)
    shared_spec = config.default_head.with_auth_token(token) if config.runs_shared_head else None
    heads = [
        _KubernetesHead(e.index, e.key, ray_head_name(e.key), ray, e.plan.namespace_name)
        for e, ray in zip(config.namespaces, rays)
        if ray is not None and ray.mode == "kubernetes"
    ]
    if shared_spec is not None and shared_spec.mode == "kubernetes":
        heads.insert(0, _KubernetesHead(None, None, SHARED_RAY_NAME, shared_spec, SHARED_RAY_NAME))

    # Nothing was registered up to here: every problem above stops the run before any resource exists.
    owned = _stack_kubernetes_namespaces(heads, NAMESPACE_TYPE)
    if owned:
        from .ray.kubernetes import in_owned_namespace

        def tenant(ray):
            owner = owned.get(ray.k8s.namespace) if ray is not None and ray.mode == "kubernetes" else None
            return ray if owner is None else in_owned_namespace(ray, owner)

        rays, shared_spec = [tenant(ray) for ray in rays], tenant(shared_spec)
    shared_head = None
    if config.shared_url is not None:
        shared_head = RayHead.external(config.shared_url)
    elif shared_spec is not None:
        shared_head = RayHead.external(_shared_cluster(shared_spec))

    namespaces: dict[str, Any] = {}
    for entry, ray in zip(config.namespaces, rays):
        if ray is None and config.head_of(entry)[0] == "shared":
            ray = shared_head
        target = config.target_of(entry)
        ns = Namespace(
            entry.key,
            NamespaceArgs(
                request=entry.request,
                qdrant=_target(target, api_key if config.gets_api_key(entry) else None),
                ray=ray,
                catalogue=config.catalogue,
                final_snapshot=target.final_snapshot if target else None,
                **shared_settings(entry.settings),
            ),
            opts=_options(entry),
        )
        pulumi.export(
            entry.plan.namespace_name,
            {
                "namespace_id": ns.namespace_id,
                "vector_inference_map": ns.vector_inference_map,
                "infrastructure": ns.infrastructure,
                "namespace": ns.namespace,
            },
        )
        namespaces[entry.plan.namespace_name] = ns
    return namespaces


def _options(entry: NamespaceEntry) -> pulumi.ResourceOptions | None:
    """`protect` and the aliases of earlier keys (`renamed_from`), so a rename replaces nothing."""
    if not entry.protect and not entry.renamed_from:
        return None
    return pulumi.ResourceOptions(
        protect=entry.protect or None, aliases=[pulumi.Alias(name=old) for old in entry.renamed_from] or None
    )


class _KubernetesHead(NamedTuple):
    """A Ray head of the stack on Kubernetes."""

    position: int | None  # its namespaces[position]; None for the stack's shared head
    key: str | None  # its Namespace component's resource name; None for the shared head
    name: str  # the head's resource name, which names its Kubernetes objects
    spec: Any  # its RayHead
    namespace_name: str


def _stack_kubernetes_namespaces(heads: list[_KubernetesHead], namespace_type: str) -> dict[str, pulumi.Resource]:
    """One stack-level Kubernetes Namespace per explicit namespace a head asks to create.

    The stack owns it, so removing one of its heads never deletes it. Aliases carry over the
    `Namespace` object a single head created before (`<head>-namespace`), so adopting it is no replace.
    """
    from .ray.kubernetes import deploy_kubernetes_namespace

    groups: dict[str, list[_KubernetesHead]] = {}
    for head in heads:
        if head.spec.k8s.namespace:
            groups.setdefault(head.spec.k8s.namespace, []).append(head)
    owned: dict[str, pulumi.Resource] = {}
    for namespace, group in groups.items():
        creators = [h for h in group if h.spec.k8s.create_namespace]
        if creators:
            aliases = [
                pulumi.Alias(
                    name=kubernetes_name(h.name, "namespace"),
                    parent=pulumi.ROOT_STACK_RESOURCE
                    if h.key is None
                    else pulumi.resource.create_urn(h.key, namespace_type),
                )
                for h in creators
            ]
            owned[namespace] = deploy_kubernetes_namespace(namespace, {h.spec.k8s.mode for h in group}, aliases=aliases)
    return owned


def _shared_cluster(spec) -> pulumi.Output[str]:
    """Run one Ray head for the stack's shared-tier namespaces; returns its URL."""
    from .namespace import shared_head_url

    return shared_head_url(SHARED_RAY_NAME, spec, "stack")
