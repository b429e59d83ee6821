"""deploy/ is checked, not just shipped: the Kubernetes manifests against the Kubernetes schemas (strict),
and every manifest, unit and container file against mtsg itself."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import tomllib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from gateway.config import load_config
from gateway.server.start import SERVICE_NAMES

DEPLOY = Path(__file__).parents[1] / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
KUBERNETES_VERSION = "1.37.0"


def _documents() -> dict[str, dict[str, Any]]:
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        for document in yaml.safe_load_all(path.read_text()):
            documents[document["kind"]] = document
    return documents


@pytest.mark.parametrize("path", sorted(KUBERNETES.glob("*.yaml")), ids=lambda path: path.name)
def test_each_manifest_is_valid_kubernetes(path: Path) -> None:
    for document in yaml.safe_load_all(path.read_text()):
        if document["kind"] == "Kustomization":
            listed = sorted(document["resources"])
            assert listed == sorted(p.name for p in KUBERNETES.glob("*.yaml") if p.name != "kustomization.yaml")
            continue
        kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_an_invalid_manifest_is_caught() -> None:
    """The validator is not a rubber stamp: a misspelt field fails."""
    deployment = _documents()["Deployment"]
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_the_manifests_agree_with_each_other_and_with_mtsg(tmp_path: Path) -> None:
    documents = _documents()
    assert set(documents) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "HorizontalPodAutoscaler",
        "Job",
    }
    deployment = documents["Deployment"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    assert documents["Service"]["spec"]["selector"] == labels
    assert documents["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"] == labels
    assert documents["PodDisruptionBudget"]["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    assert documents["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]

    # The ConfigMap's configuration loads in mtsg, with the URL the Secret provides.
    text = documents["ConfigMap"]["data"]["mtsg.toml"]
    (tmp_path / "mtsg.toml").write_text(text)
    config = load_config(tmp_path / "mtsg.toml", environ={"MTSG_STORE_URL": "postgresql://mtsg@db:5432/mtsg"}).config
    assert config.store.url.startswith("postgresql://")
    assert config.privacy.phone_hash_key_file.startswith("/etc/mtsg/secrets/")
    assert tomllib.loads(text) == tomllib.loads(
        "\n".join(line for line in (DEPLOY / "mtsg.example.toml").read_text().splitlines() if not line.startswith("#"))
    )

    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    grpc_port = int(config.server.listen.rpartition(":")[2])
    health_port = int(config.server.health_listen.rpartition(":")[2])
    assert {port["containerPort"] for port in container["ports"]} == {
        grpc_port,
        health_port,
        int(config.server.metrics_listen.rpartition(":")[2]),
    }
    assert config.server.tls_cert_file and config.auth.identities_file and not config.auth.insecure
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        # kubelet gRPC probes speak plain text only: they must use the health-only port.
        assert container[probe]["grpc"]["port"] == health_port
        assert container[probe]["grpc"].get("service", "") in ("", *SERVICE_NAMES)
    assert pod["terminationGracePeriodSeconds"] > config.server.shutdown_drain_seconds + (
        config.server.shutdown_grace_seconds
    )
    mounted = {mount["mountPath"] for mount in container["volumeMounts"]}
    for secret_file in (config.privacy.phone_hash_key_file, config.auth.identities_file, config.server.tls_cert_file):
        assert str(Path(secret_file).parent) in mounted
    assert config.store.data_dir in mounted
    assert container["args"][0] == "serve"
    assert documents["Job"]["spec"]["template"]["spec"]["containers"][0]["args"][0] == "migrate"

    # Every Secret the manifests name is explained in deploy/README.md.
    readme = (DEPLOY / "README.md").read_text()
    secrets = {volume["secret"]["secretName"] for volume in pod["volumes"] if "secret" in volume}
    secrets |= {env["valueFrom"]["secretKeyRef"]["name"] for env in container["env"] if "valueFrom" in env}
    for name in secrets:
        assert f"create secret generic {name}" in readme or f"create secret tls {name}" in readme


def test_the_systemd_unit_runs_mtsg_and_is_well_formed() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "systemd" / "mtsg.service")
    service = unit["Service"]
    assert service["ExecStart"].split()[1:3] == ["serve", "--config"]
    assert service["ExecStartPre"].split()[1] == "migrate"
    assert service["KillSignal"] == "SIGTERM" and "-HUP" in service["ExecReload"]
    assert int(service["TimeoutStopSec"]) >= 20
    analyze = shutil.which("systemd-analyze")
    if analyze is not None:
        result = subprocess.run(
            [analyze, "verify", "--man=no", str(DEPLOY / "systemd" / "mtsg.service")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        # The unit's binary does not exist on a test machine; nothing else may be reported (an unknown
        # key, a bad value).
        problems = [
            line
            for line in result.stderr.splitlines()
            if line.strip() and "/opt/mtsg/.venv/bin/mtsg is not executable" not in line
        ]
        assert not problems, result.stderr


def test_the_container_file_runs_mtsg_unprivileged() -> None:
    lines = [line.strip() for line in (DEPLOY / "Containerfile").read_text().splitlines()]
    assert 'ENTRYPOINT ["mtsg"]' in lines
    assert "USER 10001:10001" in lines
    assert "EXPOSE 50051 9464" in lines
    for room in ("gateway", "signals", "blocklists"):
        assert f"COPY {room} ./{room}" in lines
