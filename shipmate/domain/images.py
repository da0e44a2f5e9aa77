"""Image names on container runtimes: one image per service of a build, named as Convox does."""

from __future__ import annotations


def image_ref(registry: str, app: str, service: str, build_id: str) -> str:
    """`<registry>/<app>:<service>.<BUILD ID>`, as the seed's
    `registry.host/convox/myapp:web.BABCDEFGHI`.

    One repository per app and one tag per service and build, so a rollback names an image
    that the registry already holds: it never rebuilds."""
    return f"{registry.rstrip('/')}/{app}:{service}.{build_id}"
