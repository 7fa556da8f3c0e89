"""The init Jobs' scripts, run for real (sh + curl) against a recording HTTP server on loopback.

Elasticsearch and Kibana cannot run here, so this checks the scripts' side of the conversation:
the requests they send (method, path, headers, body), their order, that a second run sends the
same requests (idempotent), and that a refused request fails the Job instead of passing silently.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.support.manifests import DEPLOY

pytestmark = pytest.mark.integration

ES_DIR = DEPLOY / "observability" / "elasticsearch"
KIBANA_DIR = DEPLOY / "observability" / "kibana"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


Answer = tuple[int, bytes]


class Recorder:
    """An HTTP server that records every request and answers with `respond(request)`."""

    def __init__(self, respond: Callable[[Request], Answer]) -> None:
        self.requests: list[Request] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command,
                    self.path,
                    {key.lower(): value for key, value in self.headers.items()},
                    self.rfile.read(length),
                )
                recorder.requests.append(request)
                status, body = respond(request)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            # http.server dispatches each method to do_<METHOD>.
            def do_GET(self) -> None:
                self._handle()

            def do_PUT(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def recorder() -> Iterator[Callable[[Callable[[Request], Answer]], Recorder]]:
    if shutil.which("curl") is None:
        pytest.skip("curl is not installed (Debian package `curl`; the Jobs' image has it)")
    started: list[Recorder] = []

    def start(respond: Callable[[Request], Answer]) -> Recorder:
        started.append(Recorder(respond))
        return started[-1]

    yield start
    for server in started:
        server.close()


def run(script: Path, variable: str, url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", str(script)],
        env={"PATH": "/usr/bin:/bin", variable: url, "WAIT_SECONDS": "0.1"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def elasticsearch(template_status: int) -> Callable[[Request], Answer]:
    def respond(request: Request) -> Answer:
        if request.method == "GET" and request.path.startswith("/_cluster/health"):
            return 200, b'{"status":"green"}'
        if request.path == "/_index_template/pleno-logs":
            return template_status, b'{"acknowledged":true}'
        return 200, b'{"acknowledged":true}'

    return respond


def test_elasticsearch_init_installs_policy_then_template_and_can_run_again(
    recorder: Callable[[Callable[[Request], Answer]], Recorder],
) -> None:
    server = recorder(elasticsearch(template_status=200))
    for _ in range(2):
        done = run(ES_DIR / "init.sh", "ELASTICSEARCH_URL", server.url)
        assert done.returncode == 0, done.stdout + done.stderr
    first, second = server.requests[:3], server.requests[3:]
    assert [(r.method, r.path.split("?")[0]) for r in first] == [
        ("GET", "/_cluster/health"),
        ("PUT", "/_ilm/policy/pleno-logs"),
        ("PUT", "/_index_template/pleno-logs"),
    ]
    assert [(r.method, r.path, r.body) for r in second] == [
        (r.method, r.path, r.body) for r in first
    ], "a second run sends exactly the same requests"
    assert "wait_for_status=yellow" in first[0].path
    policy, template = first[1], first[2]
    assert json.loads(policy.body) == json.loads((ES_DIR / "ilm-policy.json").read_text())
    assert json.loads(template.body) == json.loads((ES_DIR / "index-template.json").read_text())
    assert policy.headers["content-type"] == template.headers["content-type"] == "application/json"


def test_elasticsearch_init_fails_when_elasticsearch_refuses_the_template(
    recorder: Callable[[Callable[[Request], Answer]], Recorder],
) -> None:
    server = recorder(elasticsearch(template_status=400))
    done = run(ES_DIR / "init.sh", "ELASTICSEARCH_URL", server.url)
    assert done.returncode != 0


def kibana(success: bool) -> Callable[[Request], Answer]:
    def respond(request: Request) -> Answer:
        if request.method == "GET" and request.path == "/api/status":
            return 200, b'{"status":{"overall":{"level":"available"}}}'
        answer: dict[str, object] = {
            "success": success,
            "successCount": 7 if success else 6,
            "errors": [],
        }
        return 200, json.dumps(answer, separators=(",", ":")).encode()

    return respond


def test_kibana_import_posts_the_saved_objects_with_overwrite(
    recorder: Callable[[Callable[[Request], Answer]], Recorder],
) -> None:
    server = recorder(kibana(success=True))
    for _ in range(2):
        done = run(KIBANA_DIR / "import.sh", "KIBANA_URL", server.url)
        assert done.returncode == 0, done.stdout + done.stderr
    imports = [r for r in server.requests if r.method == "POST"]
    assert len(imports) == 2
    for request in imports:
        assert request.path == "/api/saved_objects/_import?overwrite=true"
        assert request.headers["kbn-xsrf"] == "true"
        assert request.headers["content-type"].startswith("multipart/form-data")
        assert (KIBANA_DIR / "saved-objects.ndjson").read_bytes() in request.body
        assert b'filename="saved-objects.ndjson"' in request.body


def test_kibana_import_fails_when_any_object_fails(
    recorder: Callable[[Callable[[Request], Answer]], Recorder],
) -> None:
    server = recorder(kibana(success=False))
    done = run(KIBANA_DIR / "import.sh", "KIBANA_URL", server.url)
    assert done.returncode != 0


def kibana_status(overall: str) -> bytes:
    """Kibana 8's /api/status shape, pretty-printed: the services and plugins have levels too."""
    body = {
        "name": "kibana",
        "status": {
            "overall": {"level": overall, "summary": f"Kibana is {overall}"},
            "core": {
                "elasticsearch": {"level": "available", "summary": "Elasticsearch is available"},
                "savedObjects": {"level": "available", "summary": "SavedObjects service is ok"},
            },
            "plugins": {"data": {"level": "available", "summary": "All dependencies available"}},
        },
    }
    return json.dumps(body, indent=2).encode()


def test_kibana_import_waits_for_the_overall_status(
    recorder: Callable[[Callable[[Request], Answer]], Recorder],
) -> None:
    """Sub-services answer "available" while Kibana as a whole is still degraded: no import
    until the overall level is available (whatever the JSON's whitespace)."""
    overall = iter(["degraded", "degraded", "available"])

    def respond(request: Request) -> Answer:
        if request.method == "GET" and request.path == "/api/status":
            return 200, kibana_status(next(overall, "available"))
        return 200, b'{"success":true,"successCount":7,"errors":[]}'

    server = recorder(respond)
    done = run(KIBANA_DIR / "import.sh", "KIBANA_URL", server.url)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = [(r.method, r.path) for r in server.requests]
    assert calls == [("GET", "/api/status")] * 3 + [
        ("POST", "/api/saved_objects/_import?overwrite=true")
    ]
    assert done.stdout.count("waiting for") == 2
