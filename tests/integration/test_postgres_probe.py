"""The postgres StatefulSet's pg_isready probes pass when run the way the kubelet runs them.

An exec probe runs in the container with the container's env and its uid. The pod runs as uid
10002, which has no passwd entry in the image (nss_wrapper covers only the entrypoint's process
tree), so libpq cannot find a default user name and pg_isready answers "no attempt" (exit 3)
although the server is up. This test runs each rendered probe command as that uid, through
setpriv, with the rendered env, against this machine's PostgreSQL (127.0.0.1:5432, trust auth).
"""

from __future__ import annotations

import base64
import pwd
import shutil
import subprocess

import pytest

from tests.support.manifests import K8S, Manifest, one, pod_spec, render

pytestmark = pytest.mark.integration

MINIKUBE = K8S / "overlays" / "minikube"
HOST, PORT = "127.0.0.1", 5432  # the machine's PostgreSQL stands in for the pod's own server
PROBES = ("startupProbe", "livenessProbe", "readinessProbe")


def resolved_env(docs: list[Manifest], container: Manifest) -> dict[str, str]:
    """The container's env with literal values and Secret/ConfigMap keys resolved, as the
    kubelet would pass it (fieldRef and resourceFieldRef are not used here)."""
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
            continue
        source = item["valueFrom"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            data = one(docs, "Secret", ref["name"])["data"]
            env[item["name"]] = base64.b64decode(data[ref["key"]]).decode()
        elif "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            env[item["name"]] = str(one(docs, "ConfigMap", ref["name"])["data"][ref["key"]])
        else:
            raise AssertionError(f"unhandled env source for {item['name']}: {source}")
    return env


def local_target(command: list[str], binary: str) -> list[str]:
    """The probe command with this machine's pg_isready, host and port."""
    replacements = {"--host": f"--host={HOST}", "--port": f"--port={PORT}"}
    return [binary] + [replacements.get(part.split("=", 1)[0], part) for part in command[1:]]


def test_pg_isready_probes_pass_as_the_pod_uid() -> None:
    setpriv = shutil.which("setpriv")
    pg_isready = shutil.which("pg_isready")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed")
    if pg_isready is None:
        pytest.skip("pg_isready (postgresql-client) is not installed")

    docs = render(MINIKUBE)
    spec = pod_spec(one(docs, "StatefulSet", "postgres"))
    container = next(c for c in spec["containers"] if c["name"] == "postgres")
    security = {**spec.get("securityContext", {}), **container.get("securityContext", {})}
    uid, gid = int(security["runAsUser"]), int(security["runAsGroup"])
    as_pod = [setpriv, f"--reuid={uid}", f"--regid={gid}", "--clear-groups"]
    env = {"PATH": "/usr/bin:/bin", **resolved_env(docs, container)}

    # The server itself is up: a failure below is the probe's, not the database's.
    up = subprocess.run(
        [pg_isready, f"--host={HOST}", f"--port={PORT}", "--username=postgres"],
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert up.returncode == 0, f"PostgreSQL is not accepting connections on {HOST}:{PORT}: {up}"

    commands = [container[p]["exec"]["command"] for p in PROBES if "exec" in container.get(p, {})]
    assert len(commands) == len(PROBES)
    for command in commands:
        argv = as_pod + local_target([str(part) for part in command], pg_isready)
        done = subprocess.run(
            argv, env=env, capture_output=True, text=True, timeout=10, check=False
        )
        assert done.returncode == 0, f"{command} as uid {uid}: rc {done.returncode} {done.stdout}"

    # Without a user name, the same command under the same uid gives up: this is what the env
    # in the manifest prevents (checked only where the uid has no passwd entry, as in the pod).
    try:
        pwd.getpwuid(uid)
    except KeyError:
        bare = {k: v for k, v in env.items() if k not in {"PGUSER", "PGDATABASE"}}
        argv = as_pod + local_target([str(part) for part in commands[0]], pg_isready)
        done = subprocess.run(
            argv, env=bare, capture_output=True, text=True, timeout=10, check=False
        )
        assert done.returncode == 3, f"expected 'no attempt' without PGUSER: {done.stdout}"
