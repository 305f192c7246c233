"""The Ray head of a namespace: an existing cluster (`external`), a local head process (`local`),
or Kubernetes resources (`kubernetes`: a head Deployment or a KubeRay RayCluster).

Modules, each importing only those before it: `local_settings` and `ports` (pure), `spec` (`RayHead`),
`_process` and `head_process` (the local head's processes), `local` (the `LocalRayHead` dynamic
resource), `kubernetes` (manifests and resources), `deploy` (`deploy_ray_head`). Importing this
package is cheap: they load on first use, and none imports `ray` or `pulumi_kubernetes` at module level.
"""

from __future__ import annotations

from .._lazy import lazy_getattr

_LAZY = {
    "RayHead": "mixpeek_infra.ray.spec",
    "KubernetesRayHead": "mixpeek_infra.ray.spec",
    "RayHeadOutputs": "mixpeek_infra.ray.spec",
    "InvalidRayHead": "mixpeek_infra.ray.spec",
    "deploy_ray_head": "mixpeek_infra.ray.deploy",
    "deploy_shared_ray_head": "mixpeek_infra.ray.deploy",
    "default_ray_image": "mixpeek_infra.ray.spec",
    "LocalRayHead": "mixpeek_infra.ray.local",
    "LocalRayHeadProvider": "mixpeek_infra.ray.local",
}

__all__ = list(_LAZY)


__getattr__ = lazy_getattr("mixpeek_infra.ray", _LAZY, globals())
