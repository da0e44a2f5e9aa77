"""What a manifest may hold: the keys shipmate honours and those only Convox's cloud
runtimes do (accepted with a warning), per section, and the shapes of names and values."""

from __future__ import annotations

import re

SERVICE_NAME_RE = re.compile(r"[a-z][a-z0-9-]{0,29}")

MANIFEST_FILENAMES = ("shipmate.yml", "convox.yml")

TOP_KEYS = frozenset({"environment", "release", "services"})
TOP_IGNORED = frozenset(
    {
        "appSettings",
        "balancers",
        "certificate",
        "configs",
        "labels",
        "params",
        "resources",
        "timers",
    }
)
SERVICE_KEYS = frozenset(
    {
        "build",
        "command",
        "deployment",
        "domain",
        "environment",
        "health",
        "https",
        "port",
        "scale",
        "termination",
    }
)
SERVICE_IGNORED = frozenset(
    {
        "accessControl",
        "agent",
        "annotations",
        "certificate",
        "configMounts",
        "disableHostUsers",
        "dnsConfig",
        "dockerfile",
        "drain",
        "grpcHealthEnabled",
        "image",
        "ingressAnnotations",
        "init",
        "initContainer",
        "internal",
        "internalRouter",
        "labels",
        "lifecycle",
        "links",
        "liveness",
        "nodeAffinityLabels",
        "nodeSelectorLabels",
        "policies",
        "ports",
        "privileged",
        "resources",
        "singleton",
        "startupProbe",
        "sticky",
        "tags",
        "test",
        "timeout",
        "tls",
        "volumeOptions",
        "volumes",
        "whitelist",
    }
)
HEALTH_KEYS = frozenset({"path", "grace", "interval", "timeout"})
HEALTH_IGNORED = frozenset({"disable"})
BUILD_KEYS = frozenset({"path"})
BUILD_IGNORED = frozenset({"args", "manifest"})
SCALE_KEYS = frozenset({"count", "cpu", "memory"})
SCALE_IGNORED = frozenset({"gpu", "keda", "limit", "targets", "vpa"})
COUNT_KEYS = frozenset({"min", "max"})
PORT_KEYS = frozenset({"port", "scheme"})
DEPLOYMENT_KEYS = frozenset({"minimum", "maximum", "deadline", "watch"})
WATCH_KEYS = frozenset({"duration", "errors", "latency", "requests"})
TERMINATION_KEYS = frozenset({"grace"})

RANGE_RE = re.compile(r"(\d+)\s*-\s*(\d+)")
DIGITS_RE = re.compile(r"\d+")
