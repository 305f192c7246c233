"""A `RayHead` as resources: `deploy_ray_head` for one namespace, `deploy_shared_ray_head` for a stack.

Both check the spec against the infrastructure plan first and raise `InvalidRayHead` before they
register anything, so bad input fails at preview. external: no resource, the URL passes through
(checked again when it is an Output); local: one `LocalRayHead`; kubernetes: see `.kubernetes`.
`.local` (pulumi.dynamic, dill) loads on the first local head.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from ..plan import InfrastructurePlan, NamespacePlan, plan_infrastructure
from ..problems import Problem
from ..schema import NamespaceInfrastructure
from .kubernetes import deploy_kubernetes_head
from .spec import InvalidRayHead, RayHead, RayHeadOutputs, ray_url_problem

__all__ = [
    "RayHeadOutputs",
    "SHARED_HEAD_INFRASTRUCTURE",
    "deploy_ray_head",
    "deploy_shared_ray_head",
    "shared_head_infrastructure",
]

#: The infrastructure of the stack's shared head unless given: CPU workers, autoscaling 1-10.
SHARED_HEAD_INFRASTRUCTURE: dict[str, Any] = {"compute_tier": "dedicated_cpu", "min_workers": 1, "max_workers": 10}


def deploy_ray_head(
    name: str, spec: RayHead, plan: NamespacePlan, namespace_id: pulumi.Input[str], parent: pulumi.Resource
) -> RayHeadOutputs:
    """Register the Ray head of the namespace `plan` as children of `parent`, named from `name`.

    Raises `InvalidRayHead` before registering anything when the spec and the plan disagree.
    """
    return _checked_deploy(name, spec, plan.infrastructure, plan.namespace_name, namespace_id, parent)


def shared_head_infrastructure(
    infrastructure: InfrastructurePlan | Mapping[str, Any] | None = None,
) -> InfrastructurePlan:
    """The infrastructure plan of a shared head: `infrastructure` as is, or its fields over the defaults."""
    if isinstance(infrastructure, InfrastructurePlan):
        return infrastructure
    given = NamespaceInfrastructure(**{**SHARED_HEAD_INFRASTRUCTURE, **(infrastructure or {})})
    return plan_infrastructure(given)[0]


def deploy_shared_ray_head(
    name: str,
    spec: RayHead,
    parent: pulumi.Resource | None = None,
    infrastructure: InfrastructurePlan | Mapping[str, Any] | None = None,
) -> RayHeadOutputs:
    """Register one Ray head that several namespaces share (the `shared` compute tier of a stack).

    Tied to no namespace: named `name`, labelled `mixpeek.io/namespace-id: shared`, and (KubeRay)
    sized by `infrastructure` (see `shared_head_infrastructure`).
    """
    return _checked_deploy(name, spec, shared_head_infrastructure(infrastructure), name, "shared", parent)


def _checked_deploy(
    name: str,
    spec: RayHead,
    infra: InfrastructurePlan,
    namespace_name: str,
    namespace_id: pulumi.Input[str],
    parent: pulumi.Resource | None,
) -> RayHeadOutputs:
    if not isinstance(spec, RayHead):
        raise InvalidRayHead([Problem("ray", f"expected a RayHead, got {type(spec).__name__}")])
    problems = spec.infrastructure_problems(infra, namespace_name)
    if problems:
        raise InvalidRayHead(problems)
    if spec.mode == "external":
        url = pulumi.Output.from_input(spec.url).apply(_checked_url)
        return RayHeadOutputs(ray_head_node_url=url, ray_dashboard_url=pulumi.Output.from_input(None), resources=[])
    if spec.mode == "local":
        from .local import LocalRayHead

        head = LocalRayHead(
            name,
            state_dir=spec.state_dir,
            namespace_id=namespace_id,
            num_cpus=spec.num_cpus,
            ready_timeout=spec.ready_timeout,
            stop_timeout=spec.stop_timeout,
            opts=pulumi.ResourceOptions(parent=parent),
        )
        return RayHeadOutputs(
            ray_head_node_url=head.ray_head_node_url, ray_dashboard_url=head.ray_dashboard_url, resources=[head]
        )
    if spec.k8s is None:  # RayHead refuses mode "kubernetes" without its settings
        raise ValueError(f"{name}: a Kubernetes Ray head without its settings")
    return deploy_kubernetes_head(name, spec.k8s, infra, namespace_name, namespace_id, parent)


def _checked_url(url: Any) -> str:
    problem = ray_url_problem(url)
    if problem is not None:
        raise InvalidRayHead([problem])
    return url
