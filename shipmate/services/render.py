"""`releases render`: the Kubernetes objects promoting a release would apply, as YAML
documents (like `helm template`), with every Secret value elided."""

from __future__ import annotations

from dataclasses import replace

from shipmate.runtimes.kubernetes import objects
from shipmate.services import releases
from shipmate.services.context import Context
from shipmate.services.promotions import desired_state, formation, manifest_of


def options(ctx: Context) -> objects.Options:
    return objects.Options(namespace_prefix=ctx.settings.namespace_prefix or ctx.settings.rack_name)


def render(ctx: Context, app: str, release_id: str) -> str:
    release, _ = releases.get_release(ctx, app, release_id)
    desired = desired_state(ctx, release, counts=formation(ctx, app))
    # Without a registry (a local rack) the images are named as the registry would hold
    # them, without its host.
    services = tuple(
        spec if spec.image else replace(spec, image=f"{app}:{spec.name}.{desired.build_id}")
        for spec in desired.services
    )
    desired = replace(desired, services=services)
    command = manifest_of(release).release
    return objects.to_yaml(objects.render(desired, options(ctx), command, reveal=False))
