"""Wiring: the Context of a rack, with the real store and runtime unless given others.

Every dependency is an argument whose default is the real one, so a use-case test builds the
same Context as the rack with a fake runtime (and a store of its own, if it likes).
"""

from __future__ import annotations

from shipmate.config import Settings
from shipmate.router.home import Paths as RouterPaths
from shipmate.router.remote import RemoteRoutes
from shipmate.router.routes import Routes
from shipmate.runtimes.base import AppEventSink, Runtime
from shipmate.runtimes.local.runtime import LocalRuntime
from shipmate.services import keys
from shipmate.services.context import Context
from shipmate.services.events import EventLog, Notifier
from shipmate.services.ports import StorePort
from shipmate.store.db import Store
from shipmate.store.keys import StoreKeys


def build_context(
    settings: Settings,
    *,
    store: StorePort | None = None,
    runtime: Runtime | None = None,
    routes: Routes | None = None,
) -> Context:
    """The Context of a rack on `settings`.

    `store`: an open store (default: `open_store(settings)`). `runtime`: default, the local
    runtime over `routes` (default: the router daemon of SHIPMATE_HOME); given a runtime,
    `routes` is not used.
    """
    settings.home.mkdir(parents=True, exist_ok=True)
    # The home holds the database, the secret key and the owner token: the rack's user only.
    settings.home.chmod(0o700)
    if store is None:
        store = open_store(settings)
    notifier = Notifier()
    if runtime is None and settings.runtime == "kubernetes":
        runtime = kubernetes_runtime(settings)
    if runtime is None and settings.runtime == "swarm":
        from shipmate.runtimes.swarm.runtime import SwarmRuntime

        if routes is None:
            routes = RemoteRoutes(RouterPaths(settings.home).socket)
        runtime = SwarmRuntime(settings.docker_host, routes)
        events = EventLog(store, runtime.name, notifier)
    elif runtime is None:
        events = EventLog(store, LocalRuntime.name, notifier)
        if routes is None:
            routes = RemoteRoutes(RouterPaths(settings.home).socket)
        runtime = LocalRuntime(settings.home, routes, events=_app_events(events))
    else:
        events = EventLog(store, runtime.name, notifier)
    return Context(settings, store, runtime, notifier, events)


def kubernetes_runtime(settings: Settings) -> Runtime:
    from shipmate.runtimes.kubernetes.objects import Options
    from shipmate.runtimes.kubernetes.runtime import KubernetesRuntime

    prefix = settings.namespace_prefix or settings.rack_name
    return KubernetesRuntime(None, Options(namespace_prefix=prefix), settings.kubeconfig)


def _app_events(events: EventLog) -> AppEventSink:
    def emit(app: str, obj: str, message: str) -> None:
        events.emit(app, obj, message)

    return emit


def open_store(settings: Settings) -> Store:
    """The state store of `settings`, migrated to the newest schema, with the rack's key ring
    checked against it (and what a stopped rack left half-done finished: see services.keys)."""
    store = Store(settings.database_url)
    try:
        store.migrate()
        store.keys = StoreKeys.load(settings.secret_key_file)
        keys.open_store(store)
    except BaseException:
        store.close()
        raise
    return store
