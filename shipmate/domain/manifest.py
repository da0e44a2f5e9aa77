"""The app manifest: `shipmate.yml`, or an unchanged Convox `convox.yml` (SPEC section 2).

Loading is strict about what shipmate honours (unknown keys and wrong types are errors naming
the file and the dotted key path) and lenient about what only Convox's cloud runtimes honour
(accepted and named in a warning), so that a Convox app deploys without edits.

This module is what the rest of shipmate imports; the parts live beside it:
`manifest_model` (the typed Manifest), `manifest_schema` (the keys each section may hold) and
`manifest_loader` (YAML text to a Manifest, with its error messages).
"""

from __future__ import annotations

from shipmate.domain.manifest_loader import find_manifest, load_manifest
from shipmate.domain.manifest_model import DEFAULT_DEADLINE, EnvVar, Health, Manifest, Service
from shipmate.domain.manifest_schema import MANIFEST_FILENAMES, SERVICE_NAME_RE

__all__ = [
    "DEFAULT_DEADLINE",
    "MANIFEST_FILENAMES",
    "SERVICE_NAME_RE",
    "EnvVar",
    "Health",
    "Manifest",
    "Service",
    "find_manifest",
    "load_manifest",
]
