"""infra/ checked without a cloud: terraform fmt, the wiring it reads equals the code's, the HCL
declares what the code expects (python-hcl2), golden tfvars per example, and checkov."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import hcl2
import pytest

from orchestrator import flow as flow_decorator
from orchestrator import task
from orchestrator.adapters import (
    CLOUD_DATABASE,
    DATABASE_ENV,
    NAME_PREFIX,
    NAME_PREFIX_ENV,
    FirestoreBlockStore,
)
from orchestrator.cloud import (
    INFRA,
    OPERATOR_PATTERN,
    TARGET,
    VIEWER_PATTERN,
    Dashboard,
    tfvars,
    wiring,
    wiring_json,
)
from orchestrator.contracts import CODE_ATTRIBUTE, StoredBlock
from orchestrator.errors import KumoflowError
from orchestrator.local import FUNCTIONS, MAX_DELIVERY_ATTEMPTS, STARTER, trigger_subscription
from orchestrator.runtime import JOB_TIMEOUT_S, RETAINED_ENV, TOPICS
from tests.infra._render import EXAMPLES, PROJECT, REGION, ROOT, render_example

GOLDEN = Path(__file__).parent / "golden"


@task
def show(credentials: Any) -> None:
    return None


CHECKOV = ROOT / ".venv" / "checkov" / "bin" / "checkov"


def _plain(value: Any) -> Any:
    """python-hcl2 8 keeps string quotes and block markers: strip them for plain comparisons."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items() if k != "__is_block__"}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str) and len(value) >= 2 and value[0] == value[-1] == '"':
        return value[1:-1]
    return value


def _tf() -> dict[str, Any]:
    """Every block of infra/*.tf, merged: {"resource": {type: {name: body}}, "variable": ...}."""
    merged: dict[str, Any] = {"resource": {}, "variable": {}, "locals": {}, "data": {}}
    for path in sorted(INFRA.glob("*.tf")):
        parsed = _plain(hcl2.loads(path.read_text()))
        for block in parsed.get("resource", []):
            for rtype, named in block.items():
                merged["resource"].setdefault(rtype, {}).update(named)
        for block in parsed.get("variable", []):
            merged["variable"].update(block)
        for block in parsed.get("locals", []):
            merged["locals"].update(block)
    return merged


def _resource(tf: dict[str, Any], rtype: str, name: str) -> dict[str, Any]:
    body = tf["resource"][rtype][name]
    assert isinstance(body, dict)
    return body


def _text(value: Any) -> str:
    return json.dumps(value)


def test_the_bundle_is_resolved_for_the_functions_runtime() -> None:
    """The function bundle's pins are resolved for the Python the functions run."""
    assert _tf()["variable"]["python_runtime"]["default"] == TARGET.runtime == "python312"


def test_terraform_fmt_is_clean() -> None:
    terraform = shutil.which("terraform")
    if terraform is None:
        pytest.skip("terraform is not installed here")
    done = subprocess.run(
        [terraform, "fmt", "-check", "-recursive", str(INFRA)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_wiring_json_is_generated_from_the_code() -> None:
    assert (INFRA / "wiring.json").read_text() == wiring_json(), (
        "infra/wiring.json is stale: python -c 'from orchestrator.cloud import wiring_json; "
        'open("infra/wiring.json", "w").write(wiring_json())\''
    )


def test_wiring_declares_every_topic_and_function_of_the_local_stack() -> None:
    w = wiring()
    assert set(w["topics"].values()) >= {*TOPICS.all(), TOPICS.ticks, TOPICS.dead_letter}
    assert set(w["functions"]) == {fn.name for fn in FUNCTIONS}
    for fn in FUNCTIONS:
        declared = w["functions"][fn.name]
        assert declared["topic"] == fn.topic
        assert declared["subscription"] == fn.subscription
        assert declared["ack_deadline_s"] == fn.ack_deadline_s
        assert declared["timeout_s"] <= declared["ack_deadline_s"]
        assert set(declared["publishes"]) <= set(w["topics"].values())
    assert w["functions"]["task_worker"] | {}
    assert w["functions"]["task_worker"]["timeout_s"] == 540
    assert w["functions"]["task_worker"]["ack_deadline_s"] == 600
    assert w["retry"]["max_delivery_attempts"] == MAX_DELIVERY_ATTEMPTS
    # The run starter's trigger subscriptions are named as the local deploy names them.
    assert w["trigger_function"] == STARTER.name
    assert w["trigger_subscription_prefix"] + "t" == trigger_subscription("t")


def test_every_subscription_pushes_with_oidc_retry_and_dead_letter() -> None:
    tf = _tf()
    sub = _resource(tf, "google_pubsub_subscription", "push")
    push = sub["push_config"][0]
    oidc = push["oidc_token"][0]
    assert "google_service_account.push.email" in oidc["service_account_email"]
    assert oidc["audience"] == "${local.urls[each.value.function]}"
    assert push["push_endpoint"].startswith("${local.urls[each.value.function]}/projects/")
    retry = sub["retry_policy"][0]
    assert "local.retry.min_backoff_s" in retry["minimum_backoff"]
    assert "local.retry.max_backoff_s" in retry["maximum_backoff"]
    assert sub["ack_deadline_seconds"] == "${each.value.ack_s}"
    dead = _text(sub["dynamic"])
    assert "dead_letter_policy" in dead
    assert "local.retry.max_delivery_attempts" in dead
    # Only the dead-letter sink's own subscription goes without a dead-letter policy.
    without = [n for n, f in wiring()["functions"].items() if not f["dead_letter"]]
    assert without == ["dead_letter_sink"]
    subs = _text(tf["locals"]["subscriptions"])
    assert "fn.subscription" in subs
    assert "local.own_trigger_topics" in subs
    assert "local.trigger_topics" in subs
    assert "dead_letter = true" in subs.replace('"', "")


def test_functions_scale_to_zero_internal_only_with_their_own_account() -> None:
    tf = _tf()
    fn = _resource(tf, "google_cloudfunctions2_function", "fn")
    assert fn["for_each"] == "${local.functions}"
    service = fn["service_config"][0]
    assert service["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    assert "google_service_account.function[each.key].email" in service["service_account_email"]
    assert service["min_instance_count"] == "${local.settings[each.key].min_instances}"
    env = _text(service["environment_variables"])
    for name in ("KUMOFLOW_PUSH_AUDIENCE", "KUMOFLOW_PUSH_SERVICE_ACCOUNT", "KUMOFLOW_PUSH_AUTH"):
        assert name in env
    # The function refuses to publish where IAM would (orchestrator.functions.GrantedBus).
    assert re.search(r"KUMOFLOW_PUBLISHES\W+join\(\W+,\W+each\.value\.publishes\)", env), env
    assert '\\"oidc\\"' in env or "oidc" in env
    defaults = _text(tf["variable"]["function_defaults"]["type"])
    assert re.search(r"min_instances.{0,40}optional\(number, 0\)", defaults)
    assert re.search(r"concurrency.{0,40}optional\(number, 16\)", defaults)  # benchmarks assume it


def test_the_roles_tasks_need_go_to_every_function_that_runs_task_code() -> None:
    """The sweeper runs deferred tasks' checks and cancels (BigQuery, Cloud Run): it needs what
    the worker's tasks call, or a check in the cloud is refused where the worker's call was not."""
    assert wiring()["task_code_functions"] == ["task_worker", "sweeper"]
    extra = _resource(_tf(), "google_project_iam_member", "worker_extra")
    text = _text(extra["for_each"])
    assert "setproduct(local.wiring.task_code_functions, var.task_worker_roles)" in text
    assert extra["member"] == (
        "serviceAccount:${google_service_account.function[each.value.function].email}"
    )


CALLBACK_PUBLIC = ("google_cloud_run_service_iam_member", "callback_public")


def test_no_public_invoker_and_no_basic_roles() -> None:
    """No public member anywhere, but one: the opt-in callback function's invoker (signed
    pause links, opened by people without an IAP login; the function refuses anything else)."""
    code = [ln for p in INFRA.glob("*.tf") for ln in p.read_text().splitlines()]
    text = "\n".join(ln for ln in code if not ln.lstrip().startswith("#"))
    assert text.count("allUsers") == 1
    assert "allAuthenticatedUsers" not in text
    tf = _tf()
    public = _resource(tf, *CALLBACK_PUBLIC)
    assert (public["member"], public["role"]) == ("allUsers", "roles/run.invoker")
    assert public["count"] == "${var.callback_enabled ? 1 : 0}"
    assert public["service"] == "${google_cloudfunctions2_function.callback[0].name}"
    callback = _resource(tf, "google_cloudfunctions2_function", "callback")
    assert callback["build_config"][0]["entry_point"] == "resume_callback"
    assert tf["variable"]["callback_enabled"]["default"] is False
    members = 0
    for rtype, named in tf["resource"].items():
        if not rtype.endswith("_iam_member"):
            continue
        for name, body in named.items():
            members += 1
            assert body.get("role") not in ("roles/owner", "roles/editor", "roles/viewer")
            if (rtype, name) == ("google_iap_web_cloud_run_service_iam_member", DASHBOARD_ACCESS):
                continue  # people, not accounts: checked by the next test
            if (rtype, name) == CALLBACK_PUBLIC:
                continue  # checked above
            assert re.fullmatch(r"\$\{.*\}|serviceAccount:.*", body["member"]), (rtype, name)
            assert body["member"].startswith(
                ("serviceAccount:", "${local.pubsub_agent}", "${local.iap_agent}")
            ), name
    assert members >= 12
    invoker = _resource(tf, "google_cloud_run_service_iam_member", "push_invoker")
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["member"] == "serviceAccount:${google_service_account.push.email}"


DASHBOARD_ACCESS = "dashboard_access"
PEOPLE = ["user:alice@example.com", "group:team@example.com", "domain:example.com"]
NOT_PEOPLE = [
    "allUsers",
    "allAuthenticatedUsers",
    "user:allUsers",
    "serviceAccount:x@p.iam.gserviceaccount.com",
    "projectViewer:p",
    "alice@example.com",
    "domain:allUsers",
    "user:alice@example.com,allUsers",
]


def _hcl_regex(condition: str) -> str:
    """The RE2 pattern of a variable's `can(regex("...", x))` validation, HCL escapes undone."""
    found = re.search(r'regex\("(.*?)", [\w.]+\)', condition)
    assert found, condition
    return found.group(1).replace("\\\\", "\\")


def test_only_people_pass_iap_and_only_iaps_agent_invokes_the_dashboard() -> None:
    tf = _tf()
    access = _resource(tf, "google_iap_web_cloud_run_service_iam_member", DASHBOARD_ACCESS)
    assert access["role"] == "roles/iap.httpsResourceAccessor"
    assert access["member"] == "${each.value}"
    assert access["for_each"] == "${local.dashboard_accessors}"
    # Its members: the viewers as given and the operators as user:EMAIL, nothing else.
    accessors = tf["locals"]["dashboard_accessors"]
    assert re.fullmatch(
        r"\$\{var\.dashboard_enabled \? toset\(concat\(var\.dashboard_viewers, "
        r'\[for email in var\.dashboard_operators : "user:\$\{email\}"\]\)\) : toset\(\[\]\)\}',
        accessors,
    ), accessors
    viewers = _hcl_regex(tf["variable"]["dashboard_viewers"]["validation"][0]["condition"])
    operators = _hcl_regex(tf["variable"]["dashboard_operators"]["validation"][0]["condition"])
    for principal in PEOPLE:
        assert re.search(viewers, principal), principal
    for principal in NOT_PEOPLE:
        assert not re.search(viewers, principal), principal
    # Operators are emails (granted as user:EMAIL), never a principal of another kind.
    assert re.search(operators, "ops@example.com")
    for bad in ["allUsers", "allAuthenticatedUsers", "user:ops@example.com", "ops", "a@b,allUsers"]:
        assert not re.search(operators, bad), bad
    # `kumoflow deploy` refuses exactly what Terraform's validations refuse.
    for sample in [*PEOPLE, *NOT_PEOPLE, "ops@example.com", "a@b,allUsers"]:
        as_viewer = bool(re.fullmatch(VIEWER_PATTERN, sample))
        as_operator = bool(re.fullmatch(OPERATOR_PATTERN, sample))
        assert bool(re.search(viewers, sample)) == as_viewer, sample
        assert bool(re.search(operators, sample)) == as_operator, sample
    # Cloud Run's invoker check: IAP's service agent only.
    invoker = _resource(tf, "google_cloud_run_v2_service_iam_member", "dashboard_iap_invoker")
    assert invoker["role"] == "roles/run.invoker"
    assert invoker["member"] == "${local.iap_agent}"
    assert re.fullmatch(
        r"serviceAccount:service-\$\{data\.google_project\.this\.number\}"
        r"@gcp-sa-iap\.iam\.gserviceaccount\.com",
        tf["locals"]["iap_agent"],
    )


def test_the_dashboard_is_optional_behind_iap_with_its_own_least_privileged_account() -> None:
    tf = _tf()
    service = _resource(tf, "google_cloud_run_v2_service", "dashboard")
    assert service["iap_enabled"] is True
    assert service["invoker_iam_disabled"] is False
    assert service["ingress"] == "INGRESS_TRAFFIC_ALL"  # IAP guards every path (run.app too)
    template = service["template"][0]
    assert template["service_account"] == "${google_service_account.dashboard[0].email}"
    assert template["scaling"][0]["min_instance_count"] == 0
    container = template["containers"][0]
    assert container["command"] == ["python", "-m", "orchestrator"]
    assert container["args"][:5] == ["ui", "--host", "0.0.0.0", "--port", "8080"]
    assert container["args"][5:] == ["--project", "${var.project}"]
    assert container["ports"][0]["container_port"] == 8080
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["KUMOFLOW_IAP_AUDIENCE"] == "${local.dashboard_audience}"
    assert env["KUMOFLOW_UI_OPERATORS"] == '${join(",", var.dashboard_operators)}'
    assert env["KUMOFLOW_GCP_RESULTS_BUCKET"] == "${local.results_bucket}"
    assert env["KUMOFLOW_UI_ALLOWED_HOSTS"] == "${local.dashboard_hosts}"  # other Hosts: 400
    assert tf["locals"]["dashboard_hosts"] == (
        "${local.dashboard_service}-${data.google_project.this.number}.${var.region}.run.app,"
        "*.a.run.app"
    )
    assert tf["locals"]["dashboard_audience"] == (
        "/projects/${data.google_project.this.number}/locations/${var.region}"
        "/services/${local.dashboard_service}"
    )
    assert tf["variable"]["dashboard_enabled"]["default"] is False
    # Count-gated: nothing of the dashboard exists unless it is enabled.
    for rtype, named in tf["resource"].items():
        for name, body in named.items():
            if "dashboard" in name:
                gate = body.get("count") or body.get("for_each")
                assert gate == "${var.dashboard_enabled ? 1 : 0}" or gate in (
                    "${local.dashboard_accessors}",
                    "${local.dashboard_topics}",
                    "${local.dashboard_result_roles}",
                ), (rtype, name)
    for local in ("dashboard_accessors", "dashboard_topics", "dashboard_result_roles"):
        assert tf["locals"][local].startswith("${var.dashboard_enabled ?"), local
        assert tf["locals"][local].endswith(": toset([])}"), local
    # Its roles: Firestore, results (read, create), publishing what retry and cancel dispatch.
    roles = {
        (rtype, body["role"])
        for rtype, named in tf["resource"].items()
        if rtype.endswith("_iam_member")
        for name, body in named.items()
        if "google_service_account.dashboard" in body["member"]
    }
    assert roles == {
        ("google_project_iam_member", "roles/datastore.user"),
        ("google_storage_bucket_iam_member", "${each.value}"),
        ("google_pubsub_topic_iam_member", "roles/pubsub.publisher"),
    }
    # Read, and create as the engine functions do (a resume may end the run): never overwrite.
    assert re.findall(r"roles/storage\.\w+", tf["locals"]["dashboard_result_roles"]) == [
        "roles/storage.objectViewer",
        "roles/storage.objectCreator",
    ]
    topics = tf["locals"]["dashboard_topics"]
    # runs: an ended run hands its run slot (max_active_runs) to a waiting run's start.
    assert re.findall(r"local\.topics\.(\w+)", topics) == ["tasks", "finished", "events", "runs"]


def test_firestore_indexes_cover_the_adapters_collection_group_queries() -> None:
    adapters = ROOT / "orchestrator" / "adapters"
    # The store's queries: its own, and the deadline ones it takes from DueTasks.
    source = "".join(p.read_text() for p in sorted(adapters.glob("_firestore*.py")))
    source += (adapters / "_due.py").read_text()
    groups = set(re.findall(r'collection_group\("(\w+)"\)', source))
    fields = set(re.findall(r'_tasks_due\("(\w+)"', source)) | {"due_at"}
    declared = wiring()["firestore"]["field_indexes"].values()
    assert {d["collection"] for d in declared} == groups
    assert {d["field"] for d in declared} == fields
    for d in declared:
        assert {"order": "ASCENDING", "query_scope": "COLLECTION_GROUP"} in d["indexes"]
    tf = _tf()
    assert "ttl_config" in _resource(tf, "google_firestore_field", "ttl")
    db = _resource(tf, "google_firestore_database", "db")
    assert db["type"] == "FIRESTORE_NATIVE"


def test_results_bucket_is_private_write_once_and_expires() -> None:
    bucket = _resource(_tf(), "google_storage_bucket", "results")
    assert bucket["uniform_bucket_level_access"] is True
    assert bucket["public_access_prevention"] == "enforced"
    assert bucket["versioning"][0]["enabled"] is False
    assert bucket["lifecycle_rule"][0]["action"][0]["type"] == "Delete"


def test_scheduler_jobs_publish_what_the_local_scheduler_publishes() -> None:
    tf = _tf()
    job = _resource(tf, "google_cloud_scheduler_job", "schedule")
    assert job["for_each"] == "${var.schedules}"
    target = job["pubsub_target"][0]
    assert "local.topics.schedules" in target["topic_name"]
    assert "local.wiring.schedule_data" in target["data"]
    assert "local.wiring.job_attribute" in _text(target["attributes"])
    tick = _resource(tf, "google_cloud_scheduler_job", "tick")
    assert "local.tick_topic" in tick["pubsub_target"][0]["topic_name"]


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_golden_tfvars(example: Path, tmp_path: Path) -> None:
    out = render_example(example, tmp_path / example.stem)
    got = json.loads((out / "terraform.tfvars.json").read_text())
    golden = GOLDEN / f"{example.stem}.tfvars.json"
    if os.environ.get("KUMOFLOW_UPDATE_GOLDEN") == "1":
        golden.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert got == json.loads(golden.read_text())
    assert got["project"] == PROJECT
    assert got["region"] == REGION
    assert got["python_runtime"] == TARGET.runtime  # what the bundle's pins are resolved for
    for tf in INFRA.glob("*.tf"):
        assert (out / tf.name).read_text() == tf.read_text()


DASHBOARD = Dashboard(
    "asia-northeast1-docker.pkg.dev/kumoflow-example/images/kumoflow-ui:1",
    operators=("Ops@Example.com", "lead@example.com", "ops@example.com"),
    viewers=("group:team@example.com", "domain:example.com"),
)


def test_golden_tfvars_with_the_dashboard(tmp_path: Path) -> None:
    out = render_example(ROOT / "examples" / "ingest.py", tmp_path, dashboard=DASHBOARD)
    got = json.loads((out / "terraform.tfvars.json").read_text())
    golden = GOLDEN / "ingest-dashboard.tfvars.json"
    if os.environ.get("KUMOFLOW_UPDATE_GOLDEN") == "1":
        golden.write_text(json.dumps(got, indent=2, sort_keys=True) + "\n")
    assert got == json.loads(golden.read_text())
    assert got["dashboard_enabled"] is True
    assert got["dashboard_operators"] == ["lead@example.com", "ops@example.com"]


def test_tfvars_collapse_prefixes_and_refuse_kumoflows_own_topics() -> None:
    from orchestrator import GcsObject, flow, on_gcs_finalize, on_pubsub

    @flow(
        name="two-prefixes",
        triggers=[
            on_gcs_finalize(bucket="b", prefix="a/"),
            on_gcs_finalize(bucket="b", prefix="a/b/"),
            on_gcs_finalize(bucket="c"),
        ],
    )
    def two(obj: GcsObject) -> None:
        return None

    got = tfvars([two.spec], project="p", region="r", source_archive="x.zip")
    assert got["gcs_triggers"] == [{"bucket": "b", "prefix": "a/"}, {"bucket": "c", "prefix": ""}]

    @flow(name="own-topic", triggers=[on_pubsub(topic=TOPICS.tasks)])
    def own(x: int = 1) -> None:
        return None

    with pytest.raises(KumoflowError, match="kumoflow's own"):
        tfvars([own.spec], project="p", region="r", source_archive="x.zip")


def _checkov(directory: Path, *extra: str) -> dict[str, Any]:
    if not CHECKOV.exists():
        if os.environ.get("CI") == "true":
            pytest.fail("checkov is missing: scripts/setup installs it into .venv/checkov")
        pytest.skip("checkov not installed (scripts/setup installs it)")
    done = subprocess.run(
        [
            str(CHECKOV),
            "-d",
            str(directory),
            "--framework",
            "terraform",
            "--skip-download",
            "--quiet",
            "-o",
            "json",
            *extra,
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "BC_SKIP_MAPPING": "TRUE"},
        timeout=240,
    )
    report = json.loads(done.stdout)
    report = report[0] if isinstance(report, list) else report
    assert isinstance(report, dict)
    return report


def test_checkov_passes_on_infra() -> None:
    report = _checkov(INFRA)
    summary = report["summary"]
    assert summary["failed"] == 0, report["results"]["failed_checks"]
    assert summary["parsing_errors"] == 0
    assert summary["passed"] >= 25


def test_checkov_passes_on_every_rendered_example(tmp_path: Path) -> None:
    passed: dict[str, int] = {}
    for example in EXAMPLES:
        out = render_example(example, tmp_path / example.stem)
        report = _checkov(out, "--var-file", str(out / "terraform.tfvars.json"))
        passed[example.stem] = report["summary"]["passed"]
        if report.get("summary", {}).get("failed", 0):
            pytest.fail(f"{example.name}: {report['results']['failed_checks']}")
        # Every skip is justified on its resource in infra/ (#checkov:skip=ID:reason).
        for skipped in report["results"].get("skipped_checks", []):
            assert skipped["check_result"]["suppress_comment"].strip(), skipped["check_id"]
    # And with the dashboard on: its resources are checked too (count 1).
    out = render_example(ROOT / "examples" / "ingest.py", tmp_path / "dash", dashboard=DASHBOARD)
    report = _checkov(out, "--var-file", str(out / "terraform.tfvars.json"))
    assert report["summary"]["failed"] == 0, report["results"]["failed_checks"]
    # Its resources were checked (checkov leaves count = 0 resources out): IAM, publishers.
    assert report["summary"]["passed"] > passed["ingest"], report["summary"]


def _locals_text(tf: dict[str, Any], text: str, seen: frozenset[str] = frozenset()) -> str:
    """`text` with the definitions of the locals it names, recursively (what a value is made of)."""
    out = text
    for name in set(re.findall(r"local\.(\w+)", text)) - seen:
        if name in tf["locals"]:
            out += "\n" + _locals_text(tf, _text(tf["locals"][name]), seen | {name})
    return out


# The attribute that names a resource, by type; every such resource must carry var.name_prefix.
NAMED = {
    "google_service_account": "account_id",
    "google_storage_bucket": "name",
    "google_storage_bucket_object": "name",
    "google_artifact_registry_repository": "repository_id",
    "google_cloudfunctions2_function": "name",
    "google_cloud_run_v2_service": "name",
    "google_pubsub_topic": "name",
    "google_pubsub_subscription": "name",
    "google_cloud_scheduler_job": "name",
    "google_secret_manager_secret": "secret_id",
    "google_firestore_database": "name",
    "google_cloud_run_v2_job": "name",
    "google_cloud_tasks_queue": "name",
    "google_logging_metric": "name",
}
# Named by the user, not by kumoflow: their trigger topics and buckets; the database has its own.
USERS_NAMES = {
    ("google_pubsub_topic", "trigger"),
    ("google_storage_bucket", "trigger"),
    ("google_firestore_database", "db"),
}


def test_name_prefix_starts_every_name_kumoflow_gives() -> None:
    tf = _tf()
    checked = []
    for rtype, named in tf["resource"].items():
        for name, body in named.items():
            if rtype not in NAMED:
                assert not any(k in body for k in ("name", "account_id", "secret_id")) or (
                    rtype.endswith(("_iam_member", "_notification", "_field", "_index"))
                ), f"{rtype}.{name} is named: add it to NAMED"
                continue
            if (rtype, name) in USERS_NAMES:
                continue
            value = _text(body[NAMED[rtype]])
            # each.key / each.value come from the for_each expression: resolve that too.
            if "each." in value:
                value += _text(body.get("for_each", ""))
            assert "var.name_prefix" in _locals_text(tf, value), (rtype, name, value)
            checked.append((rtype, name))
    assert len(checked) >= 14, checked
    # Each name of a function is prefixed on its own (a merge that forgot one would pass above).
    functions = _text(tf["locals"]["functions"])
    for key in ("service", "subscription", "account_id", "topic"):
        assert re.search(
            rf"{key}\s*=\s*\\\\?\"\$\{{var\.name_prefix\}}\$\{{trimprefix\(fn\.{key}, ", functions
        ), key
    assert "for t in fn.publishes" in functions
    topics = tf["locals"]["topics"]
    assert 'var.name_prefix}${trimprefix(t, \\"kumoflow\\")' in _text(topics)
    # The database and the bucket names are the installation's own too.
    assert tf["locals"]["datastore_condition"]["title"].startswith("${var.name_prefix}")
    assert tf["variable"]["name_prefix"]["default"] == NAME_PREFIX
    prefix = _hcl_regex(tf["variable"]["name_prefix"]["validation"][0]["condition"])
    for ok in ("kumoflow", "kf2", "a", "team-a-flows1"):
        assert re.search(prefix, ok), ok
    for bad in ("", "Kumoflow", "kf_2", "kf-", "2kf", "fourteen-chars"):
        assert not re.search(prefix, bad), bad


def test_wiring_names_all_start_with_the_default_prefix_and_fit_every_longest_prefix() -> None:
    """Terraform swaps the leading "kumoflow" of every wiring name for name_prefix, and the
    functions swap it in their topic names the same way (Topics.named)."""
    w = wiring()
    names = [
        *w["topics"].values(),
        *w["trigger_topics"],
        w["trigger_subscription_prefix"],
        w["tick"]["job"],
        w["tick"]["topic"],
        w["timers"]["queue"],
        w["push_account_id"],
        w["build_account_id"],
        *(fn[k] for fn in w["functions"].values() for k in ("service", "subscription", "topic")),
        *(t for fn in w["functions"].values() for t in fn["publishes"]),
    ]
    accounts = [w["push_account_id"], w["build_account_id"]] + [
        fn["account_id"] for fn in w["functions"].values()
    ]
    for name in [*names, *accounts]:
        assert name.startswith(NAME_PREFIX), name
    longest = "abcdefghijklm"  # 13 characters, the validation's longest
    for account in accounts:  # service account ids are 6-30 characters
        assert 6 <= len(longest + account.removeprefix(NAME_PREFIX)) <= 30, account
    as_terraform = {role: longest + t.removeprefix(NAME_PREFIX) for role, t in w["topics"].items()}
    named = TOPICS.named(longest)
    for role in ("runs", "tasks", "events", "finished", "ticks", "schedules", "dead_letter"):
        assert getattr(named, role) == as_terraform[role], role
    assert TOPICS.named(NAME_PREFIX) == TOPICS


def test_functions_and_dashboard_are_told_their_database_and_prefix() -> None:
    tf = _tf()
    env = _resource(tf, "google_cloudfunctions2_function", "fn")["service_config"][0][
        "environment_variables"
    ]
    # merge(var.environment, {...}): ours come last, so a user's variable cannot override them.
    assert env.startswith("${merge(var.environment, {"), env
    for name, value in (
        (DATABASE_ENV, "var.firestore_database"),
        (NAME_PREFIX_ENV, "var.name_prefix"),
        ("KUMOFLOW_RESULTS_BUCKET", "local.results_bucket"),
    ):
        assert re.search(rf"\b{name} = {re.escape(value)}\b", env), name
    container = _resource(tf, "google_cloud_run_v2_service", "dashboard")["template"][0][
        "containers"
    ][0]
    dash = {e["name"]: e["value"] for e in container["env"]}
    assert dash[DATABASE_ENV] == "${var.firestore_database}"
    assert dash[NAME_PREFIX_ENV] == "${var.name_prefix}"
    assert tf["variable"]["firestore_database"]["default"] == CLOUD_DATABASE


def test_the_task_job_runs_the_worker_image_as_its_account_and_only_task_code_may_run_it() -> None:
    """`runtime="job"` tasks: one job per installation, from the task worker's build, as its
    least-privileged account, with its env; the functions that run task code may run it with
    overrides (the attempt's identity) and nothing else may."""
    tf = _tf()
    job = _resource(tf, "google_cloud_run_v2_job", "tasks")
    assert job["name"] == "${local.task_job_name}"
    assert tf["locals"]["task_job_name"] == "${var.name_prefix}-tasks"
    assert tf["locals"]["task_job"] == (
        "projects/${var.project}/locations/${var.region}/jobs/${local.task_job_name}"
    )
    task = job["template"][0]["template"][0]
    assert task["service_account"] == (
        "${google_service_account.function[local.task_worker].email}"
    )
    assert tf["locals"]["task_worker"] == "${local.wiring.worker_function}"
    assert wiring()["worker_function"] == "task_worker"
    assert task["max_retries"] == 0  # a retry is kumoflow's: a new attempt, a new token
    assert task["timeout"] == "${var.task_job.timeout_s}s"
    container = task["containers"][0]
    # The worker's own image: the one Cloud Functions built from the bundle.
    assert container["image"] == (
        "${data.google_cloud_run_v2_service.task_worker.template[0].containers[0].image}"
    )
    service = _plain(hcl2.loads((INFRA / "jobs.tf").read_text()))["data"][0]
    assert "google_cloudfunctions2_function.fn[local.task_worker].service_config[0].service" in (
        _text(service)
    )
    assert container["args"] == ["python", "-m", "orchestrator.functions.job"]
    assert importlib.util.find_spec("orchestrator.functions.job") is not None
    env = _text(container["dynamic"])
    assert "fn[local.task_worker].service_config[0].environment_variables" in env
    assert "KUMOFLOW_JOB_TIMEOUT_S" in env
    # The job's limit is the one deploy checks job-run tasks against, 24 h, within Cloud Run's.
    limits = tf["variable"]["task_job"]
    assert "timeout_s = optional(number, 86400)" in _text(limits["type"])
    assert JOB_TIMEOUT_S == 86400
    assert "<= 604800" in limits["validation"][0]["condition"]
    # The functions know the job (the worker starts executions, the sweeper checks them).
    fn_env = _resource(tf, "google_cloudfunctions2_function", "fn")["service_config"][0]
    assert re.search(r"KUMOFLOW_TASK_JOB\W+local\.task_job\b", fn_env["environment_variables"])
    # Running it with overrides is granted on this job only, to the functions running task code.
    grant = _resource(tf, "google_cloud_run_v2_job_iam_member", "task_job_runner")
    assert grant["for_each"] == "${toset(local.wiring.task_code_functions)}"
    assert grant["name"] == "${google_cloud_run_v2_job.tasks.name}"
    assert grant["role"] == "roles/run.jobsExecutorWithOverrides"
    assert grant["member"] == "serviceAccount:${google_service_account.function[each.value].email}"
    roles = [
        str(body.get("role", ""))
        for rtype, named in tf["resource"].items()
        if rtype.startswith("google_project_iam")
        for body in named.values()
    ]
    assert not [r for r in roles if r.startswith("roles/run.")]  # nothing project-wide


def test_state_lives_in_its_own_database_and_every_firestore_role_is_limited_to_it() -> None:
    tf = _tf()
    db = _resource(tf, "google_firestore_database", "db")
    assert db["name"] == "${var.firestore_database}"
    assert db["delete_protection_state"] == "DELETE_PROTECTION_ENABLED"
    for rtype in ("google_firestore_index", "google_firestore_field"):
        for name, body in tf["resource"][rtype].items():
            assert body["database"] == "${google_firestore_database.db.name}", name
    database = _hcl_regex(tf["variable"]["firestore_database"]["validation"][0]["condition"])
    for ok in ("kumoflow", "kf2-state", "team-a-kumoflow"):
        assert re.search(database, ok), ok
    for bad in ("(default)", "kf", "Kumoflow", "kf_state", "kumoflow-"):
        assert not re.search(database, bad), bad
    # Firestore's documented per-database condition: resource.name of the database.
    condition = tf["locals"]["datastore_condition"]
    assert condition["expression"] == (
        'resource.name == \\"projects/${var.project}/databases/${var.firestore_database}\\"'
    )
    grants = 0
    for named in tf["resource"].values():
        for name, body in named.items():
            role = str(body.get("role", ""))
            if not role.startswith("roles/datastore."):
                continue
            grants += 1
            assert role == "roles/datastore.user", name
            cond = body["condition"][0]
            assert cond["expression"] == "${local.datastore_condition.expression}", name
            assert cond["title"] == "${local.datastore_condition.title}", name
    # Every function account, the dashboard's and the callback function's; nobody else.
    assert grants == 3
    assert _resource(tf, "google_project_iam_member", "datastore_user")["for_each"] == (
        "${local.functions}"
    )


def test_block_keys_get_one_secret_each_readable_only_by_the_functions_that_load_blocks() -> None:
    tf = _tf()
    assert "secretmanager.googleapis.com" in _text(tf["locals"]["apis"])
    secret = _resource(tf, "google_secret_manager_secret", "block")
    assert secret["for_each"] == "${var.block_secrets}"
    assert secret["secret_id"] == "${var.name_prefix}-${each.key}"
    assert secret["deletion_protection"] == "${var.protect_block_secrets}"
    assert tf["variable"]["protect_block_secrets"]["default"] is True
    access = _resource(tf, "google_secret_manager_secret_iam_member", "block_accessor")
    assert access["role"] == "roles/secretmanager.secretAccessor"
    assert access["secret_id"] == "${google_secret_manager_secret.block[each.value.secret].id}"
    assert access["member"] == (
        "serviceAccount:${google_service_account.function[each.value.function].email}"
    )
    assert access["for_each"] == "${local.secret_grants}"
    assert "setproduct(keys(var.block_secrets), local.wiring.task_code_functions)" in _text(
        tf["locals"]["secret_grants"]
    )
    # Never a project-wide Secret Manager role.
    for rtype, named in tf["resource"].items():
        if rtype.startswith("google_project_iam"):
            for name, body in named.items():
                assert "secretmanager" not in str(body.get("role")), name


def test_the_secret_terraform_declares_is_the_one_a_block_save_writes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from orchestrator.gcp import GcpCredentials

    @flow_decorator(name="uses-a-key")
    def uses(x: int = 1) -> None:
        show(GcpCredentials.load("prod.eu"))

    got = tfvars([uses.spec], project="p", region="r", source_archive="x.zip")["block_secrets"]
    assert got == {
        "block-gcp-credentials-prod-eu-service_account_info": {
            "block": "gcp-credentials/prod.eu",
            "field": "service_account_info",
        }
    }
    # What `kumoflow block save` writes, under any prefix, is `<name_prefix>-<key>`.
    for prefix in (NAME_PREFIX, "kf2"):
        monkeypatch.setenv(NAME_PREFIX_ENV, prefix)
        secrets = RecordingSecrets()
        store = FirestoreBlockStore(FakeDb(), secrets)  # type: ignore[arg-type]
        store.put_block(
            StoredBlock(
                kind="gcp-credentials",
                name="prod.eu",
                data={},
                secrets={"service_account_info": 'inline:{"k": 1}'},
                saved_at=datetime.now(UTC),
            )
        )
        assert secrets.ids == [f"{prefix}-{key}" for key in got]
    # Blocks a deploy cannot see (loaded in a task, or through another block) are named.
    more = tfvars(
        [uses.spec],
        project="p",
        region="r",
        source_archive="x.zip",
        blocks=["gcp-credentials/inner", "gcs-bucket/results"],
    )["block_secrets"]
    assert set(more) == set(got) | {"block-gcp-credentials-inner-service_account_info"}
    for bad in ("gcp-credentials", "no-such-kind/x", "gcp-credentials/Bad Name"):
        with pytest.raises(KumoflowError):
            tfvars([uses.spec], project="p", region="r", source_archive="x.zip", blocks=[bad])


@dataclass
class RecordingSecrets:
    ids: list[str] = field(default_factory=list)

    def put(self, secret_id: str, value: str) -> str:
        self.ids.append(secret_id)
        return f"secretmanager:projects/p/secrets/{secret_id}/versions/1"


class FakeDb:
    """Only what FirestoreBlockStore.put_block touches: collection(...).document(...).create."""

    def collection(self, name: str) -> FakeDb:
        return self

    def document(self, name: str) -> FakeDb:
        return self

    def create(self, data: dict[str, Any]) -> None:
        assert all(ref.startswith("secretmanager:") for ref in data["secrets"].values())


def test_existing_buckets_are_inputs_and_are_created_only_when_not_given() -> None:
    tf = _tf()
    for bucket in ("results", "source"):
        body = _resource(tf, "google_storage_bucket", bucket)
        assert body["count"] == f'${{var.{bucket}_bucket == "" ? 1 : 0}}'
        assert body["name"] == f"${{var.project}}-${{var.name_prefix}}-{bucket}"
        assert tf["locals"][f"{bucket}_bucket"] == (
            f"${{coalesce(var.{bucket}_bucket, one(google_storage_bucket.{bucket}[*].name))}}"
        )
        assert tf["variable"][f"{bucket}_bucket"]["default"] == ""
    # Everything else reaches the buckets through those locals (a given bucket has no resource).
    for path in INFRA.glob("*.tf"):
        code = path.read_text()
        uses = re.findall(r"google_storage_bucket\.(results|source)\b[^\[]", code)
        assert not uses, (path.name, uses)


def test_each_kept_bundle_gets_a_worker_that_takes_only_its_requests() -> None:
    tf = _tf()
    w = wiring()
    assert w["code_attribute"] == CODE_ATTRIBUTE
    assert w["retained_env"] == RETAINED_ENV
    kept = _resource(tf, "google_cloudfunctions2_function", "retained")
    assert kept["for_each"] == "${local.retained}"
    service = kept["service_config"][0]
    # The task worker's account, scale to zero, internal only, its push audience its own URL.
    assert "google_service_account.function[local.wiring.worker_function]" in _text(
        service["service_account_email"]
    )
    assert service["min_instance_count"] == 0
    assert service["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    env = _text(service["environment_variables"])
    assert re.search(r"KUMOFLOW_SERVES_CODE\W+each\.key", env), env
    assert re.search(r"KUMOFLOW_PUSH_AUDIENCE\W+local\.retained_urls\[each\.key\]", env), env
    source = _text(kept["build_config"][0]["source"])
    assert "google_storage_bucket_object.retained_source[each.key].name" in source
    sub = _resource(tf, "google_pubsub_subscription", "retained")
    assert "local.wiring.code_attribute" in sub["filter"]
    assert "each.key" in sub["filter"]
    oidc = sub["push_config"][0]["oidc_token"][0]
    assert oidc["audience"] == "${local.retained_urls[each.key]}"
    assert "dead_letter_policy" in sub
    invoker = _resource(tf, "google_cloud_run_service_iam_member", "retained_invoker")
    assert invoker["member"] == "serviceAccount:${google_service_account.push.email}"
    # The current worker leaves the kept bundles' requests, and only after their workers
    # subscribe (it depends on their subscriptions).
    fn = _resource(tf, "google_cloudfunctions2_function", "fn")
    env = _text(fn["service_config"][0]["environment_variables"])
    assert "local.wiring.retained_env" in env
    assert "keys(var.retained_code)" in env
    assert "google_pubsub_subscription.retained" in _text(fn["depends_on"])


def test_timers_queue_pushes_to_the_sweeper_with_the_push_accounts_token() -> None:
    """Every function that commits runs' state arms timers as Cloud Tasks: it may enqueue in the
    timers' queue (only) and act as the push account (only), which alone invokes the sweeper;
    the functions are told the queue, the sweeper's URL (the token's audience) and the account,
    as the local stack tells them (DevStack.timer_env)."""
    tf = _tf()
    w = wiring()
    assert w["timers"]["target"] == "sweeper"
    assert set(w["timers"]["arming_functions"]) == {
        "run_starter",
        "task_worker",
        "orchestrator",
        "sweeper",
    }
    queue = _resource(tf, "google_cloud_tasks_queue", "timers")
    assert queue["name"] == "${local.timer_queue}"
    limits = queue["rate_limits"][0]
    assert limits["max_dispatches_per_second"] == "${var.timer_queue.max_dispatches_per_second}"
    assert limits["max_concurrent_dispatches"] == "${var.timer_queue.max_concurrent_dispatches}"
    retry = queue["retry_config"][0]
    assert retry["min_backoff"] == "0.1s"
    assert retry["max_attempts"] == "${var.timer_queue.max_attempts}"
    defaults = _text(tf["variable"]["timer_queue"]["type"])
    assert re.search(r"max_attempts.{0,40}optional\(number, 20\)", defaults)
    enqueuer = _resource(tf, "google_cloud_tasks_queue_iam_member", "enqueuer")
    assert enqueuer["for_each"] == "${local.arming_functions}"
    assert enqueuer["name"] == "${google_cloud_tasks_queue.timers.name}"
    assert enqueuer["role"] == "roles/cloudtasks.enqueuer"
    assert enqueuer["member"] == (
        "serviceAccount:${google_service_account.function[each.key].email}"
    )
    act_as = _resource(tf, "google_service_account_iam_member", "timer_act_as_push")
    assert act_as["for_each"] == "${local.arming_functions}"
    assert act_as["service_account_id"] == "${google_service_account.push.name}"
    assert act_as["role"] == "roles/iam.serviceAccountUser"
    assert "timers.arming_functions" in _text(tf["locals"]["arming_functions"])
    env = _resource(tf, "google_cloudfunctions2_function", "fn")["service_config"][0][
        "environment_variables"
    ]
    text = _text(env)
    assert "KUMOFLOW_TIMER_QUEUE" in text
    assert "google_cloud_tasks_queue.timers.id" in text
    assert "local.urls[local.wiring.timers.target]" in text
    assert "KUMOFLOW_TIMER_INVOKER" in text
    assert "google_service_account.push.email" in text
    assert "cloudtasks.googleapis.com" in _text(tf["locals"]["apis"])
    # A task worker kept for an earlier code bundle commits claims and deferred checks too.
    kept = _text(
        _resource(tf, "google_cloudfunctions2_function", "retained")["service_config"][0][
            "environment_variables"
        ]
    )
    assert "google_cloud_tasks_queue.timers.id" in kept
    assert "local.urls[local.wiring.timers.target]" in kept
    from orchestrator.local import TIMER_QUEUE, DevStack

    assert w["timers"]["queue"] == TIMER_QUEUE
    stack = DevStack.from_env(18680)
    sweeper = next(fn for fn in FUNCTIONS if fn.name == w["timers"]["target"])
    url = stack.timer_env()["KUMOFLOW_TIMER_URL"]
    assert url.endswith(f":{stack.functions_port + sweeper.local_port_offset}/")
    assert stack.timer_env()["KUMOFLOW_TIMER_QUEUE"].endswith(f"/queues/{TIMER_QUEUE}")


def test_alert_policies_watch_dead_letters_failed_runs_and_timeouts_on_the_code_s_logs() -> None:
    """Each policy reads a log-based metric of a line the code writes (a run's end, a refused
    input, a failed hook), of this installation's functions, and tells the given channels."""
    tf = _tf()
    metrics = tf["resource"]["google_logging_metric"]
    assert set(metrics) == {"run_failures", "run_timeouts", "dead_letters"}
    for body in metrics.values():
        assert "${local.function_logs}" in body["filter"]
        assert body["name"].startswith("${var.name_prefix}-")
    unquoted = {name: body["filter"].replace('\\"', '"') for name, body in metrics.items()}
    assert 'jsonPayload.message="run ended"' in unquoted["run_failures"]
    assert 'jsonPayload.status="FAILED"' in unquoted["run_failures"]
    assert 'jsonPayload.reason="TimeoutError"' in unquoted["run_timeouts"]
    assert 'jsonPayload.message=~"^rejected input"' in unquoted["dead_letters"]
    assert 'jsonPayload.function="hooks"' in unquoted["dead_letters"]
    logs = _text(tf["locals"]["function_logs"])
    assert "var.name_prefix" in logs
    policy = _resource(tf, "google_monitoring_alert_policy", "kumoflow")
    assert policy["for_each"] == "${local.alerts}"
    assert policy["notification_channels"] == "${var.alert_notification_channels}"
    condition = policy["conditions"][0]["condition_threshold"][0]
    assert "logging.googleapis.com/user/${each.value.metric}" in condition["filter"]
    alerts = tf["locals"]["alerts"]
    assert set(alerts) == {"dead_letters", "run_failures", "run_timeouts"}
    assert alerts["run_failures"]["period"] == "3600s"
    assert alerts["run_failures"]["threshold"] == "${var.alert_failed_runs_per_hour}"
    assert tf["variable"]["alert_notification_channels"]["default"] == []
    assert "monitoring.googleapis.com" in _text(tf["locals"]["apis"])
    env = _text(
        _resource(tf, "google_cloudfunctions2_function", "fn")["service_config"][0][
            "environment_variables"
        ]
    )
    assert "KUMOFLOW_NOTIFY" in env
    assert "var.notify" in env


def test_the_notification_blocks_a_flow_declares_get_a_secret_each() -> None:
    """The worker tells a flow's notification blocks: the deploy gives their secret fields
    (a webhook's URL) a Secret Manager secret each, as for the blocks a DAG loads."""
    from tests.flows.hooked import WEBHOOK, fails_and_tells

    got = tfvars(
        [fails_and_tells.spec], project=PROJECT, region=REGION, source_archive="bundle.zip"
    )
    assert got["block_secrets"] == {
        "block-notification-webhook-e2e-failures-url": {"block": WEBHOOK, "field": "url"}
    }


def test_concurrency_limits_are_written_as_the_firestore_adapters_documents() -> None:
    """var.concurrency_limits becomes each key's limit document and its slot documents, in
    the shape the Firestore limits adapter reads; a slot is never rewritten by an apply (its
    holder is the runtime's), and the collection is the adapter's (name prefix + _limits)."""
    tf = _tf()
    assert tf["variable"]["concurrency_limits"]["type"] == "${map(number)}"
    assert tf["locals"]["limits_collection"] == "${var.name_prefix}_limits"
    limit = _resource(tf, "google_firestore_document", "concurrency_limit")
    assert limit["collection"] == "${local.limits_collection}"
    assert limit["document_id"] == "${each.key}"
    assert re.findall(r"(\w+) += \{ *(\w+)", limit["fields"]) == [
        ("key", "stringValue"),
        ("limit", "integerValue"),
    ]
    slot = _resource(tf, "google_firestore_document", "concurrency_slot")
    assert slot["collection"] == "${local.limits_collection}/${each.value.key}/slots"
    assert re.findall(r"(\w+) += \{ *(\w+)", slot["fields"]) == [
        ("key", "stringValue"),
        ("index", "integerValue"),
        ("holder", "stringValue"),
        ("waited", "booleanValue"),
    ]
    # free as the adapter marks it: its queries match "" (an `in` query never matches null)
    assert 'holder = {stringValue = ""}' in slot["fields"]
    assert slot["lifecycle"][0]["ignore_changes"] == ["fields"]
