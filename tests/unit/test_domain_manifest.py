import textwrap
from pathlib import Path

import pytest

from shipmate.domain.errors import InvalidInput, ManifestError, NotFound
from shipmate.domain.manifest import (
    EnvVar,
    Health,
    Manifest,
    Service,
    find_manifest,
    load_manifest,
)


def load(text: str, filename: str = "shipmate.yml") -> Manifest:
    return load_manifest(textwrap.dedent(text), filename)


SPEC_EXAMPLE = """
environment:
  - DATABASE_URL
  - LOG_LEVEL=info
release: python manage.py migrate
services:
  web:
    build: .
    command: python app.py
    port: 5000
    health:
      path: /health
      grace: 5
      interval: 5
      timeout: 4
    scale:
      count: 2
    environment:
      - WORKERS=2
    deployment:
      minimum: 50
      maximum: 200
    termination:
      grace: 30
  worker:
    command: python worker.py
"""


def test_the_spec_example():
    m = load(SPEC_EXAMPLE)
    assert m.release == "python manage.py migrate"
    assert m.environment == (EnvVar("DATABASE_URL"), EnvVar("LOG_LEVEL", "info"))
    assert m.warnings == ()
    assert [s.name for s in m.services] == ["web", "worker"]
    assert m.service("web") == Service(
        name="web",
        build=".",
        command="python app.py",
        port=5000,
        health=Health(path="/health", grace=5, interval=5, timeout=4),
        count=2,
        environment=(EnvVar("WORKERS", "2"),),
        minimum=50,
        maximum=200,
        termination_grace=30,
        deadline=120,
    )
    assert m.service("worker") == Service(name="worker", command="python worker.py")


def test_defaults_of_a_minimal_service():
    web = load("services:\n  web:\n    command: ./run\n").service("web")
    assert web.build == "."
    assert web.port is None
    assert web.health == Health(path="/", grace=5, interval=5, timeout=4)
    assert web.count == 1
    assert web.environment == ()
    assert (web.minimum, web.maximum) == (50, 200)
    assert web.termination_grace == 30
    assert web.deadline == 120


def test_an_empty_service_gets_every_default():
    m = load("services:\n  web:\n")
    assert m.service("web") == Service(name="web")
    assert m.environment == ()
    assert m.release is None


def test_health_defaults_follow_the_interval():
    assert Health() == Health("/", 5, 5, 4)
    assert Health(interval=10) == Health(path="/", grace=10, interval=10, timeout=9)
    assert Health(interval=1).timeout == 1
    assert Health(interval=2, grace=0, timeout=2) == Health("/", 0, 2, 2)


def test_health_as_a_path():
    web = load("services:\n  web:\n    port: 3000\n    health: /up\n").service("web")
    assert web.health == Health(path="/up")


def test_health_mapping_defaults():
    web = load(
        """
        services:
          web:
            health:
              interval: 10
        """
    ).service("web")
    assert web.health == Health(path="/", grace=10, interval=10, timeout=9)


def test_deployment_deadline_is_read_and_the_manifest_takes_the_longest():
    m = load(
        """
        services:
          web:
            deployment:
              deadline: 30
          worker:
            deployment:
              deadline: 300
          clock: {}
        """
    )
    assert m.service("web").deadline == 30
    assert m.deadline() == 300


def test_deadline_without_services_is_the_default():
    assert Manifest(services=()).deadline() == 120


def test_unknown_service_is_not_found():
    with pytest.raises(NotFound, match=r"'db'.*web"):
        load("services:\n  web:\n").service("db")


def test_services_keep_document_order():
    m = load("services:\n  zeta:\n  alpha:\n  mid:\n")
    assert [s.name for s in m.services] == ["zeta", "alpha", "mid"]


def test_release_command_is_optional():
    assert load("release: ./migrate\nservices:\n  web:\n").release == "./migrate"


# -- errors ---------------------------------------------------------------------------------

ERRORS = [
    ("", "shipmate.yml: services: at least one service is required"),
    ("# nothing\n", "shipmate.yml: services: at least one service is required"),
    ("release: x\n", "shipmate.yml: services: at least one service is required"),
    ("services: {}\n", "shipmate.yml: services: at least one service is required"),
    ("services:\n", "shipmate.yml: services: at least one service is required"),
    ("- web\n", "shipmate.yml: expected a mapping of keys such as services, got a list"),
    (
        "services: [web]\n",
        "shipmate.yml: services: expected a mapping of service names, got a list",
    ),
    ("servics:\n  web:\n", "shipmate.yml: servics: unknown key"),
    ("services:\n  web:\n    helth: /\n", "shipmate.yml: services.web.helth: unknown key"),
    ("services:\n  Web:\n", "shipmate.yml: services.Web: invalid service name"),
    ("services:\n  1web:\n", "shipmate.yml: services.1web: invalid service name"),
    ("services:\n  web_1:\n", "shipmate.yml: services.web_1: invalid service name"),
    (f"services:\n  {'a' * 31}:\n", f"shipmate.yml: services.{'a' * 31}: invalid service name"),
    ("services:\n  web: 3\n", "shipmate.yml: services.web: expected a mapping, got 3"),
    (
        "services:\n  web:\n    port: abc\n",
        "shipmate.yml: services.web.port: expected an integer, got 'abc'",
    ),
    (
        "services:\n  web:\n    port: https:abc\n",
        "shipmate.yml: services.web.port: expected an integer, got 'https:abc'",
    ),
    (
        "services:\n  web:\n    port: 70000\n",
        "shipmate.yml: services.web.port: expected an integer from 1 to 65535, got 70000",
    ),
    (
        "services:\n  web:\n    port: 0\n",
        "shipmate.yml: services.web.port: expected an integer from 1 to 65535, got 0",
    ),
    (
        "services:\n  web:\n    port: 5000.5\n",
        "shipmate.yml: services.web.port: expected an integer, got 5000.5",
    ),
    (
        "services:\n  web:\n    port: true\n",
        "shipmate.yml: services.web.port: expected an integer, got true",
    ),
    (
        "services:\n  web:\n    port: {scheme: https}\n",
        "shipmate.yml: services.web.port.port: a port number is required",
    ),
    (
        "services:\n  web:\n    port: {port: 80, protocol: tcp}\n",
        "shipmate.yml: services.web.port.protocol: unknown key",
    ),
    (
        "services:\n  web:\n    command: [python, app.py]\n",
        "shipmate.yml: services.web.command: expected a string, got a list",
    ),
    (
        "services:\n  web:\n    command: '  '\n",
        "shipmate.yml: services.web.command: expected a non-empty string",
    ),
    (
        "services:\n  web:\n    build: 3\n",
        "shipmate.yml: services.web.build: expected a string, got 3",
    ),
    (
        "services:\n  web:\n    build: ../elsewhere\n",
        "shipmate.yml: services.web.build: expected a relative path inside the source, "
        "got '../elsewhere'",
    ),
    (
        "services:\n  web:\n    build: {path: /etc}\n",
        "shipmate.yml: services.web.build.path: expected a relative path inside the source, "
        "got '/etc'",
    ),
    (
        "services:\n  web:\n    build: {context: .}\n",
        "shipmate.yml: services.web.build.context: unknown key",
    ),
    (
        "services:\n  web:\n    health: 5\n",
        "shipmate.yml: services.web.health: expected a path or a mapping, got 5",
    ),
    (
        "services:\n  web:\n    health: health\n",
        "shipmate.yml: services.web.health: expected a path starting with /, got 'health'",
    ),
    (
        "services:\n  web:\n    health: {path: up}\n",
        "shipmate.yml: services.web.health.path: expected a path starting with /, got 'up'",
    ),
    (
        "services:\n  web:\n    health: {interval: 0}\n",
        "shipmate.yml: services.web.health.interval: expected an integer >= 1, got 0",
    ),
    (
        "services:\n  web:\n    health: {interval: soon}\n",
        "shipmate.yml: services.web.health.interval: expected an integer, got 'soon'",
    ),
    (
        "services:\n  web:\n    health: {grace: -1}\n",
        "shipmate.yml: services.web.health.grace: expected an integer >= 0, got -1",
    ),
    (
        "services:\n  web:\n    health: {timeout: 0}\n",
        "shipmate.yml: services.web.health.timeout: expected an integer >= 1, got 0",
    ),
    (
        "services:\n  web:\n    health: {paht: /}\n",
        "shipmate.yml: services.web.health.paht: unknown key",
    ),
    (
        "services:\n  web:\n    scale: {count: -1}\n",
        "shipmate.yml: services.web.scale.count: expected an integer >= 0, got -1",
    ),
    (
        "services:\n  web:\n    scale: {count: many}\n",
        "shipmate.yml: services.web.scale.count: expected an integer or a range like 1-3, "
        "got 'many'",
    ),
    (
        "services:\n  web:\n    scale: {count: 3-1}\n",
        "shipmate.yml: services.web.scale.count: expected a range with min <= max, got 3-1",
    ),
    (
        "services:\n  web:\n    scale: {count: 1.5}\n",
        "shipmate.yml: services.web.scale.count: expected an integer, got 1.5",
    ),
    (
        "services:\n  web:\n    scale: {count: {max: 3}}\n",
        "shipmate.yml: services.web.scale.count.min: a minimum count is required",
    ),
    (
        "services:\n  web:\n    scale: {replicas: 2}\n",
        "shipmate.yml: services.web.scale.replicas: unknown key",
    ),
    (
        "services:\n  web:\n    scale: lots\n",
        "shipmate.yml: services.web.scale: expected an integer or a range like 1-3, got 'lots'",
    ),
    (
        "services:\n  web:\n    deployment: {minimum: 101}\n",
        "shipmate.yml: services.web.deployment.minimum: expected an integer from 0 to 100, got 101",
    ),
    (
        "services:\n  web:\n    deployment: {minimum: -1}\n",
        "shipmate.yml: services.web.deployment.minimum: expected an integer from 0 to 100, got -1",
    ),
    (
        "services:\n  web:\n    deployment: {maximum: 99}\n",
        "shipmate.yml: services.web.deployment.maximum: expected an integer >= 100, got 99",
    ),
    (
        "services:\n  web:\n    deployment: {deadline: 0}\n",
        "shipmate.yml: services.web.deployment.deadline: expected an integer >= 1, got 0",
    ),
    (
        "services:\n  web:\n    deployment: {minimum: half}\n",
        "shipmate.yml: services.web.deployment.minimum: expected an integer, got 'half'",
    ),
    (
        "services:\n  web:\n    deployment: {strategy: rolling}\n",
        "shipmate.yml: services.web.deployment.strategy: unknown key",
    ),
    (
        "services:\n  web:\n    deployment: fast\n",
        "shipmate.yml: services.web.deployment: expected a mapping, got 'fast'",
    ),
    (
        "services:\n  web:\n    termination: {grace: -5}\n",
        "shipmate.yml: services.web.termination.grace: expected an integer >= 0, got -5",
    ),
    (
        "services:\n  web:\n    termination: {signal: TERM}\n",
        "shipmate.yml: services.web.termination.signal: unknown key",
    ),
    (
        "services:\n  web:\n    environment: {FOO: bar}\n",
        "shipmate.yml: services.web.environment: expected a list of KEY or KEY=default, "
        "got a mapping",
    ),
    (
        "services:\n  web:\n    environment:\n      - FOO\n      - 1BAD=x\n",
        "shipmate.yml: services.web.environment[1]: invalid entry '1BAD=x': "
        "use KEY or KEY=default with KEY of letters, digits and _",
    ),
    (
        "environment:\n  - 42\nservices:\n  web:\n",
        "shipmate.yml: environment[0]: expected KEY or KEY=default, got 42",
    ),
    (
        "environment: FOO\nservices:\n  web:\n",
        "shipmate.yml: environment: expected a list of KEY or KEY=default, got 'FOO'",
    ),
    ("release: 5\nservices:\n  web:\n", "shipmate.yml: release: expected a string, got 5"),
    ("release: ''\nservices:\n  web:\n", "shipmate.yml: release: expected a non-empty string"),
]


@pytest.mark.parametrize(("text", "message"), ERRORS, ids=[e[1] for e in ERRORS])
def test_manifest_errors_name_the_file_and_the_key(text, message):
    with pytest.raises(ManifestError) as raised:
        load_manifest(text)
    assert str(raised.value).startswith(message)
    assert "\n" not in str(raised.value)
    assert isinstance(raised.value, InvalidInput)


def test_errors_name_the_file_they_came_from():
    with pytest.raises(ManifestError, match=r"^convox\.yml: services\.web\.port: "):
        load_manifest("services:\n  web:\n    port: nope\n", "convox.yml")


@pytest.mark.parametrize(
    "text", ["services:\n  web: [\n", "services:\n\tweb:\n", "a: b: c\n", "services: {web\n"]
)
def test_invalid_yaml_is_a_one_line_manifest_error(text):
    with pytest.raises(ManifestError) as raised:
        load_manifest(text)
    message = str(raised.value)
    assert message.startswith("shipmate.yml: ")
    assert "invalid YAML" in message
    assert "\n" not in message


def test_yaml_errors_give_the_line():
    with pytest.raises(ManifestError) as raised:
        load_manifest("services:\n  web:\n    port: 5000\n  - x\n")
    assert str(raised.value).startswith("shipmate.yml: line 4, column 3: invalid YAML: ")


# -- Convox compatibility --------------------------------------------------------------------

CONVOX = """
appSettings:
  awsLogs:
    cwRetention: 7
balancers:
  main:
    service: api
    ports:
      3000: 5000
configs:
  - id: cfg
environment:
  - DEVELOPMENT=true
  - OTHERGLOBAL
labels:
  team: x
params:
  Foo: bar
resources:
  database:
    type: postgres
timers:
  alpha:
    command: bin/alpha
    service: api
    schedule: "*/1 * * * *"
services:
  api:
    agent: false
    annotations:
      - a.example.com/x=y
    build:
      manifest: Dockerfile2
      path: api
    deployment:
      minimum: 25
      maximum: 110
    domain: foo.example.org
    environment:
      - DEFAULT=test
      - DEVELOPMENT=false
      - SECRET
    health:
      interval: 10
      disable: false
    port: 1000
    ports:
      - 2000
    resources:
      - database
    scale: 3-10
    termination:
      grace: 45
    tls:
      redirect: false
  proxy: &proxy
    command: bash
    image: ubuntu:16.04
    health: /auth
    port: https:2000
    scale:
      count: 2
      cpu: 512
      memory: 1024
  foo:
    command: foo
    port:
      scheme: http
      port: 3000
    scale: 0
    singleton: true
  bar:
  scaler:
    scale:
      count: 1-5
      targets:
        cpu: 50
  inherit:
    <<: *proxy
    command: inherit
"""


def test_a_convox_manifest_loads():
    m = load(CONVOX, "convox.yml")
    api = m.service("api")
    assert api.build == "api"
    assert api.port == 1000
    assert api.count == 3
    assert (api.minimum, api.maximum, api.termination_grace) == (25, 110, 45)
    assert api.health == Health(path="/", grace=10, interval=10, timeout=9)
    proxy = m.service("proxy")
    assert (proxy.port, proxy.count, proxy.health.path) == (2000, 2, "/auth")
    foo = m.service("foo")
    assert (foo.port, foo.count) == (3000, 0)
    assert m.service("bar") == Service(name="bar")
    assert m.service("scaler").count == 1
    inherit = m.service("inherit")
    assert (inherit.command, inherit.port, inherit.health.path) == ("inherit", 2000, "/auth")


def test_a_convox_manifest_warns_of_each_ignored_key():
    warnings = load(CONVOX, "convox.yml").warnings
    expected = {
        "ignored by this runtime: appSettings",
        "ignored by this runtime: balancers",
        "ignored by this runtime: configs",
        "ignored by this runtime: labels",
        "ignored by this runtime: params",
        "ignored by this runtime: resources",
        "ignored by this runtime: timers",
        "ignored by this runtime: services.api.agent",
        "ignored by this runtime: services.api.annotations",
        "ignored by this runtime: services.api.build.manifest",
        "ignored by this runtime: services.api.health.disable",
        "ignored by this runtime: services.api.ports",
        "ignored by this runtime: services.api.resources",
        "ignored by this runtime: services.api.scale range 3-10 (running 3)",
        "ignored by this runtime: services.api.tls",
        "ignored by this runtime: services.proxy.image",
        "ignored by this runtime: services.proxy.port.scheme (https)",
        "ignored by this runtime: services.foo.singleton",
        "ignored by this runtime: services.scaler.scale.count range 1-5 (running 1)",
        "ignored by this runtime: services.scaler.scale.targets",
        "ignored by this runtime: services.inherit.image",
        "ignored by this runtime: services.inherit.port.scheme (https)",
    }
    assert set(warnings) == expected
    assert len(warnings) == len(expected)
    # `domain:` is routed (issue 15), not ignored.
    assert load(CONVOX, "convox.yml").service("api").domains == ("foo.example.org",)
    # http is what the router speaks: no warning for it.
    assert not any("services.foo.port" in w for w in warnings)


@pytest.mark.parametrize(
    "key",
    [
        "agent: true",
        "resources: [db]",
        "volumes: [/data]",
        "image: nginx",
        "links: [db]",
        "sticky: true",
        "internal: true",
        "internalRouter: true",
        "singleton: true",
        "drain: 30",
        "tls: {redirect: true}",
        "timeout: 60",
        "whitelist: 10.0.0.0/8",
        "labels: {a: b}",
        "dockerfile: Dockerfile.web",
        "init: true",
        "privileged: false",
        "annotations: [a=b]",
        "ingressAnnotations: [a=b]",
        "lifecycle: {preStop: sleep 5}",
        "nodeSelectorLabels: {a: b}",
        "grpcHealthEnabled: true",
        "accessControl: {}",
        "initContainer: {image: busybox}",
        "configMounts: []",
        "volumeOptions: []",
        "certificate: {duration: 2160h}",
        "policies: [x]",
        "test: make test",
        "tags: {a: b}",
    ],
)
def test_every_convox_service_key_is_accepted_with_a_warning(key):
    name = key.split(":")[0]
    m = load_manifest(f"services:\n  web:\n    command: run\n    {key}\n", "convox.yml")
    assert m.warnings == (f"ignored by this runtime: services.web.{name}",)


def test_scale_memory_and_cpu_are_the_limits_of_each_process():
    m = load_manifest("services:\n  web:\n    scale:\n      memory: 64\n      cpu: 512\n")
    assert m.warnings == ()
    assert (m.service("web").memory, m.service("web").cpu, m.service("web").count) == (64, 512, 1)
    assert (m.service("web").memory, Service(name="x").cpu) == (64, None)


@pytest.mark.parametrize("value", ["0", "-1", "lots", "yes"])
def test_scale_memory_must_be_a_positive_integer(value):
    with pytest.raises(InvalidInput, match=r"services\.web\.scale\.memory"):
        load_manifest(f"services:\n  web:\n    scale:\n      memory: {value}\n")


@pytest.mark.parametrize("key", ["gpu: 1", "targets: {cpu: 50}"])
def test_convox_scale_keys_are_accepted_with_a_warning(key):
    name = key.split(":")[0]
    m = load_manifest(f"services:\n  web:\n    scale:\n      {key}\n")
    assert m.warnings == (f"ignored by this runtime: services.web.scale.{name}",)
    assert m.service("web").count == 1


@pytest.mark.parametrize(
    "key",
    [
        "resources: {db: {type: postgres}}",
        "timers: {t: {command: x}}",
        "balancers: {}",
        "params: {}",
        "appSettings: {}",
        "configs: []",
        "certificate: {id: x}",
    ],
)
def test_every_convox_top_level_key_is_accepted_with_a_warning(key):
    name = key.split(":")[0]
    m = load_manifest(f"{key}\nservices:\n  web:\n")
    assert m.warnings == (f"ignored by this runtime: {name}",)


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ("5000", 5000),
        ("'5000'", 5000),
        ("https:5000", 5000),
        ("http:5000", 5000),
        ("{port: 5000}", 5000),
        ("{port: '5000'}", 5000),
        ("{port: 'http:5000'}", 5000),
    ],
)
def test_port_forms(port, expected):
    assert load_manifest(f"services:\n  web:\n    port: {port}\n").service("web").port == expected


@pytest.mark.parametrize(
    ("scale", "count"),
    [
        ("2", 2),
        ("0", 0),
        ("'4'", 4),
        ("{count: 3}", 3),
        ("{count: '3'}", 3),
        ("{count: 2-2}", 2),
        ("{count: {min: 2, max: 2}}", 2),
        ("{}", 1),
    ],
)
def test_scale_forms_without_warnings(scale, count):
    m = load_manifest(f"services:\n  web:\n    scale: {scale}\n")
    assert m.service("web").count == count
    assert m.warnings == ()


@pytest.mark.parametrize(
    ("scale", "count", "warning"),
    [
        ("1-3", 1, "services.web.scale range 1-3 (running 1)"),
        ("{count: 2-6}", 2, "services.web.scale.count range 2-6 (running 2)"),
        ("{count: {min: 1, max: 4}}", 1, "services.web.scale.count range 1-4 (running 1)"),
    ],
)
def test_scale_ranges_run_the_minimum_with_a_warning(scale, count, warning):
    m = load_manifest(f"services:\n  web:\n    scale: {scale}\n")
    assert m.service("web").count == count
    assert m.warnings == (f"ignored by this runtime: {warning}",)


def test_build_as_a_mapping():
    m = load_manifest("services:\n  web:\n    build:\n      path: src/web\n")
    assert m.service("web").build == "src/web"
    assert load_manifest("services:\n  web:\n    build: {}\n").service("web").build == "."


def test_environment_nested_lists_from_anchors_are_flattened():
    m = load_manifest(
        "services:\n"
        "  web:\n"
        "    environment:\n"
        "      - &shared [SHARED=1, TOKEN]\n"
        "      - OWN\n"
        "  worker:\n"
        "    environment:\n"
        "      - *shared\n"
    )
    assert m.service("web").environment == (EnvVar("SHARED", "1"), EnvVar("TOKEN"), EnvVar("OWN"))
    assert m.service("worker").environment == (EnvVar("SHARED", "1"), EnvVar("TOKEN"))


# -- environment ------------------------------------------------------------------------------


def test_environment_entries():
    m = load(
        """
        environment:
          - REQUIRED
          - OPTIONAL=default
          - EMPTY=
          - URL=postgres://h/db?a=b
        services:
          web:
        """
    )
    assert m.environment == (
        EnvVar("REQUIRED"),
        EnvVar("OPTIONAL", "default"),
        EnvVar("EMPTY", ""),
        EnvVar("URL", "postgres://h/db?a=b"),
    )


def test_a_repeated_environment_key_keeps_its_last_entry():
    m = load("environment: [A, B=1, A=2]\nservices:\n  web:\n")
    assert m.environment == (EnvVar("B", "1"), EnvVar("A", "2"))


def test_required_keys_are_app_and_service_keys_sorted_and_unique():
    m = load(
        """
        environment: [ZED, SHARED, OPT=1]
        services:
          web:
            environment: [WEB_ONLY, SHARED]
          worker:
            environment: [ALPHA, OPT2=x]
        """
    )
    assert m.required_keys() == ["ALPHA", "SHARED", "WEB_ONLY", "ZED"]
    assert m.missing_env({"ZED": "1", "ALPHA": ""}) == ["SHARED", "WEB_ONLY"]
    assert m.missing_env({"ZED": "", "ALPHA": "", "SHARED": "", "WEB_ONLY": ""}) == []


def test_a_service_default_satisfies_an_app_requirement_for_that_service():
    only_web = load("environment: [TOKEN]\nservices:\n  web:\n    environment: [TOKEN=dev]\n")
    assert only_web.required_keys() == []
    with_worker = load(
        "environment: [TOKEN]\nservices:\n  web:\n    environment: [TOKEN=dev]\n  worker:\n"
    )
    assert with_worker.required_keys() == ["TOKEN"]


def test_a_service_cannot_relax_nothing_into_a_requirement_elsewhere():
    m = load("environment: [LEVEL=info]\nservices:\n  web:\n    environment: [LEVEL]\n  worker:\n")
    assert m.required_keys() == ["LEVEL"]
    assert m.process_env("worker", {}) == {"LEVEL": "info"}


def test_process_env_layers_app_defaults_service_defaults_and_the_release():
    m = load(
        """
        environment: [LOG_LEVEL=info, REGION=eu, DATABASE_URL]
        services:
          web:
            environment: [WORKERS=2, REGION=us]
          worker:
        """
    )
    release_env = {"DATABASE_URL": "postgres://db", "LOG_LEVEL": "debug", "EXTRA": "1"}
    assert m.process_env("web", release_env) == {
        "LOG_LEVEL": "debug",
        "REGION": "us",
        "DATABASE_URL": "postgres://db",
        "WORKERS": "2",
        "EXTRA": "1",
    }
    assert m.process_env("worker", {}) == {"LOG_LEVEL": "info", "REGION": "eu"}
    with pytest.raises(NotFound):
        m.process_env("db", {})


def test_manifest_objects_are_immutable():
    m = load("services:\n  web:\n")
    with pytest.raises(AttributeError):
        m.service("web").count = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        m.service("web").health.path = "/x"  # type: ignore[misc]


# -- finding the manifest -------------------------------------------------------------------


def test_find_manifest_prefers_shipmate_yml(tmp_path: Path):
    (tmp_path / "convox.yml").write_text("services:\n  old:\n")
    (tmp_path / "shipmate.yml").write_text("services:\n  new:\n")
    assert find_manifest(tmp_path) == ("shipmate.yml", "services:\n  new:\n")


def test_find_manifest_falls_back_to_convox_yml(tmp_path: Path):
    (tmp_path / "convox.yml").write_text("services:\n  web:\n")
    assert find_manifest(tmp_path) == ("convox.yml", "services:\n  web:\n")


def test_find_manifest_without_one(tmp_path: Path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "shipmate.yml").write_text("services:\n  web:\n")
    (tmp_path / "convox.yml").mkdir()
    with pytest.raises(ManifestError) as raised:
        find_manifest(tmp_path)
    assert str(raised.value) == "no shipmate.yml or convox.yml at the root of the source"


def test_find_manifest_rejects_non_utf8(tmp_path: Path):
    (tmp_path / "shipmate.yml").write_bytes(b"services:\n  w\xffeb:\n")
    with pytest.raises(ManifestError, match=r"^shipmate\.yml: "):
        find_manifest(tmp_path)
