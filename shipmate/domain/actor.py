"""Who is acting: the name of the token behind the current request, or "system".

A ContextVar rather than a parameter threaded through every use case: the API's auth
dependency sets it once per request, and background work started from the request (a build,
a promotion) inherits it because asyncio tasks copy the context they were created in.
"""

from __future__ import annotations

from contextvars import ContextVar

SYSTEM = "system"

current_actor: ContextVar[str] = ContextVar("shipmate_actor", default=SYSTEM)

# The rack acting on its own judgement (an automatic rollback after a failed watch).
RACK = "rack"
