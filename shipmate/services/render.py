"""`releases render`: what promoting a release would run, for the entrypoint to print as the
Kubernetes objects (shipmate/runtimes/kubernetes/objects.py) it would apply."""

from __future__ import annotations

from dataclasses import replace

from shipmate.runtimes.base import DesiredState
from shipmate.services import releases
from shipmate.services.context import Context
from shipmate.services.promotions import desired_state, formation, manifest_of


def namespace_prefix(ctx: Context) -> str:
    return ctx.settings.namespace_prefix or ctx.settings.rack_name


def render_inputs(ctx: Context, app: str, release_id: str) -> tuple[DesiredState, str | None]:
    """The desired state of `release_id` with the app's formation, and its release command."""
    release, _ = releases.get_release(ctx, app, release_id)
    desired = desired_state(ctx, release, counts=formation(ctx, app))
    # Without a registry (a local rack) the images are named as the registry would hold
    # them, without its host.
    services = tuple(
        spec if spec.image else replace(spec, image=f"{app}:{spec.name}.{desired.build_id}")
        for spec in desired.services
    )
    return replace(desired, services=services), manifest_of(release).release
