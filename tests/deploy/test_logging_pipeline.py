"""The logging stack as configured: Filebeat -> Logstash -> Elasticsearch -> Kibana.

None of these servers runs here, so what can run is run with real engines: the Logstash pipeline
is parsed by logstash-pipeline-parser, its grok pattern (read from the .conf) by pygrok, the
manifests by kubectl kustomize, kubernetes-validate and checkov. The rest is cross-checked:
every field name, index name, host and port that one file expects another to provide.
tests/integration/test_grok_real_output.py runs the same grok on a real process's output.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

from pleno.context import current_request_id
from pleno.observability.logging import AccessRecord, TextFormatter, access_message
from tests.support import logstash
from tests.support.manifests import DEPLOY, K8S, ROOT, Manifest, one, pod_spec, render, select
from tests.unit.test_logging import TEXT_ACCESS_LINE

STACK = K8S / "stacks" / "logging"
OBSERVABILITY = DEPLOY / "observability"
FILEBEAT = OBSERVABILITY / "filebeat" / "filebeat.yml"
FILEBEAT_COMPOSE = OBSERVABILITY / "filebeat" / "filebeat.compose.yml"
LOGSTASH_SETTINGS = OBSERVABILITY / "logstash" / "config" / "logstash.yml"
LOGSTASH_PIPELINES = OBSERVABILITY / "logstash" / "config" / "pipelines.yml"
TEMPLATE = OBSERVABILITY / "elasticsearch" / "index-template.json"
ILM_POLICY = OBSERVABILITY / "elasticsearch" / "ilm-policy.json"
ES_INIT = OBSERVABILITY / "elasticsearch" / "init.sh"
SAVED_OBJECTS = OBSERVABILITY / "kibana" / "saved-objects.ndjson"
KIBANA_IMPORT = OBSERVABILITY / "kibana" / "import.sh"
LOGGING_DOC = ROOT / "docs" / "logging.md"

TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
SPAN_ID = 0x00F067AA0BA902B7


# --- helpers ----------------------------------------------------------------------------------


def ecs_name(field_reference: str) -> str:
    """`[http][response][status_code]` -> `http.response.status_code` (a Logstash field ref)."""
    assert re.fullmatch(r"(\[[^\[\]]+\])+", field_reference), field_reference
    return ".".join(re.findall(r"\[([^\[\]]+)\]", field_reference))


def json_branch_renames() -> dict[str, str]:
    """The JSON branch's key -> ECS field, as the pipeline's `json-ecs` mutate says."""
    rename = logstash.plugin_by_id("json-ecs").settings["rename"]
    prefix = "[@metadata][pleno]"
    out: dict[str, str] = {}
    for source, target in rename.items():
        assert source.startswith(prefix + "["), source
        out[source[len(prefix) + 1 : -1]] = target
    return out


def template_fields() -> dict[str, str]:
    """Every explicitly mapped field of the index template, dotted name -> type."""
    mappings = json.loads(TEMPLATE.read_text())["template"]["mappings"]
    out: dict[str, str] = {}

    def walk(properties: dict[str, Any], prefix: str) -> None:
        for name, spec in properties.items():
            if "properties" in spec:
                walk(spec["properties"], f"{prefix}{name}.")
            else:
                out[f"{prefix}{name}"] = spec["type"]

    walk(mappings["properties"], "")
    return out


def saved_objects() -> list[dict[str, Any]]:
    return [json.loads(line) for line in SAVED_OBJECTS.read_text().splitlines() if line.strip()]


def kql_fields(query: str) -> set[str]:
    """Field names in a KQL query (`field : value`, `field >= 500`)."""
    return set(re.findall(r"([A-Za-z_@][\w.@]*)\s*(?::|>=|<=|<|>)", query))


def kibana_fields(obj: dict[str, Any]) -> set[str]:
    """Every document field one saved object reads."""
    attributes = obj["attributes"]
    fields: set[str] = set()
    if obj["type"] == "index-pattern":
        fields.add(attributes["timeFieldName"])
    if obj["type"] == "search":
        fields |= set(attributes["columns"])
        fields |= {column for column, _ in attributes["sort"]}
    if obj["type"] == "visualization":
        state = json.loads(attributes["visState"])
        fields |= {agg["params"]["field"] for agg in state["aggs"] if "field" in agg["params"]}
    meta = attributes.get("kibanaSavedObjectMeta")
    if meta:
        fields |= kql_fields(json.loads(meta["searchSourceJSON"])["query"]["query"])
    return fields


def index_prefixes() -> dict[str, str]:
    """route-logs / route-failure: the index prefix each route sets."""
    return {
        plugin_id: logstash.plugin_by_id(plugin_id).settings["add_field"][
            "[@metadata][index_prefix]"
        ]
        for plugin_id in ("route-logs", "route-failure")
    }


@pytest.fixture(scope="module")
def stack() -> list[Manifest]:
    return render(STACK)


def workloads(docs: list[Manifest]) -> Iterator[Manifest]:
    for kind in ("Deployment", "StatefulSet", "DaemonSet", "Job"):
        yield from select(docs, kind)


# --- the Logstash pipeline ------------------------------------------------------------------


def test_pipeline_parses_into_beats_input_filters_and_elasticsearch_output() -> None:
    sections = [section for section, _ in logstash.parse()]
    assert sections == ["input", "filter", "output"]
    names = {(plugin.section, plugin.name) for plugin in logstash.plugins()}
    assert ("input", "beats") in names
    assert ("output", "elasticsearch") in names
    for plugin in ("grok", "json", "date", "urldecode", "mutate"):
        assert ("filter", plugin) in names
    ids = [plugin.settings.get("id") for plugin in logstash.plugins()]
    assert None not in ids, "every plugin has an id (it names it in the monitoring API)"
    assert len(ids) == len(set(ids))


def test_strings_are_raw_so_the_grok_pattern_reaches_the_engine_as_written() -> None:
    settings = yaml.safe_load(LOGSTASH_SETTINGS.read_text())
    assert settings.get("config.support_escapes", False) is False


def test_grok_pattern_is_anchored_at_both_ends_and_reads_message() -> None:
    settings = logstash.grok_settings()
    assert settings.source_field == "message"
    assert settings.pattern.startswith("^")
    assert settings.pattern.endswith("$")
    assert not settings.pattern.endswith("\\$")


def test_grok_uses_only_defined_or_standard_patterns() -> None:
    settings = logstash.grok_settings()
    used = set(re.findall(r"%\{(\w+)", settings.pattern))
    standard = {"NOTSPACE", "NONNEGINT"}  # in Logstash's and pygrok's standard libraries
    assert used <= set(settings.definitions) | standard, used - set(settings.definitions)
    for name in settings.definitions:
        assert name.startswith("PLENO_"), "custom patterns never shadow standard ones"


def _text_lines() -> Iterator[str]:
    """Real TextFormatter output for awkward access records, traced and not, plus other records."""
    formatter = TextFormatter()
    paths = [
        ("/api/v1/items", "/api/v1/items"),
        ("/api/v1/items/7", "/api/v1/items/{item_id}"),
        ("/with space/and\ttab", "<unmatched>"),
        ('/quote"back\\slash%percent+plus', "<unmatched>"),
        ("/caf\u00e9/\u20ac/\U0001f680", "<unmatched>"),
        ("/" + "long" * 1000, "<unmatched>"),
        ("/sub-delims/!$&'()*+,;=:@~._-", "<unmatched>"),
    ]
    agents: list[str | None] = ['agent "quoted" \\ back\nslash', None, "curl/8.5.0"]
    for index, (path, route) in enumerate(paths):
        for traced in (False, True):
            access = AccessRecord(
                method="_OTHER" if index == 3 else "GET",
                path=path,
                route=route,
                status=(200, 404, 503, 422)[index % 4],
                duration_ns=(0, 999_999, 1_000_000, 12_345_678_901)[index % 4],
                client_ip=None if index == 2 else "10.0.0.7",
                user_agent=agents[index % 3],
            )
            record = logging.LogRecord("pleno.access", logging.INFO, __file__, 1, "", (), None)
            record.msg = access_message(access)
            record.access = access
            yield _format_in_context(formatter, record, traced, request_id=f"req-{index}:x.y")
    try:
        _fail()
    except ValueError:
        error = logging.LogRecord(
            "pleno.api", logging.ERROR, __file__, 1, "failed %s", ("x",), sys.exc_info()
        )
    yield _format_in_context(formatter, error, traced=True, request_id="abc")
    startup = logging.LogRecord("uvicorn.error", logging.INFO, __file__, 1, "Started", (), None)
    yield formatter.format(startup)


def _fail() -> None:
    raise ValueError('boom "quoted"\nsecond line')


def _format_in_context(
    formatter: logging.Formatter, record: logging.LogRecord, traced: bool, request_id: str
) -> str:
    token = current_request_id.set(request_id)
    try:
        if not traced:
            return formatter.format(record)
        context = SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(1))
        with trace.use_span(NonRecordingSpan(context)):
            return formatter.format(record)
    finally:
        current_request_id.reset(token)


TEXT_LINES = list(_text_lines())


@pytest.mark.parametrize("line", TEXT_LINES, ids=range(len(TEXT_LINES)))
def test_grok_parses_real_text_records_like_the_documented_grammar(line: str) -> None:
    captures = logstash.grok_match(line)
    assert captures is not None, line
    grammar = TEXT_ACCESS_LINE.match(line)
    if grammar is None:  # not an access line: the grammar's shorter form
        assert "method" not in captures
        assert " pleno.access " not in line
        assert json.loads(captures["msg"])
        return
    expected = {name: value for name, value in grammar.groupdict().items() if value != "-"}
    expected["logger"] = "pleno.access"  # a literal in the unit test's regex, a field here
    expected["status"] = int(expected["status"])
    expected["latency_ms"] = int(expected["latency_ms"])
    assert captures == expected
    assert type(captures["latency_ms"]) is int
    assert type(captures["status"]) is int


def test_grok_extracts_trace_ids_only_when_traced() -> None:
    traced = [logstash.grok_match(line) for line in TEXT_LINES if f"{TRACE_ID:032x}" in line]
    assert traced
    assert all(c and c["trace_id"] == f"{TRACE_ID:032x}" for c in traced)
    assert all(c and c["span_id"] == f"{SPAN_ID:016x}" for c in traced)
    untraced = [logstash.grok_match(line) for line in TEXT_LINES if "trace_id=-" in line]
    assert untraced
    assert all(c and "trace_id" not in c and "span_id" not in c for c in untraced)


def _near_misses(line: str) -> Iterator[str]:
    """Lines one mistake away from a valid access line: each breaks the grammar."""
    yield line + " "
    yield " " + line
    yield line + " extra=1"
    yield line.replace(" INFO ", " info ", 1)
    yield line.replace(" INFO ", " NOTICE ", 1)
    yield line.replace(" method=GET", " method=get", 1)
    yield line.replace(" status=404", " status=40", 1)
    yield line.replace(" latency_ms=0", " latency_ms=-1", 1)
    yield line.replace(" latency_ms=0", " latency_ms=1.5", 1)
    yield line.replace(" request_id=", "  request_id=", 1)
    yield line.replace("Z INFO", " INFO", 1)
    yield line.replace(".", ",", 1)
    yield line.replace(' msg="', " msg=", 1)
    yield line.replace(' user_agent="', ' user_agent="un"terminated ', 1)
    yield line.replace("path=/", "path=/has space/", 1)
    yield line.replace(" trace_id=-", " trace_id=" + "A" * 32, 1)
    yield line.replace(" span_id=-", " span_id=" + "0" * 15, 1)
    yield line[: len(line) // 2] + "\n" + line[len(line) // 2 :]


def test_grok_rejects_what_the_grammar_rejects() -> None:
    base = next(line for line in TEXT_LINES if "status=404" in line and "latency_ms=0 " in line)
    assert "trace_id=-" in base
    assert " INFO " in base
    for broken in _near_misses(base):
        assert broken != base
        assert logstash.grok_match(broken) is None, broken


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "garbage",
        "Traceback (most recent call last):",
        '{"@timestamp":"2026-11-28T20:50:01.312Z","log.level":"info","message":"x"}',
        "2026-11-28T20:50:01.312Z INFO pleno.access",
        "2026-11-28 20:50:01,312 INFO something happened",
    ],
)
def test_a_garbage_line_fails_cleanly(garbage: str) -> None:
    assert logstash.grok_match(garbage) is None


def test_json_branch_handles_every_documented_field_under_its_own_ecs_name() -> None:
    renames = json_branch_renames()
    documented = logstash.documented_json_fields()
    assert set(renames) == set(documented), set(renames) ^ set(documented)
    for key, target in renames.items():
        if key == "@timestamp":
            assert target == "[@metadata][timestamp]"  # parsed by the date filter
        else:
            assert ecs_name(target) == key


def test_text_branch_ends_with_the_same_ecs_names_as_the_json_branch() -> None:
    json_targets = {ecs_name(target) for target in json_branch_renames().values()}
    text = logstash.plugin_by_id("text-ecs").settings
    text_targets = {ecs_name(target) for target in text["rename"].values()}
    text_targets |= {
        ecs_name(logstash.plugin_by_id(plugin_id).settings["target"])
        for plugin_id in ("text-msg", "text-user-agent")
    }
    assert text_targets <= json_targets, text_targets - json_targets
    # Every capture of the grok is either renamed or decoded; none is left at the top level.
    captures = set(re.findall(r"%\{\w+:(\w+)", logstash.grok_settings().pattern))
    decoded = {
        logstash.plugin_by_id(plugin_id).settings["source"]
        for plugin_id in ("text-msg", "text-user-agent")
    }
    assert captures == set(text["rename"]) | decoded
    assert set(text["remove_field"]) == decoded
    for plugin_id, field in (("text-path", "path"), ("text-route", "route")):
        assert logstash.plugin_by_id(plugin_id).settings["field"] == field
    date = logstash.plugin_by_id("timestamp").settings
    assert date["match"][0] == "[@metadata][timestamp]"
    assert date["target"] == "@timestamp"
    assert "[@metadata][timestamp]" in (
        json_branch_renames()["@timestamp"],
        text["rename"]["timestamp"],
    )


def test_every_field_the_pipeline_writes_is_mapped_by_the_index_template() -> None:
    mapped = template_fields()
    written = {ecs_name(t) for t in json_branch_renames().values()} - {"@metadata.timestamp"}
    written |= {"@timestamp", "event.original", "tags"}
    assert written <= set(mapped), written - set(mapped)
    assert mapped["latency_ms"] == "long"
    assert mapped["event.duration"] == "long"
    assert mapped["http.response.status_code"] == "long"
    assert mapped["trace.id"] == "keyword"
    assert mapped["http.route"] == "keyword"
    assert mapped["@timestamp"] == "date"


def _enclosing_condition(plugin_id: str) -> str:
    for node in logstash.parse()[1][1]:
        if node[0] == "if":
            *condition, body = node[1]
            if any(p.settings.get("id") == plugin_id for p in logstash._walk(body, "filter")):
                return repr(condition)
    raise AssertionError(f"{plugin_id} is not inside a top-level if")


def test_unparsed_lines_keep_their_raw_text_and_go_to_a_separate_index() -> None:
    keep = logstash.plugin_by_id("keep-original")
    assert keep.settings["copy"] == {"message": "[event][original]"}
    condition = _enclosing_condition("route-failure")
    assert "_grokparsefailure" in condition
    assert "_jsonparsefailure" in condition
    assert logstash.plugin_by_id("text-grok").settings["tag_on_failure"] == ["_grokparsefailure"]
    prefixes = index_prefixes()
    assert prefixes["route-logs"] != prefixes["route-failure"]
    output = logstash.plugin_by_id("elasticsearch").settings
    assert output["index"] == "%{[@metadata][index_prefix]}-%{+YYYY.MM.dd}"
    # The init Job owns the template and the policy; Logstash must not install its own.
    assert output["manage_template"] is False
    assert str(output["ilm_enabled"]) == "false"
    assert str(output["data_stream"]) == "false"


# --- Elasticsearch and Kibana agree with the pipeline ---------------------------------------


def _init_puts(script: Path) -> dict[str, str]:
    """`put <api path> <file>` lines of an init script: api path -> file name."""
    return dict(re.findall(r"^put (\S+) (\S+)$", script.read_text(), flags=re.MULTILINE))


def test_index_names_agree_across_logstash_template_ilm_and_kibana() -> None:
    template = json.loads(TEMPLATE.read_text())
    prefixes = set(index_prefixes().values())
    assert sorted(template["index_patterns"]) == sorted(f"{p}-*" for p in prefixes)
    for prefix in prefixes:  # the index Logstash creates on a given day
        index = f"{prefix}-2026.11.28"
        assert [p for p in template["index_patterns"] if fnmatch.fnmatch(index, p)] == [
            f"{prefix}-*"
        ]
    puts = _init_puts(ES_INIT)
    policies = [path.rsplit("/", 1)[1] for path in puts if path.startswith("_ilm/policy/")]
    assert policies == [template["template"]["settings"]["index"]["lifecycle"]["name"]]
    assert puts[f"_ilm/policy/{policies[0]}"] == ILM_POLICY.name
    assert puts["_index_template/pleno-logs"] == TEMPLATE.name
    assert list(puts) == [f"_ilm/policy/{policies[0]}", "_index_template/pleno-logs"], (
        "the policy exists before the template that names it"
    )
    views = {
        o["id"]: o["attributes"]["title"] for o in saved_objects() if o["type"] == "index-pattern"
    }
    assert views["pleno-logs"] == f"{index_prefixes()['route-logs']}-*"
    assert set(views.values()) == set(template["index_patterns"])


def test_ilm_policy_keeps_logs_hot_then_deletes_them_after_the_documented_days() -> None:
    phases = json.loads(ILM_POLICY.read_text())["policy"]["phases"]
    assert list(phases) == ["hot", "delete"]
    assert phases["delete"]["actions"] == {"delete": {}}
    days = int(re.fullmatch(r"(\d+)d", phases["delete"]["min_age"]).group(1))  # type: ignore[union-attr]
    assert f"{days} days" in LOGGING_DOC.read_text()


def test_init_job_and_import_job_are_idempotent() -> None:
    init = ES_INIT.read_text()
    assert "-X PUT" in init, "PUT creates or replaces"
    assert "POST" not in init
    assert "set -eu" in init
    importer = KIBANA_IMPORT.read_text()
    assert "_import?overwrite=true" in importer
    assert '"success":true' in importer, "a partial import must fail the Job"
    keys = [(o["type"], o["id"]) for o in saved_objects()]
    assert len(keys) == len(set(keys)), "fixed, unique ids: re-importing replaces, never adds"


def test_kibana_objects_read_only_fields_the_template_maps() -> None:
    mapped = set(template_fields())
    for obj in saved_objects():
        fields = kibana_fields(obj)
        assert fields <= mapped, f"{obj['type']} {obj['id']} reads unmapped {fields - mapped}"


def test_kibana_references_resolve_and_the_dashboard_has_the_required_panels() -> None:
    objects = {(o["type"], o["id"]): o for o in saved_objects()}
    for obj in objects.values():
        for reference in obj["references"]:
            assert (reference["type"], reference["id"]) in objects, reference
    errors = objects["search", "pleno-errors"]["attributes"]
    query = json.loads(errors["kibanaSavedObjectMeta"]["searchSourceJSON"])["query"]["query"]
    assert "log.level" in query
    assert "http.response.status_code >= 500" in query

    def aggs(vis_id: str) -> list[dict[str, Any]]:
        state = json.loads(objects["visualization", vis_id]["attributes"]["visState"])
        return state["aggs"]  # type: ignore[no-any-return]

    latency = {(a["type"], a["params"].get("field")) for a in aggs("pleno-latency-by-endpoint")}
    assert {
        ("avg", "latency_ms"),
        ("percentiles", "latency_ms"),
        ("terms", "http.route"),
    } <= latency
    percentiles = next(a for a in aggs("pleno-latency-by-endpoint") if a["type"] == "percentiles")
    assert percentiles["params"]["percents"] == [95]
    levels = {(a["type"], a["params"].get("field")) for a in aggs("pleno-requests-per-level")}
    assert {("date_histogram", "@timestamp"), ("terms", "log.level")} <= levels
    status = {(a["type"], a["params"].get("field")) for a in aggs("pleno-status-codes-over-time")}
    assert {("date_histogram", "@timestamp"), ("terms", "http.response.status_code")} <= status
    dashboard = objects["dashboard", "pleno-logs-dashboard"]
    panels = {(r["type"], r["id"]) for r in dashboard["references"]}
    assert panels == {
        ("visualization", "pleno-latency-by-endpoint"),
        ("visualization", "pleno-requests-per-level"),
        ("visualization", "pleno-status-codes-over-time"),
        ("search", "pleno-errors"),
    }
    names = {p["panelRefName"] for p in json.loads(dashboard["attributes"]["panelsJSON"])}
    assert names == {r["name"] for r in dashboard["references"]}


# --- Filebeat ---------------------------------------------------------------------------------


def _default(value: str) -> str:
    """`${VAR:default}` -> default (Filebeat's environment expansion)."""
    found = re.fullmatch(r"\$\{\w+:(.+)\}", value)
    assert found, value
    return found.group(1)


def test_filebeat_reads_container_logs_with_filestream_and_kubernetes_metadata() -> None:
    config = yaml.safe_load(FILEBEAT.read_text())
    (source,) = config["filebeat.inputs"]
    assert source["type"] == "filestream"
    assert source["id"]
    assert source["prospector.scanner.symlinks"] is True
    assert any("container" in parser for parser in source["parsers"])
    assert "add_kubernetes_metadata" in source["processors"][0]
    assert source["processors"][0]["add_kubernetes_metadata"]["host"] == "${NODE_NAME}"
    # Scope: namespace pleno only (kubelet names files <pod>_<namespace>_<container>-<id>.log).
    (glob,) = source["paths"]
    assert fnmatch.fnmatch("/var/log/containers/pleno-7d9-x2_pleno_pleno-0123abcd.log", glob)
    assert not fnmatch.fnmatch("/var/log/containers/grafana-1_monitoring_grafana-01.log", glob)
    assert not fnmatch.fnmatch("/var/log/containers/pleno-1_pleno-dev_pleno-01.log", glob)
    drop = source["processors"][1]["drop_event"]["when"]["and"]
    assert {"has_fields": ["kubernetes.labels.app_kubernetes_io/name"]} in drop
    assert config["output.logstash"]["loadbalance"] is True
    assert config["queue.mem"]["events"] > 0


def test_filebeat_output_is_the_logstash_service(stack: list[Manifest]) -> None:
    hosts = yaml.safe_load(FILEBEAT.read_text())["output.logstash"]["hosts"]
    (host,) = [_default(item) for item in hosts]
    name, port = host.rsplit(":", 1)
    service_name, namespace, *rest = name.split(".")
    assert rest == ["svc", "cluster", "local"]
    assert namespace == one(stack, "Namespace")["metadata"]["name"] == "logging"
    service = one(stack, "Service", service_name)
    assert service["metadata"]["namespace"] == namespace
    (beats,) = [p for p in service["spec"]["ports"] if p["port"] == int(port)]
    deployment = one(stack, "Deployment", "logstash")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    (container,) = pod_spec(deployment)["containers"]
    (target,) = [p for p in container["ports"] if p["name"] == beats["targetPort"]]
    assert logstash.plugin_by_id("beats").settings["port"] == target["containerPort"] == int(port)
    assert {p["port"] for p in service["spec"]["ports"]} == {5044, 9600}
    api = logstash.plugin_by_id  # the monitoring API port is Logstash's setting
    assert api("beats").name == "beats"
    assert yaml.safe_load(LOGSTASH_SETTINGS.read_text())["api.http.port"] == 9600
    compose = yaml.safe_load(FILEBEAT_COMPOSE.read_text())
    (compose_host,) = [_default(item) for item in compose["output.logstash"]["hosts"]]
    assert compose_host == f"{service_name}:{port}", "compose uses the short service name"
    (compose_input,) = compose["filebeat.inputs"]
    assert compose_input["type"] == "filestream"
    assert compose_input["paths"][0].startswith("/var/lib/docker/containers/")


def test_filebeat_pod_reads_logs_read_only_as_root_without_privileges(
    stack: list[Manifest],
) -> None:
    daemonset = one(stack, "DaemonSet", "filebeat")
    spec = pod_spec(daemonset)
    assert spec["securityContext"]["runAsUser"] == 0
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    (container,) = spec["containers"]
    security = container["securityContext"]
    assert security["privileged"] is False
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    host_paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    for name, path in host_paths.items():
        if path.startswith("/var/log") or path == "/var/lib/docker/containers":
            assert mounts[name]["readOnly"] is True, f"{path} must be mounted read-only"
    config = yaml.safe_load(FILEBEAT.read_text())
    registry = next(m for m in container["volumeMounts"] if m["mountPath"] == config["path.data"])
    assert "hostPath" in next(v for v in spec["volumes"] if v["name"] == registry["name"])
    assert {"/var/log/containers", "/var/log/pods"} <= set(host_paths.values())
    annotations = daemonset["metadata"]["annotations"]
    skips = {v.split("=", 1)[0]: v.split("=", 1)[1] for k, v in annotations.items() if "skip" in k}
    assert "CKV_K8S_23" in skips
    assert "root" in skips["CKV_K8S_23"].lower()
    namespace = one(stack, "Namespace")["metadata"]["labels"]
    assert namespace["pod-security.kubernetes.io/warn"] == "restricted"


# --- Kubernetes ------------------------------------------------------------------------------


def test_configmaps_are_generated_from_the_tool_files(stack: list[Manifest]) -> None:
    expected = {
        "logstash-pipeline": [OBSERVABILITY / "logstash/pipeline/pleno.conf"],
        "logstash-config": [LOGSTASH_SETTINGS, LOGSTASH_PIPELINES],
        "filebeat-config": [FILEBEAT],
        "elasticsearch-init": [ES_INIT, TEMPLATE, ILM_POLICY],
        "kibana-import": [KIBANA_IMPORT, SAVED_OBJECTS],
    }
    maps = {cm["metadata"]["name"].rsplit("-", 1)[0]: cm for cm in select(stack, "ConfigMap")}
    assert set(maps) == set(expected)
    for name, files in expected.items():
        assert maps[name]["data"] == {f.name: f.read_text() for f in files}, name


def test_logstash_has_a_persistent_queue_on_its_claim(stack: list[Manifest]) -> None:
    (pipeline,) = yaml.safe_load(LOGSTASH_PIPELINES.read_text())
    assert pipeline["queue.type"] == "persisted"
    spec = pod_spec(one(stack, "Deployment", "logstash"))
    (container,) = spec["containers"]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    data = yaml.safe_load(LOGSTASH_SETTINGS.read_text())["path.data"]
    volume = next(v for v in spec["volumes"] if v["name"] == mounts[data])
    claim = one(stack, "PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"])
    assert claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert pipeline["path.config"].startswith(
        next(p for p, n in mounts.items() if n == "pipeline") + "/"
    )
    assert one(stack, "Deployment", "logstash")["spec"]["strategy"]["type"] == "Recreate"


def _memory_mib(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)(Mi|Gi)", quantity).groups()  # type: ignore[union-attr]
    return int(number) * (1024 if unit == "Gi" else 1)


def test_jvm_heaps_are_fixed_and_at_most_half_the_memory_limit(stack: list[Manifest]) -> None:
    for kind, name, variable in (
        ("StatefulSet", "elasticsearch", "ES_JAVA_OPTS"),
        ("Deployment", "logstash", "LS_JAVA_OPTS"),
    ):
        (container,) = pod_spec(one(stack, kind, name))["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        heap = dict(re.findall(r"-Xm([sx])(\d+[mg])", env[variable]))
        assert heap["s"] == heap["x"], "a fixed heap: no resizing pauses"
        size = int(heap["x"][:-1]) * (1024 if heap["x"].endswith("g") else 1)
        assert size * 2 <= _memory_mib(container["resources"]["limits"]["memory"]), name
    statefulset = one(stack, "StatefulSet", "elasticsearch")
    assert statefulset["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]


ES_CONFIG = "/usr/share/elasticsearch/config"


def test_elasticsearch_gets_a_writable_copy_of_its_config(stack: list[Manifest]) -> None:
    """Elasticsearch 8 writes config/elasticsearch.keystore at start: under a read-only root the
    config directory must be an emptyDir that an init container filled from the same image."""
    spec = pod_spec(one(stack, "StatefulSet", "elasticsearch"))
    (server,) = spec["containers"]
    assert server["securityContext"]["readOnlyRootFilesystem"] is True
    volumes = {v["name"]: v for v in spec["volumes"]}
    mount = next(m for m in server["volumeMounts"] if m["mountPath"] == ES_CONFIG)
    assert "emptyDir" in volumes[mount["name"]]
    assert not mount.get("readOnly", False)
    (init,) = spec["initContainers"]
    assert init["image"] == server["image"], "the copy must be of the same release's config"
    target = next(m for m in init["volumeMounts"] if m["name"] == mount["name"])
    script = " ".join(init.get("command", []) + init.get("args", []))
    # Copies the image's directory (contents, hidden files included) into the shared volume.
    assert re.search(
        rf"\bcp -R {re.escape(ES_CONFIG)}/\. {re.escape(target['mountPath'])}/?", script
    )
    assert target["mountPath"] != ES_CONFIG, "mounting over the source would copy nothing"
    security = init["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}


def test_every_workload_but_filebeat_meets_the_restricted_profile(stack: list[Manifest]) -> None:
    names = set()
    for workload in workloads(stack):
        spec = pod_spec(workload)
        names.add(workload["metadata"]["name"])
        for container in spec["containers"] + spec.get("initContainers", []):
            resources = container["resources"]
            assert resources["requests"], container["name"]
            assert resources["limits"], container["name"]
            assert ":" in container["image"]
            assert not container["image"].endswith(":latest")
        if workload["kind"] == "DaemonSet":
            continue
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True
        assert isinstance(pod["runAsUser"], int)
        assert pod["seccompProfile"]["type"] == "RuntimeDefault"
        for container in spec["containers"]:
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False
            assert security["readOnlyRootFilesystem"] is True
            assert security["capabilities"] == {"drop": ["ALL"]}
            if workload["kind"] != "Job":
                assert "readinessProbe" in container
                assert "livenessProbe" in container
        assert not any("hostPath" in volume for volume in spec.get("volumes", []))
    assert names == {
        "filebeat",
        "logstash",
        "elasticsearch",
        "kibana",
        "elasticsearch-init",
        "kibana-import",
    }


def test_services_match_the_shared_contract(stack: list[Manifest]) -> None:
    ports = {
        s["metadata"]["name"]: {p["port"] for p in s["spec"]["ports"]}
        for s in select(stack, "Service")
    }
    assert ports == {"logstash": {5044, 9600}, "elasticsearch": {9200}, "kibana": {5601}}
    es_url = "http://elasticsearch:9200"
    assert logstash.plugin_by_id("elasticsearch").settings["hosts"] == [
        "${ELASTICSEARCH_URL:" + es_url + "}"
    ]
    for kind, name, variable in (
        ("Deployment", "logstash", "ELASTICSEARCH_URL"),
        ("Job", "elasticsearch-init", "ELASTICSEARCH_URL"),
        ("Job", "kibana-import", "KIBANA_URL"),
    ):
        (container,) = pod_spec(one(stack, kind, name))["containers"]
        value = {e["name"]: e.get("value") for e in container["env"]}[variable]
        service, port = value.removeprefix("http://").split(":")
        assert int(port) in ports[service], value


def test_manifests_pass_kubernetes_validate_strict(tmp_path: Path) -> None:
    binary = Path(sys.executable).with_name("kubernetes-validate")
    if not binary.exists():
        pytest.skip("kubernetes-validate is not installed in the venv (make venv)")
    rendered = tmp_path / "logging.yaml"
    rendered.write_text(yaml.safe_dump_all(render(STACK)))
    done = subprocess.run(
        [str(binary), "--strict", "--quiet", "-k", "1.30.0", str(rendered)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_manifests_pass_checkov(tmp_path: Path) -> None:
    checkov = ROOT / ".venv-checkov" / "bin" / "checkov"
    if not checkov.exists():
        found = shutil.which("checkov")
        if found is None:
            pytest.skip("checkov is not installed (make .venv-checkov/bin/checkov)")
        checkov = Path(found)
    rendered = tmp_path / "logging.yaml"
    rendered.write_text(yaml.safe_dump_all(render(STACK)))
    done = subprocess.run(
        [
            str(checkov),
            "-f",
            str(rendered),
            "--framework",
            "kubernetes",
            "--skip-download",
            "--compact",
            "--output",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={
            "BC_SKIP_MAPPING": "TRUE",
            "CKV_SKIP_PACKAGE_UPDATE_CHECK": "true",
            "PATH": "/usr/bin:/bin",
        },
    )
    report = json.loads(done.stdout)
    summary = report["summary"]
    failed = [(c["check_id"], c["resource"]) for c in report["results"]["failed_checks"]]
    assert summary["failed"] == 0, failed
    assert done.returncode == 0, done.stderr[-2000:]
    assert summary["passed"] > 100, summary
    skipped = {c["check_id"] for c in report["results"]["skipped_checks"]}
    assert skipped <= {"CKV_K8S_43", "CKV_K8S_15", "CKV_K8S_23", "CKV_K8S_40", "CKV_K8S_38"}
