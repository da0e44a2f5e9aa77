"""Loading a manifest: YAML text to a Manifest, strict about what shipmate honours.

Unknown keys and wrong types are errors naming the file and the dotted key path; keys that
only Convox's cloud runtimes honour are accepted and named in a warning.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from shipmate.domain import manifest_schema as schema
from shipmate.domain.envs import KEY_RE
from shipmate.domain.errors import ManifestError
from shipmate.domain.manifest_model import DEFAULT_DEADLINE, EnvVar, Health, Manifest, Service
from shipmate.domain.traffic import WatchRule


def find_manifest(directory: Path) -> tuple[str, str]:
    """(filename, text) of the manifest at the root of `directory`; shipmate.yml wins."""
    for filename in schema.MANIFEST_FILENAMES:
        candidate = directory / filename
        if candidate.is_file():
            try:
                return filename, candidate.read_text(encoding="utf-8")
            except UnicodeDecodeError as exc:
                raise ManifestError(f"{filename}: not UTF-8 text: save it as UTF-8") from exc
    raise ManifestError("no shipmate.yml or convox.yml at the root of the source")


def load_manifest(text: str, filename: str = "shipmate.yml") -> Manifest:
    """Parse and validate a manifest; raises ManifestError naming the file and the key."""
    return _Loader(filename).load(text)


def _describe(value: object) -> str:
    """How an unexpected value is quoted in an error message."""
    if value is None:
        return "nothing"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return repr(value)


class _Loader:
    """One load: knows the filename for messages and collects warnings."""

    def __init__(self, filename: str) -> None:
        self.filename = filename
        self.warnings: list[str] = []

    def error(self, path: str, message: str) -> ManifestError:
        return ManifestError(f"{self.filename}: {path}: {message}")

    # -- generic readers ---------------------------------------------------------------------

    def mapping(self, value: object, path: str, *, what: str = "a mapping") -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(path, f"expected {what}, got {_describe(value)}")
        return {str(key): item for key, item in value.items()}

    def check_keys(
        self,
        data: Mapping[str, Any],
        path: str,
        known: frozenset[str],
        ignored: frozenset[str] = frozenset(),
    ) -> None:
        for key in data:
            if key in known:
                continue
            if key in ignored:
                self.ignore(f"{path}.{key}" if path else key)
                continue
            raise self.error(f"{path}.{key}" if path else key, "unknown key")

    def ignore(self, path: str, detail: str = "") -> None:
        self.warnings.append(f"ignored by this runtime: {path}{detail}")

    def integer(self, value: object, path: str, *, low: int, high: int | None = None) -> int:
        # bool is an int in Python but `count: yes` is surely a mistake.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(path, f"expected an integer, got {_describe(value)}")
        return self.in_range(value, path, low=low, high=high)

    def in_range(self, value: int, path: str, *, low: int, high: int | None = None) -> int:
        if value < low or (high is not None and value > high):
            wanted = f"from {low} to {high}" if high is not None else f">= {low}"
            raise self.error(path, f"expected an integer {wanted}, got {value}")
        return value

    def string(self, value: object, path: str) -> str:
        if not isinstance(value, str):
            raise self.error(path, f"expected a string, got {_describe(value)}")
        if not value.strip():
            raise self.error(path, "expected a non-empty string")
        return value

    # -- the manifest ------------------------------------------------------------------------

    def load(self, text: str) -> Manifest:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ManifestError(f"{self.filename}: {_yaml_problem(exc)}") from exc
        if document is not None and not isinstance(document, Mapping):
            raise ManifestError(
                f"{self.filename}: expected a mapping of keys such as services, "
                f"got {_describe(document)}"
            )
        top = self.mapping(document, "")
        self.check_keys(top, "", schema.TOP_KEYS, schema.TOP_IGNORED)

        environment = self.environment(top.get("environment"), "environment")
        release = top.get("release")
        if release is not None:
            release = self.string(release, "release")

        services_data = self.mapping(
            top.get("services"), "services", what="a mapping of service names"
        )
        if not services_data:
            raise self.error("services", "at least one service is required")
        services = tuple(self.service(name, data) for name, data in services_data.items())

        return Manifest(
            services=services,
            environment=environment,
            release=release,
            warnings=tuple(self.warnings),
        )

    def environment(self, value: object, path: str) -> tuple[EnvVar, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.error(path, f"expected a list of KEY or KEY=default, got {_describe(value)}")
        # Convox flattens nested lists, which YAML anchors produce (`- *common`).
        entries: list[tuple[str, object]] = []
        for index, item in enumerate(value):
            if isinstance(item, list):
                entries.extend((f"{path}[{index}][{j}]", sub) for j, sub in enumerate(item))
            else:
                entries.append((f"{path}[{index}]", item))
        result: dict[str, EnvVar] = {}
        for item_path, item in entries:
            if not isinstance(item, str):
                raise self.error(item_path, f"expected KEY or KEY=default, got {_describe(item)}")
            key, sep, default = item.partition("=")
            if KEY_RE.fullmatch(key) is None:
                raise self.error(
                    item_path,
                    f"invalid entry {item!r}: use KEY or KEY=default "
                    "with KEY of letters, digits and _",
                )
            # A key listed twice keeps its last entry, as Convox's defaults map does.
            result.pop(key, None)
            result[key] = EnvVar(key, default if sep else None)
        return tuple(result.values())

    # -- services ----------------------------------------------------------------------------

    def service(self, name: str, value: object) -> Service:
        path = f"services.{name}"
        if schema.SERVICE_NAME_RE.fullmatch(name) is None:
            raise self.error(
                path,
                "invalid service name: use 1-30 characters a-z, 0-9 and -, starting with a letter",
            )
        data = self.mapping(value, path)
        self.check_keys(data, path, schema.SERVICE_KEYS, schema.SERVICE_IGNORED)

        command = data.get("command")
        if command is not None:
            command = self.string(command, f"{path}.command")

        deployment = self.mapping(data.get("deployment"), f"{path}.deployment")
        self.check_keys(deployment, f"{path}.deployment", schema.DEPLOYMENT_KEYS)
        termination = self.mapping(data.get("termination"), f"{path}.termination")
        self.check_keys(termination, f"{path}.termination", schema.TERMINATION_KEYS)

        return Service(
            name=name,
            build=self.build(data.get("build"), f"{path}.build"),
            command=command,
            port=self.port(data.get("port"), f"{path}.port"),
            health=self.health(data.get("health"), f"{path}.health"),
            count=self.scale(data.get("scale"), f"{path}.scale"),
            memory=self.limit(data.get("scale"), f"{path}.scale", "memory", low=4),
            cpu=self.limit(data.get("scale"), f"{path}.scale", "cpu", low=1),
            environment=self.environment(data.get("environment"), f"{path}.environment"),
            minimum=self.integer(
                deployment.get("minimum", 50), f"{path}.deployment.minimum", low=0, high=100
            ),
            maximum=self.integer(
                deployment.get("maximum", 200), f"{path}.deployment.maximum", low=100
            ),
            deadline=self.integer(
                deployment.get("deadline", DEFAULT_DEADLINE), f"{path}.deployment.deadline", low=1
            ),
            termination_grace=self.integer(
                termination.get("grace", 30), f"{path}.termination.grace", low=0
            ),
            watch=self.watch(deployment.get("watch"), f"{path}.deployment.watch"),
            domains=self.domains(data.get("domain"), f"{path}.domain"),
            https_redirect=self.https(data.get("https"), f"{path}.https"),
        )

    def domains(self, value: object, path: str) -> tuple[str, ...]:
        """`domain: www.example.com` or a list of them; `${VAR}` is expanded per release."""
        if value is None:
            return ()
        items = value if isinstance(value, list) else [value]
        return tuple(self.string(item, f"{path}[{i}]").strip() for i, item in enumerate(items))

    def https(self, value: object, path: str) -> bool:
        if value is None:
            return False
        if value != "redirect":
            raise self.error(path, f"expected `redirect`, got {_describe(value)}")
        return True

    def watch(self, value: object, path: str) -> WatchRule | None:
        """`deployment.watch`: {duration: s, errors: % of 5xx, latency: p95 ms, requests: n}."""
        if value is None or value is False:
            return None
        data = self.mapping(value, path)
        self.check_keys(data, path, schema.WATCH_KEYS)
        if data.get("errors") is None and data.get("latency") is None:
            raise self.error(path, "give `errors` (% of 5xx answers), `latency` (p95 ms) or both")
        errors = data.get("errors")
        if errors is not None:
            if isinstance(errors, bool) or not isinstance(errors, int | float):
                raise self.error(f"{path}.errors", f"expected a number, got {_describe(errors)}")
            if not 0 <= errors < 100:
                raise self.error(f"{path}.errors", f"expected a % from 0 to 100, got {errors}")
        latency = data.get("latency")
        return WatchRule(
            duration=self.integer(data.get("duration", 120), f"{path}.duration", low=1),
            errors=None if errors is None else float(errors),
            latency=None if latency is None else self.integer(latency, f"{path}.latency", low=1),
            requests=self.integer(data.get("requests", 20), f"{path}.requests", low=1),
        )

    def build(self, value: object, path: str) -> str:
        if value is None:
            return "."
        if isinstance(value, Mapping):
            data = self.mapping(value, path)
            self.check_keys(data, path, schema.BUILD_KEYS, schema.BUILD_IGNORED)
            if data.get("path") is None:
                return "."
            path, value = f"{path}.path", data["path"]
        build = self.string(value, path)
        # The builder resolves this inside the upload; refuse anything that could leave it.
        pure = PurePosixPath(build)
        if pure.is_absolute() or ".." in pure.parts:
            raise self.error(
                path, f"expected a relative path inside the source, got {_describe(build)}"
            )
        return build

    def port(self, value: object, path: str) -> int | None:
        if value is None:
            return None
        if isinstance(value, Mapping):
            data = self.mapping(value, path)
            self.check_keys(data, path, schema.PORT_KEYS)
            scheme = data.get("scheme")
            if scheme is not None:
                self.scheme(self.string(scheme, f"{path}.scheme"), path)
            if data.get("port") is None:
                raise self.error(f"{path}.port", "a port number is required")
            path, value = f"{path}.port", data["port"]
        if isinstance(value, str):
            # Convox's "scheme:port" form, e.g. "https:5000".
            scheme, sep, number = value.rpartition(":")
            if sep:
                self.scheme(scheme, path)
            if schema.DIGITS_RE.fullmatch(number.strip()) is None:
                raise self.error(path, f"expected an integer, got {_describe(value)}")
            return self.in_range(int(number), path, low=1, high=65535)
        return self.integer(value, path, low=1, high=65535)

    def scheme(self, scheme: str, path: str) -> None:
        # The router speaks plain HTTP to processes; other schemes only matter to Convox's
        # load balancers.
        if scheme.strip().lower() != "http":
            self.ignore(f"{path}.scheme", f" ({scheme})")

    def health(self, value: object, path: str) -> Health:
        if value is None:
            return Health()
        if isinstance(value, str):
            return Health(path=self.health_path(value, path))
        data = self.mapping(value, path, what="a path or a mapping")
        self.check_keys(data, path, schema.HEALTH_KEYS, schema.HEALTH_IGNORED)
        interval = self.integer(data.get("interval", 5), f"{path}.interval", low=1)
        grace = data.get("grace")
        timeout = data.get("timeout")
        return Health(
            path=self.health_path(data.get("path", "/"), f"{path}.path"),
            interval=interval,
            grace=None if grace is None else self.integer(grace, f"{path}.grace", low=0),
            timeout=None if timeout is None else self.integer(timeout, f"{path}.timeout", low=1),
        )

    def health_path(self, value: object, path: str) -> str:
        text = self.string(value, path)
        if not text.startswith("/"):
            raise self.error(path, f"expected a path starting with /, got {_describe(text)}")
        return text

    def scale(self, value: object, path: str) -> int:
        if value is None:
            return 1
        if not isinstance(value, Mapping):
            # Convox's shorthand `scale: 2` / `scale: 1-3`.
            return self.count(value, path)
        data = self.mapping(value, path)
        self.check_keys(data, path, schema.SCALE_KEYS, schema.SCALE_IGNORED)
        if data.get("count") is None:
            return 1
        return self.count(data["count"], f"{path}.count")

    def limit(self, value: object, path: str, key: str, *, low: int) -> int | None:
        """`scale.memory` or `scale.cpu` (checked with the rest of `scale` by `scale`)."""
        if not isinstance(value, Mapping) or value.get(key) is None:
            return None
        return self.integer(value[key], f"{path}.{key}", low=low)

    def count(self, value: object, path: str) -> int:
        if isinstance(value, Mapping):
            data = self.mapping(value, path)
            self.check_keys(data, path, schema.COUNT_KEYS)
            if data.get("min") is None:
                raise self.error(f"{path}.min", "a minimum count is required")
            low = self.count_bound(data["min"], f"{path}.min")
            high = self.count_bound(data.get("max", low), f"{path}.max")
            return self.count_range(low, high, path)
        if isinstance(value, str):
            text = value.strip()
            if schema.DIGITS_RE.fullmatch(text):
                return int(text)
            match = schema.RANGE_RE.fullmatch(text)
            if match is None:
                raise self.error(
                    path, f"expected an integer or a range like 1-3, got {_describe(value)}"
                )
            return self.count_range(int(match[1]), int(match[2]), path)
        return self.integer(value, path, low=0)

    def count_bound(self, value: object, path: str) -> int:
        if isinstance(value, str) and schema.DIGITS_RE.fullmatch(value.strip()):
            return int(value)
        return self.integer(value, path, low=0)

    def count_range(self, low: int, high: int, path: str) -> int:
        if high < low:
            raise self.error(path, f"expected a range with min <= max, got {low}-{high}")
        if high != low:
            # Autoscaling needs metrics this runtime does not collect: run the minimum.
            self.ignore(path, f" range {low}-{high} (running {low})")
        return low


def _yaml_problem(exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    if mark is not None:
        return f"line {mark.line + 1}, column {mark.column + 1}: invalid YAML: {problem}"
    return f"invalid YAML: {problem}"
