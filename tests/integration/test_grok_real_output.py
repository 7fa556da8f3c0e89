"""The Logstash grok pattern, read from the pipeline file, on a real `pleno serve`'s output.

Odd requests (spaces, percent signs, quotes, backslashes, non-ASCII, invalid UTF-8, very long
paths, query strings, unknown methods, 4xx and 5xx) go to real processes; every access line they
write must parse, and every extracted value must be the one the request produced. A second
process logs JSON on stdout and, for the same records, text to a side file
(dual_format/sitecustomize.py), so the text fields can be compared with the JSON fields of the
very same request, latency included.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx
import pytest

from tests.integration.conftest import ServerProcess
from tests.support import logstash
from tests.support.otlp_receiver import OtlpReceiver

pytestmark = pytest.mark.integration

DUAL_FORMAT_SITE = Path(__file__).with_name("dual_format")
LONG_SEGMENT = "x%20y" * 700  # a 3,500-character request target


@dataclass(frozen=True)
class Probe:
    """One request to send, and what its access line must then say."""

    method: str
    target: str  # the raw request target, percent-encoded as on the wire
    route: str | None = None  # the expected route template, when the test knows it
    logged_method: str | None = None
    json_body: Any = None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def path(self) -> str:
        """The decoded path the service sees and logs (ASGI decodes %XX as UTF-8, lossily)."""
        return unquote(self.target.split("?", 1)[0])


PROBES = [
    Probe("GET", "/api/v1/items", "/api/v1/items"),
    Probe("POST", "/api/v1/items", "/api/v1/items", json_body={"name": "widget", "quantity": 3}),
    Probe("GET", "/api/v1/items?limit=2&offset=0&q=a%20b", "/api/v1/items"),
    Probe("GET", "/api/v1/items/999999", "/api/v1/items/{item_id}"),
    Probe("GET", "/api/v1/items/not-a-number", "/api/v1/items/{item_id}"),
    Probe("GET", "/status/503", "/status/{code}"),
    Probe("GET", "/status/500", "/status/{code}"),
    Probe("GET", "/status/418", "/status/{code}"),
    Probe("GET", "/status/999", "/status/{code}"),
    Probe("GET", "/api/v1/status/503", "<unmatched>"),  # the chaos routes are not under /api/v1
    Probe("GET", "/api/v1/work?cpu_ms=20", "/api/v1/work"),
    Probe("GET", "/delay/0.01", "/delay/{seconds}"),
    Probe("PURGE", "/api/v1/items", logged_method="_OTHER"),
    Probe("DELETE", "/api/v1/items"),
    Probe("GET", "/no/such%20path/with%20spaces", "<unmatched>"),
    Probe("GET", "/caf%C3%A9/%E2%82%AC/%F0%9F%9A%80/%E6%97%A5%E6%9C%AC", "<unmatched>"),
    Probe("GET", "/q%22uote/back%5Cslash/pct%2525/plus+sign/tab%09nl%0A", "<unmatched>"),
    Probe("GET", "/invalid-utf8/%FF%FE/%C3", "<unmatched>"),
    Probe("GET", "/sub-delims/!$&'()*+,;=:@~._-", "<unmatched>"),
    Probe("GET", "/" + LONG_SEGMENT + "?also=a%20query", "<unmatched>"),
    Probe("GET", "/api/v1/items/%7Bitem_id%7D", "/api/v1/items/{item_id}"),
    Probe(
        "GET",
        "/api/v1/items",
        "/api/v1/items",
        headers={"User-Agent": 'agent "quoted" \\ back\\slash {}=x'},
    ),
]


@dataclass
class Sent:
    probe: Probe
    request_id: str
    status: int
    trace_id: str | None  # the trace id of the traceparent we sent, if any
    user_agent: str


def drive(url: str) -> list[Sent]:
    """Send every probe once, half of them inside a trace of our own."""
    sent: list[Sent] = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for index, probe in enumerate(PROBES):
            request_id = f"grok-{index:03d}.{secrets.token_hex(4)}"
            headers = {"X-Request-ID": request_id, **probe.headers}
            trace_id = None
            if index % 2:
                trace_id = secrets.token_hex(16)
                headers["traceparent"] = f"00-{trace_id}-{secrets.token_hex(8)}-01"
            response = client.request(
                probe.method, probe.target, headers=headers, json=probe.json_body
            )
            assert response.headers["x-request-id"] == request_id
            user_agent = headers.get("User-Agent", client.headers["User-Agent"])
            sent.append(Sent(probe, request_id, response.status_code, trace_id, user_agent))
    return sent


def record_lines(text: str) -> Iterator[str]:
    """The log records in captured output: lines that start like a record (a timestamp)."""
    for line in text.splitlines():
        if line[:4].isdigit() and line[4:5] == "-":
            yield line


def tracing_env(receiver: OtlpReceiver) -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_TRACES_SAMPLER": "parentbased_always_on",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


def serve_and_drive(
    start_server: Callable[..., ServerProcess], receiver: OtlpReceiver, **settings: str
) -> tuple[list[Sent], str]:
    """Start a traced server, send every probe, stop it; return what was sent and its output."""
    server = start_server(PLENO_LOG_LEVEL="info", **tracing_env(receiver), **settings)
    server.wait_ready()
    sent = drive(server.url)
    server.stop()  # the child has exited: its output is complete
    return sent, server.log_path.read_text(encoding="utf-8")


def test_every_access_line_of_a_text_server_parses_with_the_pipeline_grok(
    start_server: Callable[..., ServerProcess], receiver: OtlpReceiver
) -> None:
    sent, output = serve_and_drive(start_server, receiver, PLENO_LOG_FORMAT="text")

    lines = list(record_lines(output))
    parsed = {line: logstash.grok_match(line) for line in lines}
    failed = [line for line, captures in parsed.items() if captures is None]
    assert not failed, "lines the grok pattern rejects:\n" + "\n".join(failed)
    access = [c for c in parsed.values() if c is not None and c["logger"] == "pleno.access"]
    by_id = {c["request_id"]: c for c in access}
    assert len(access) == len(by_id) == len(sent), "exactly one access line per request"
    assert len(access) == sum(" pleno.access " in line for line in output.splitlines())

    for request in sent:
        captures = by_id[request.request_id]
        probe = request.probe
        assert captures["level"] == "INFO"
        assert captures["method"] == (probe.logged_method or probe.method)
        assert unquote(captures["path"]) == probe.path
        route = unquote(captures["route"])
        if probe.route is not None:
            assert route == probe.route
        assert captures["status"] == request.status
        assert type(captures["status"]) is int
        latency = captures["latency_ms"]
        assert type(latency) is int
        assert latency >= 0
        assert captures["client"] == "127.0.0.1"
        assert json.loads(captures["user_agent"]) == request.user_agent
        assert json.loads(captures["msg"]) == f"{captures['method']} {route} {request.status}" + (
            f" {latency}ms"
        )
        assert len(captures["trace_id"]) == 32
        assert len(captures["span_id"]) == 16
        if request.trace_id is not None:
            assert captures["trace_id"] == request.trace_id
    assert any(c["status"] >= 500 for c in access)
    assert any(c["status"] == 404 for c in access)
    assert any(len(c["path"]) > 3000 for c in access)


def test_text_and_json_lines_of_the_same_requests_agree_field_by_field(
    start_server: Callable[..., ServerProcess], receiver: OtlpReceiver, tmp_path: Path
) -> None:
    text_log = tmp_path / "text-copy.log"
    python_path = os.pathsep.join(
        filter(None, [str(DUAL_FORMAT_SITE), os.environ.get("PYTHONPATH", "")])
    )
    sent, output = serve_and_drive(
        start_server,
        receiver,
        PLENO_LOG_FORMAT="json",
        PLENO_TEST_TEXT_LOG=str(text_log),
        PYTHONPATH=python_path,
    )

    documents = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    json_access = {d["http.request.id"]: d for d in documents if d["log.logger"] == "pleno.access"}
    text_lines = list(record_lines(text_log.read_text(encoding="utf-8")))
    assert len(text_lines) == len(documents) > len(sent), "one text line per JSON record"
    text_access: dict[str, dict[str, Any]] = {}
    for line in text_lines:
        captures = logstash.grok_match(line)
        assert captures is not None, line
        if captures["logger"] == "pleno.access":
            text_access[captures["request_id"]] = captures
    assert set(json_access) == set(text_access) == {s.request_id for s in sent}

    for request in sent:
        document, captures = json_access[request.request_id], text_access[request.request_id]
        # What Logstash's text branch derives (pleno.conf), against the JSON branch's fields.
        assert captures["latency_ms"] == document["latency_ms"]
        assert type(captures["latency_ms"]) is int
        assert captures["status"] == document["http.response.status_code"] == request.status
        assert captures["method"] == document["http.request.method"]
        assert unquote(captures["path"]) == document["url.path"] == request.probe.path
        assert unquote(captures["route"]) == document["http.route"]
        assert captures["level"].lower() == document["log.level"] == "info"
        assert captures["timestamp"] == document["@timestamp"]
        assert captures["trace_id"] == document["trace.id"]
        assert captures["span_id"] == document["span.id"]
        assert json.loads(captures["msg"]) == document["message"]
        assert json.loads(captures["user_agent"]) == document["user_agent.original"]
        assert captures["client"] == document["client.ip"]
        if request.trace_id is not None:
            assert document["trace.id"] == request.trace_id


def _type_ok(value: Any, documented: str) -> bool:
    kinds = {
        "string": lambda v: isinstance(v, str),
        "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "string or null": lambda v: v is None or isinstance(v, str),
    }
    return bool(kinds[documented](value))


def test_json_lines_carry_every_field_the_pipeline_and_kibana_use_with_documented_types(
    start_server: Callable[..., ServerProcess], receiver: OtlpReceiver
) -> None:
    sent, output = serve_and_drive(start_server, receiver, PLENO_LOG_FORMAT="json")

    documented = logstash.documented_json_fields()
    renamed = logstash.plugin_by_id("json-ecs").settings["rename"]
    handled = {source.removeprefix("[@metadata][pleno][").removesuffix("]") for source in renamed}
    kibana_fields: set[str] = set()
    for line in logstash.PIPELINE.parents[2].joinpath("kibana/saved-objects.ndjson").open():
        kibana_fields |= _kibana_fields(json.loads(line))
    documents = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    access = [d for d in documents if d["log.logger"] == "pleno.access"]
    assert len(access) == len(sent)
    for document in documents:
        assert set(document) <= handled, f"the JSON branch drops {set(document) - handled}"
        for name, value in document.items():
            assert _type_ok(value, documented[name].type), (name, value)
    required = {
        name
        for name, spec in documented.items()
        if spec.present in {"all", "in a request", "in a traced request", "access"}
    }
    for document in access:
        assert required <= set(document), required - set(document)
        # Kibana reads these from the parsed event; the JSON branch keeps the names as they are.
        assert kibana_fields <= set(document), kibana_fields - set(document)
        assert document["latency_ms"] == document["event.duration"] // 1_000_000


def _kibana_fields(obj: dict[str, Any]) -> set[str]:
    """Fields a saved object reads (columns and aggregation fields; queries are structural)."""
    attributes = obj["attributes"]
    fields: set[str] = set()
    if obj["type"] == "search":
        fields |= set(attributes["columns"])
    if obj["type"] == "visualization":
        state = json.loads(attributes["visState"])
        fields |= {agg["params"]["field"] for agg in state["aggs"] if "field" in agg["params"]}
    return fields
