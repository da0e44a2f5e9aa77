"""`shipmate releases render`: through the real CLI, the documents promoting a release would
apply, which kubernetes-validate accepts, with no Secret value in them."""

from __future__ import annotations

from collections.abc import Iterator

import kubernetes_validate
import pytest
import yaml

from tests.integration.conftest import Rack, own_rack

SECRET = "s3cret-never-printed"


@pytest.fixture(scope="module")
def rack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rack]:
    with own_rack(tmp_path_factory, "render") as rack:
        yield rack


@pytest.mark.integration
def test_render_prints_valid_documents_without_secret_values(rack: Rack) -> None:
    rack.deploy("renderapp")
    rack.ok("env", "set", f"TOKEN={SECRET}", "--promote", "-a", "renderapp")
    release = rack.releases("renderapp")[0]["id"]
    assert isinstance(release, str)
    out = rack.ok("releases", "render", release, "-a", "renderapp", "--runtime", "kubernetes")
    assert SECRET not in out
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["Namespace", "Secret", "Deployment", "Service", "Ingress"]
    for doc in docs:
        for version in ("1.30.0", "1.33.0"):
            kubernetes_validate.validate(doc, version, strict=True)
    secret = docs[1]
    assert secret["stringData"]["web.TOKEN"] == "****"
    web = docs[2]
    assert web["metadata"]["labels"]["release"] == release
    assert web["spec"]["template"]["spec"]["containers"][0]["image"] == (
        f"renderapp:web.{rack.releases('renderapp')[0]['build']}"
    )
