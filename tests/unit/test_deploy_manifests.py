"""deploy/kubernetes/ and deploy/compose/, checked offline (no cluster, no Docker engine here).

- Every Kubernetes document validates, strictly (an unknown field is an error), against the
  schemas of the pinned Kubernetes versions that kubernetes-validate bundles; compose.yaml
  validates against the compose spec that check-jsonschema vendors.
- What a schema cannot see: the termination grace covers the preStop sleep, the shutdown grace
  and OpenCode's stop; the probes ask /health on the port the gateway listens on; the Service,
  the PodDisruptionBudget, the NetworkPolicy and the HorizontalPodAutoscaler find what they
  name; every Secret and ConfigMap the pods use is defined; the resources follow the sizing rule
  written in deployment.yaml; and the gateway itself accepts the configuration the pod gives it
  (the image's environment and arguments, the Deployment's, the mounted config file and keys).
- compose.yaml is the same stack: three gateways with the Deployment's environment, nginx with
  deploy/nginx/replicas.conf, and Redis run as redis.yaml runs it.
"""

from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from copy import deepcopy
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml

from opencode_openai.backend.process import OpenCodeProcess
from opencode_openai.core.errors import SettingsError
from opencode_openai.core.settings import GatewayConfig, settings

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE = COMPOSE_DIR / "compose.yaml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
NGINX_REPLICAS = ROOT / "deploy" / "nginx" / "replicas.conf"

#: The Kubernetes versions whose schemas the manifests must pass: the oldest these manifests
#: are meant for, and the newest that kubernetes-validate (pinned in pyproject.toml) bundles.
KUBERNETES_VERSIONS = ("1.30", "1.37")

#: What the sizing rule of deployment.yaml allows the gateway itself (its RSS stays under the
#: benchmark's bound of 150 MB), and each OpenCode worker at first (about 400 MB), and above
#: --recycle-rss-mb while it waits for its next check (every 50 turns).
GATEWAY_MEMORY_MI = 160
WORKER_REQUEST_MI = 512
WORKER_SLACK_MI = 256
GATEWAY_CPU_M = 250
WORKER_CPU_M = 1200

#: How long a stopping gateway gives each OpenCode process to exit before SIGKILL.
OPENCODE_STOP_S = inspect.signature(OpenCodeProcess.terminate).parameters["grace_s"].default


# --- reading the files -----------------------------------------------------------------------


def manifest_files() -> list[Path]:
    return sorted(KUBERNETES.rglob("*.yaml"))


def documents() -> list[dict[str, Any]]:
    return [
        doc
        for path in manifest_files()
        for doc in yaml.safe_load_all(path.read_text())
        if doc is not None
    ]


def find(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        doc
        for doc in documents()
        if doc["kind"] == kind and name in (None, doc["metadata"]["name"])
    ]
    assert len(found) == 1, f"{len(found)} {kind} {name or ''} in deploy/kubernetes/"
    return found[0]


def gateway() -> dict[str, Any]:
    return find("Deployment", "opencode-openai")


def container(workload: dict[str, Any], name: str) -> dict[str, Any]:
    [found] = [c for c in workload["spec"]["template"]["spec"]["containers"] if c["name"] == name]
    return found


def env(c: dict[str, Any]) -> dict[str, str]:
    """A container's plain environment variables (none of these come from valueFrom)."""
    assert all("value" in item for item in c["env"]), "an env entry without a plain value"
    return {item["name"]: item["value"] for item in c["env"]}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def compose_gateways() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if name.startswith("gateway")
    }


def image_env() -> dict[str, str]:
    """The Dockerfile's ENV (one instruction, `A=B` pairs over continued lines)."""
    text = DOCKERFILE.read_text().replace("\\\n", " ")
    [line] = [line for line in text.splitlines() if line.startswith("ENV ")]
    return dict(pair.split("=", 1) for pair in line.split()[1:])


def image_arguments() -> dict[str, Any]:
    """The flags of the Dockerfile's ENTRYPOINT after `server-openai`, as `given` values."""
    [line] = [line for line in DOCKERFILE.read_text().splitlines() if line.startswith("ENTRYPOINT")]
    argv: list[str] = json.loads(line.removeprefix("ENTRYPOINT"))
    flags = argv[argv.index("server-openai") + 1 :]
    assert flags == ["--host", flags[1]], f"the ENTRYPOINT's flags changed: {flags}"
    return {"host": flags[1]}


def quantity(text: str | int) -> Decimal:
    """A Kubernetes quantity (`1184Mi`, `2650m`, `2`) in bytes or cores."""
    units = {"m": Decimal("0.001"), "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "": 1}
    found = re.fullmatch(r"(\d+(?:\.\d+)?)(m|Ki|Mi|Gi|)", str(text))
    assert found, f"not a quantity this test reads: {text!r}"
    return Decimal(found.group(1)) * Decimal(units[found.group(2)])


def port_number(c: dict[str, Any], port: str | int) -> int:
    """A probe's or a Service's port, named or numbered, as the container's port number."""
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    number = ports[port] if isinstance(port, str) else port
    assert number in ports.values(), f"port {port} is none of the container's {ports}"
    return int(number)


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = workload["spec"]["template"]["metadata"]["labels"]
    return labels


# --- the schemas ------------------------------------------------------------------------------


def test_the_manifests_are_the_whole_stack() -> None:
    kinds = sorted((doc["kind"], doc["metadata"]["name"]) for doc in documents())
    assert kinds == [
        ("ConfigMap", "opencode-openai-config"),
        ("Deployment", "opencode-openai"),
        ("HorizontalPodAutoscaler", "opencode-openai"),
        ("NetworkPolicy", "opencode-openai-redis"),
        ("PodDisruptionBudget", "opencode-openai"),
        ("Secret", "opencode-openai-keys"),
        ("Secret", "opencode-openai-providers"),
        ("Service", "opencode-openai"),
        ("Service", "opencode-openai-redis"),
        ("StatefulSet", "opencode-openai-redis"),
    ]


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_strictly(version: str) -> None:
    failures = []
    for path in manifest_files():
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is None:
                continue
            try:
                used = kubernetes_validate.validate(doc, version, strict=True)
            except kubernetes_validate.ValidationError as exc:
                where = ".".join(str(part) for part in exc.path)
                failures.append(f"{path.relative_to(ROOT)}: {doc['kind']} {where}: {exc.message}")
                continue
            # No quiet fall-back to an older version's schemas.
            assert used == version
    assert not failures, "\n".join(failures)


def test_the_validation_refuses_an_unknown_field() -> None:
    """The check above can fail: strict schemas refuse a field Kubernetes does not have."""
    deployment = deepcopy(gateway())
    container(deployment, "gateway")["readinessProbes"] = []
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessProbes"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def check_compose(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.compose-spec",
         str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_compose_file_validates() -> None:
    result = check_compose(COMPOSE)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_compose_validation_refuses_an_unknown_field(tmp_path: Path) -> None:
    text = COMPOSE.read_text()
    broken = tmp_path / "compose.yaml"
    broken.write_text(text.replace("\n  redis:\n", "\n  redis:\n    replica: 2\n", 1))
    assert broken.read_text() != text
    result = check_compose(broken)
    assert result.returncode == 1 and "replica" in result.stdout, result.stdout


# --- the Deployment ---------------------------------------------------------------------------


def test_termination_grace_covers_the_prestop_sleep_and_the_shutdown_grace() -> None:
    pod = gateway()["spec"]["template"]["spec"]
    c = container(gateway(), "gateway")
    command = c["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep" and len(command) == 2, command
    sleep = float(command[1])
    assert sleep > 0
    grace = float(env(c)["OPENCODE_OPENAI_SHUTDOWN_GRACE"])
    # SIGTERM after the sleep; then the requests' grace, then OpenCode's SIGTERM-to-SIGKILL.
    assert pod["terminationGracePeriodSeconds"] >= sleep + grace + OPENCODE_STOP_S


def gateway_config_of(environ: dict[str, str], given: dict[str, Any]) -> GatewayConfig:
    return GatewayConfig.from_sources(given, environ)


def mounted_files(workload: dict[str, Any], c: dict[str, Any], root: Path) -> None:
    """Write what the pod's ConfigMap and Secret volumes hold under `root` + mountPath."""
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    for mount in c["volumeMounts"]:
        volume = volumes[mount["name"]]
        if "configMap" in volume:
            data = find("ConfigMap", volume["configMap"]["name"])["data"]
        elif "secret" in volume:
            data = find("Secret", volume["secret"]["secretName"])["stringData"]
        else:
            continue
        directory = root / mount["mountPath"].lstrip("/")
        directory.mkdir(parents=True)
        for key, value in data.items():
            (directory / key).write_text(value)


def pod_environment(root: Path, api_keys: str | None) -> dict[str, str]:
    """The gateway container's environment, its files' paths moved under `root`; `api_keys`
    replaces the shipped key file (None: as shipped)."""
    c = container(gateway(), "gateway")
    mounted_files(gateway(), c, root)
    mounts = [m["mountPath"] for m in c["volumeMounts"]]
    environ = {**image_env(), **env(c)}
    for name, value in environ.items():
        if any(value.startswith(mount + "/") for mount in mounts):
            environ[name] = str(root / value.lstrip("/"))
            assert Path(environ[name]).is_file(), f"{name}={value}: no volume holds that file"
    if api_keys is not None:
        Path(environ["OPENAI_PROXY_API_KEY_FILE"]).write_text(api_keys)
    return environ


def test_the_gateway_accepts_the_pods_configuration(tmp_path: Path) -> None:
    """The settings as the pod's gateway reads them: the image's ENV and ENTRYPOINT flags, the
    Deployment's env, the ConfigMap's file and the Secret's key file (with a key put in)."""
    c = container(gateway(), "gateway")
    known = {variable for setting in settings() for variable in setting.env}
    assert set(env(c)) <= known, "a variable that no setting reads"
    environ = pod_environment(tmp_path, "sk-" + "k" * 43 + "\n")
    config = gateway_config_of(environ, image_arguments())
    assert config.port == port_number(c, "http")
    assert config.shutdown_grace_s == float(env(c)["OPENCODE_OPENAI_SHUTDOWN_GRACE"])
    assert config.opencode_workers == int(env(c)["OPENCODE_OPENAI_OPENCODE_WORKERS"])
    assert config.timeout_s > 0 and len(config.api_keys) == 1
    assert config.shared_store and config.store.reveal() == env(c)["OPENCODE_OPENAI_STORE"]


def test_the_shipped_key_secret_holds_no_key(tmp_path: Path) -> None:
    """As shipped, the Secret's key file is only comments: the gateway refuses to start
    (exit code 2) rather than run with a key that everyone can read in this repository."""
    environ = pod_environment(tmp_path, api_keys=None)
    with pytest.raises(SettingsError, match="holds no key"):
        gateway_config_of(environ, image_arguments())


def test_the_probes_ask_health_on_the_gateways_port() -> None:
    c = container(gateway(), "gateway")
    listens = int(env(c).get("OPENAI_PROXY_PORT", image_env()["OPENAI_PROXY_PORT"]))
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = c[probe]["httpGet"]
        assert get["path"] == "/health", probe
        assert port_number(c, get["port"]) == listens, probe
        assert "scheme" not in get or get["scheme"] == "HTTP", probe


def test_the_startup_probe_waits_as_long_as_opencodes_start_up(tmp_path: Path) -> None:
    """Until the startup probe passes, the liveness probe does not run: it must allow the
    whole --startup-timeout, or a slow OpenCode start gets the pod killed."""
    c = container(gateway(), "gateway")
    environ = pod_environment(tmp_path, "sk-" + "k" * 43 + "\n")
    startup_timeout = gateway_config_of(environ, image_arguments()).startup_timeout_s
    probe = c["startupProbe"]
    budget = (
        probe.get("initialDelaySeconds", 0) + probe["periodSeconds"] * probe["failureThreshold"]
    )
    assert budget >= startup_timeout
    liveness = c["livenessProbe"]
    assert liveness["periodSeconds"] * liveness["failureThreshold"] >= 30, (
        "a liveness probe that restarts the pod for a crashed OpenCode being restarted"
    )


def test_the_state_dir_is_the_pods_own_volume() -> None:
    c = container(gateway(), "gateway")
    state_dir = env(c).get("OPENCODE_OPENAI_STATE_DIR", image_env()["OPENCODE_OPENAI_STATE_DIR"])
    volumes = {v["name"]: v for v in gateway()["spec"]["template"]["spec"]["volumes"]}
    [mount] = [m for m in c["volumeMounts"] if m["mountPath"] == state_dir]
    assert "emptyDir" in volumes[mount["name"]], "one gateway per state directory: not shared"


def test_resources_follow_the_sizing_rule() -> None:
    c = container(gateway(), "gateway")
    workers = int(env(c)["OPENCODE_OPENAI_OPENCODE_WORKERS"])
    recycle_mb = int(env(c)["OPENCODE_OPENAI_RECYCLE_RSS_MB"])
    assert recycle_mb > 0, "a worker that is never recycled grows past any limit"
    resources = c["resources"]
    mi = Decimal(2**20)
    assert quantity(resources["requests"]["memory"]) >= mi * (
        GATEWAY_MEMORY_MI + workers * WORKER_REQUEST_MI
    )
    assert quantity(resources["limits"]["memory"]) >= mi * (
        GATEWAY_MEMORY_MI + workers * (recycle_mb + WORKER_SLACK_MI)
    )
    assert quantity(resources["requests"]["cpu"]) >= Decimal(
        GATEWAY_CPU_M + workers * WORKER_CPU_M
    ) / Decimal(1000)


def referenced(workload: dict[str, Any]) -> Iterator[tuple[str, str, bool]]:
    """(kind, name, optional) of each ConfigMap and Secret a pod template uses."""
    pod = workload["spec"]["template"]["spec"]
    for volume in pod.get("volumes", []):
        for field, kind, key in (
            ("configMap", "ConfigMap", "name"),
            ("secret", "Secret", "secretName"),
        ):
            if field in volume:
                yield kind, volume[field][key], volume[field].get("optional", False)
    for c in pod["containers"]:
        for source in c.get("envFrom", []):
            for field, kind in (("configMapRef", "ConfigMap"), ("secretRef", "Secret")):
                if field in source:
                    yield kind, source[field]["name"], source[field].get("optional", False)
        for item in c.get("env", []):
            for field, kind in (("configMapKeyRef", "ConfigMap"), ("secretKeyRef", "Secret")):
                ref = item.get("valueFrom", {}).get(field)
                if ref:
                    yield kind, ref["name"], ref.get("optional", False)


def test_every_secret_and_configmap_used_is_defined() -> None:
    defined = {(doc["kind"], doc["metadata"]["name"]) for doc in documents()}
    used = [ref for workload in (gateway(), find("StatefulSet")) for ref in referenced(workload)]
    assert {(kind, name) for kind, name, _ in used} == {
        ("ConfigMap", "opencode-openai-config"),
        ("Secret", "opencode-openai-keys"),
        ("Secret", "opencode-openai-providers"),
    }
    missing = [(kind, name) for kind, name, _ in used if (kind, name) not in defined]
    assert not missing, f"used but not in deploy/kubernetes/: {missing}"
    # The keys are no option: a pod without them must not start.
    assert not any(optional for kind, name, optional in used if name == "opencode-openai-keys")
    c = container(gateway(), "gateway")
    volumes = {v["name"] for v in gateway()["spec"]["template"]["spec"]["volumes"]}
    assert {m["name"] for m in c["volumeMounts"]} <= volumes


# --- what finds what --------------------------------------------------------------------------


def test_the_service_selects_the_gateway_pods_on_their_port() -> None:
    service = find("Service", "opencode-openai")
    selector = service["spec"]["selector"]
    assert matches(selector, pod_labels(gateway()))
    assert not matches(selector, pod_labels(find("StatefulSet")))
    assert gateway()["spec"]["selector"]["matchLabels"] == selector
    c = container(gateway(), "gateway")
    [port] = service["spec"]["ports"]
    assert port_number(c, port["targetPort"]) == port_number(c, "http")


def test_the_hpa_scales_the_deployment() -> None:
    hpa = find("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["apiVersion"], target["kind"], target["name"]) == (
        gateway()["apiVersion"],
        "Deployment",
        gateway()["metadata"]["name"],
    )
    assert hpa["spec"]["minReplicas"] >= 3
    # The autoscaler owns the count: a `replicas` here would reset it at every apply.
    assert "replicas" not in gateway()["spec"]
    # It scales on CPU, a share of the container's request, which must be set.
    [metric] = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert "cpu" in container(gateway(), "gateway")["resources"]["requests"]


def test_the_disruption_budget_covers_the_gateway_pods() -> None:
    pdb = find("PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == gateway()["spec"]["selector"]["matchLabels"]


def redis_url(environ: dict[str, str]) -> tuple[str | None, int | None]:
    url = urlsplit(environ["OPENCODE_OPENAI_STORE"])
    assert url.scheme == "redis" and url.path == "/0", url
    return url.hostname, url.port


def test_the_store_is_the_redis_service() -> None:
    service = find("Service", "opencode-openai-redis")
    redis = find("StatefulSet", "opencode-openai-redis")
    assert redis["spec"]["serviceName"] == service["metadata"]["name"]
    assert matches(service["spec"]["selector"], pod_labels(redis))
    assert redis["spec"]["selector"]["matchLabels"] == service["spec"]["selector"]
    [port] = service["spec"]["ports"]
    c = container(redis, "redis")
    assert port_number(c, port["targetPort"]) == 6379
    host, number = redis_url(env(container(gateway(), "gateway")))
    assert (host, number) == (service["metadata"]["name"], port["port"])


def test_only_the_gateways_reach_redis() -> None:
    policy = find("NetworkPolicy")
    redis = find("StatefulSet", "opencode-openai-redis")
    assert matches(policy["spec"]["podSelector"]["matchLabels"], pod_labels(redis))
    [rule] = policy["spec"]["ingress"]
    [peer] = rule["from"]
    assert matches(peer["podSelector"]["matchLabels"], pod_labels(gateway()))
    [port] = rule["ports"]
    assert port_number(container(redis, "redis"), port["port"]) == 6379


# --- compose ----------------------------------------------------------------------------------


def test_compose_runs_three_gateways_nginx_and_redis() -> None:
    services = ["gateway-1", "gateway-2", "gateway-3", "nginx", "redis"]
    assert sorted(compose()["services"]) == services
    gateways = compose_gateways().values()
    assert len({service["image"] for service in gateways}) == 1
    assert all(service["network_mode"] == "service:nginx" for service in gateways)


def test_compose_gateways_have_the_deployments_environment() -> None:
    kubernetes = env(container(gateway(), "gateway"))
    ports = []
    for name, service in compose_gateways().items():
        environment = {key: str(value) for key, value in service["environment"].items()}
        ports.append(environment.pop("OPENAI_PROXY_PORT"))
        assert environment.keys() == kubernetes.keys(), name
        differ = {key for key in kubernetes if kubernetes[key] != environment[key]}
        assert differ == {"OPENCODE_OPENAI_STORE"}, name
        assert redis_url(environment) == ("redis", 6379)
        assert service["configs"] == [
            {"source": "gateway-config", "target": environment["OPENAI_PROXY_CONFIG"]}
        ]
        assert service["secrets"] == [
            {"source": "api-keys", "target": environment["OPENAI_PROXY_API_KEY_FILE"]}
        ]
        health = service["healthcheck"]["test"]
        assert health[0] == "CMD" and "/health" in " ".join(health)
        grace = float(environment["OPENCODE_OPENAI_SHUTDOWN_GRACE"])
        stop = service["stop_grace_period"]
        assert stop.endswith("s") and float(stop[:-1]) >= grace + OPENCODE_STOP_S, name
    assert len(set(ports)) == 3, "each gateway of nginx's network namespace needs its own port"


def test_compose_gateways_are_sized_as_the_pods() -> None:
    pod = container(gateway(), "gateway")["resources"]
    mib = Decimal(2**20)
    for name, service in compose_gateways().items():
        resources = service["deploy"]["resources"]
        for compose_side, kube_side in (("reservations", "requests"), ("limits", "limits")):
            memory = resources[compose_side]["memory"]
            assert memory.endswith("m"), memory
            assert Decimal(memory[:-1]) * mib == quantity(pod[kube_side]["memory"]), name
        cpus = Decimal(resources["reservations"]["cpus"])
        assert cpus == quantity(pod["requests"]["cpu"]), name


def test_compose_config_file_is_the_configmaps() -> None:
    assert compose()["configs"]["gateway-config"]["file"] == "./config.toml"
    text = (COMPOSE_DIR / "config.toml").read_text()
    assert text == find("ConfigMap")["data"]["config.toml"]
    tomllib.loads(text)


def test_compose_redis_runs_as_in_kubernetes() -> None:
    redis = compose()["services"]["redis"]
    pod = container(find("StatefulSet"), "redis")
    assert redis["image"] == pod["image"]
    assert redis["command"] == ["redis-server", *pod["args"]]


def test_compose_nginx_runs_the_replicas_site() -> None:
    volumes = compose()["services"]["nginx"]["volumes"]
    sources = [volume.split(":")[0] for volume in volumes]
    assert "../nginx/replicas.conf" in sources
    assert (COMPOSE_DIR / "../nginx/replicas.conf").resolve() == NGINX_REPLICAS.resolve()
    if not NGINX_REPLICAS.exists():
        reason = f"{NGINX_REPLICAS.relative_to(ROOT)} is not in this checkout yet"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; compose.yaml mounts it")
        pytest.skip(reason)
    upstream = re.search(r"upstream \w+ \{(.*?)\}", NGINX_REPLICAS.read_text(), re.S)
    assert upstream, "replicas.conf has no upstream"
    servers = re.findall(r"^\s*server\s+127\.0\.0\.1:(\d+)", upstream.group(1), re.M)
    ports = sorted(str(s["environment"]["OPENAI_PROXY_PORT"]) for s in compose_gateways().values())
    assert sorted(servers) == ports, "nginx's upstream is not the compose gateways' ports"
