"""The production stack's files, checked without a Docker engine (CI has none): the compose
file uses only keys of the Compose specification, has the services, replicas and health
checks docs/scale-out.md promises, and names only settings, commands and files that exist.
(`docker compose config` needs the compose plugin, which this machine's Docker CLI lacks;
docs/scale-out.md says how the file was validated by hand.)"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from service.cli import app as cli_app
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"

# the Compose specification's top-level and service keys (compose-spec, schema/compose-spec.json)
TOP_LEVEL_KEYS = {
    "version",
    "name",
    "include",
    "services",
    "networks",
    "volumes",
    "secrets",
    "configs",
}
SERVICE_KEYS = {
    "annotations", "attach", "blkio_config", "build", "cap_add", "cap_drop", "cgroup",
    "cgroup_parent", "command", "configs", "container_name", "cpu_count", "cpu_percent",
    "cpu_period", "cpu_quota", "cpu_rt_period", "cpu_rt_runtime", "cpu_shares", "cpus",
    "cpuset", "credential_spec", "depends_on", "deploy", "develop", "device_cgroup_rules",
    "devices", "dns", "dns_opt", "dns_search", "domainname", "entrypoint", "env_file",
    "environment", "expose", "extends", "external_links", "extra_hosts", "group_add",
    "healthcheck", "hostname", "image", "init", "ipc", "isolation", "labels", "links",
    "logging", "mac_address", "mem_limit", "mem_reservation", "mem_swappiness",
    "memswap_limit", "network_mode", "networks", "oom_kill_disable", "oom_score_adj", "pid",
    "pids_limit", "platform", "ports", "privileged", "profiles", "pull_policy", "read_only",
    "restart", "runtime", "scale", "secrets", "security_opt", "shm_size", "stdin_open",
    "stop_grace_period", "stop_signal", "storage_opt", "sysctls", "tmpfs", "tty", "ulimits",
    "user", "userns_mode", "uts", "volumes", "volumes_from", "working_dir",
}  # fmt: skip
HEALTHCHECK_KEYS = {
    "disable",
    "interval",
    "retries",
    "test",
    "timeout",
    "start_period",
    "start_interval",
}
DEPENDS_CONDITIONS = {"service_started", "service_healthy", "service_completed_successfully"}
_VAR = re.compile(r"\$\{([A-Z0-9_]+)(?::?-([^}]*))?\}")


def _interpolate(value: Any) -> Any:
    """Compose's `${VAR:-default}` with no variable set: the defaults the file ships with."""
    if isinstance(value, str):
        return _VAR.sub(lambda m: m.group(2) or "", value.replace("$$", "\0")).replace("\0", "$")
    if isinstance(value, list):
        return [_interpolate(v) for v in value]
    if isinstance(value, dict):
        return {k: _interpolate(v) for k, v in value.items()}
    return value


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    raw = yaml.safe_load(COMPOSE.read_text())
    return dict(_interpolate(raw))


def _command(svc: dict[str, Any]) -> list[str]:
    cmd = svc["command"]
    return cmd.split() if isinstance(cmd, str) else list(cmd)


def _health(svc: dict[str, Any]) -> str:
    test = svc["healthcheck"]["test"]
    return " ".join(test) if isinstance(test, list) else str(test)


def test_compose_uses_only_specification_keys(compose: dict[str, Any]) -> None:
    assert {k for k in compose if not k.startswith("x-")} <= TOP_LEVEL_KEYS
    for name, svc in compose["services"].items():
        unknown = {k for k in svc if not k.startswith("x-")} - SERVICE_KEYS
        assert not unknown, f"service {name}: {unknown} are not Compose keys"
        assert "image" in svc or "build" in svc, name
        if "healthcheck" in svc:
            assert set(svc["healthcheck"]) <= HEALTHCHECK_KEYS, name
        deps = svc.get("depends_on", {})
        for dep, how in deps.items() if isinstance(deps, dict) else ((d, {}) for d in deps):
            assert dep in compose["services"], f"{name} depends on unknown {dep}"
            cond = how.get("condition", "service_started")
            assert cond in DEPENDS_CONDITIONS, (name, dep, cond)
            if cond == "service_healthy":
                assert "healthcheck" in compose["services"][dep], f"{dep} has no healthcheck"
        for vol in svc.get("volumes", []):
            src = vol.split(":", 1)[0]
            if src.startswith("./"):
                assert (ROOT / src).is_file(), f"{name} mounts missing {src}"
            else:
                assert src in compose.get("volumes", {}), f"{name}: undeclared volume {src}"


def test_the_stack_has_its_processes_replicas_and_health_checks(compose: dict[str, Any]) -> None:
    svcs = compose["services"]
    assert {"postgres", "redis", "api", "scheduler", "worker", "proxy"} <= set(svcs)
    commands = {n for n in typer.main.get_command(cli_app).commands}  # type: ignore[attr-defined]
    for name in ("api", "scheduler", "worker"):
        cmd = _command(svcs[name])
        assert cmd[0] == "greenopt" and cmd[1] in commands, (name, cmd)
    assert _command(svcs["api"])[1] == "serve"
    assert _command(svcs["scheduler"])[1] == "scheduler"
    assert _command(svcs["worker"])[1] == "worker"
    # scalable services: nothing that would make two replicas collide
    for name in ("api", "worker"):
        assert "container_name" not in svcs[name] and "ports" not in svcs[name], name
    assert int(svcs["api"]["deploy"]["replicas"]) >= 2
    assert int(svcs["worker"]["deploy"]["replicas"]) >= 1
    assert int(svcs["scheduler"]["deploy"]["replicas"]) == 1
    assert "/readyz" in _health(svcs["api"])
    assert "inspect ping" in _health(svcs["worker"]) and "service.celery_app" in _health(
        svcs["worker"]
    )
    assert "pg_isready" in _health(svcs["postgres"])
    assert "redis-cli ping" in _health(svcs["redis"])
    # the proxy is the one published port, and forwards to the API's port
    assert svcs["proxy"]["ports"]
    api_port = svcs["api"]["environment"]["GREENOPT_PORT"]
    assert f"http://api:{api_port}" in (ROOT / "deploy" / "nginx.conf").read_text()


def test_every_setting_named_exists_and_the_processes_share_the_stores(
    compose: dict[str, Any],
) -> None:
    fields = set(Settings.model_fields)
    envs = {}
    for name, svc in compose["services"].items():
        env = svc.get("environment", {})
        assert isinstance(env, dict), f"{name}: environment as a mapping, please"
        for key in env:
            if key.startswith("GREENOPT_"):
                assert key.removeprefix("GREENOPT_").lower() in fields, f"{name}: unknown {key}"
        envs[name] = env
    for name in ("api", "scheduler", "worker"):
        assert envs[name]["GREENOPT_RUNNER"] == "celery", name
        assert envs[name]["GREENOPT_DATABASE_URL"] == envs["api"]["GREENOPT_DATABASE_URL"]
        assert envs[name]["GREENOPT_BROKER_URL"] == envs["api"]["GREENOPT_BROKER_URL"]
        # every value must be one the settings accept
        Settings(**{k.removeprefix("GREENOPT_").lower(): v for k, v in envs[name].items()})
    assert "@postgres:5432/" in envs["api"]["GREENOPT_DATABASE_URL"]
    assert envs["api"]["GREENOPT_BROKER_URL"].startswith("redis://redis:6379")


def test_the_dockerfile_installs_the_package_and_its_data() -> None:
    dockerfile = ROOT / "deploy" / "Dockerfile"
    text = dockerfile.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    # the extras of the image's processes (API, scheduler, worker), at CI's versions
    m = re.search(
        r"^RUN pip install -c /tmp/src/constraints\.txt '/tmp/src\[([a-z,]+)\]'", text, re.M
    )
    assert m, "the image installs the package with its extras under constraints.txt"
    assert set(m.group(1).split(",")) == {"service", "worker"}
    copied = []
    for src in re.findall(r"^COPY (\S+(?: \S+)*) \S+$", text, re.M):
        for path in src.split():
            assert (ROOT / path).exists(), f"COPY {path}: not in the repository"
            copied.append(path)
    assert "constraints.txt" in copied and "bench" not in copied  # no benchmark in the product
    # an installed package has no data/ beside it: the default scenario must be named
    m = re.search(r"GREENOPT_DEFAULT_SCENARIO=(\S+)", text)
    assert m and m.group(1).startswith("/app/data/")
    assert (ROOT / "data" / m.group(1).removeprefix("/app/data/") / "scenario.toml").is_file()
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".git" in ignored and ".venv" in ignored
