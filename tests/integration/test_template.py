"""template.yaml as CloudFormation will read it: the dashboard, the alarms, JSON logs, the
expiry schedule, the failure destination and least-privilege IAM.

cfn-lint's loader keeps the short intrinsics in their long form (``!Ref X`` is
``{"Ref": "X"}``), so the checks compare against exactly what CloudFormation receives.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import decode  # type: ignore[import-untyped]

from adapters.dynamodb_state import TABLE_DEFINITION
from application.metrics import Metric
from entrypoints.events import BATCH_SIZE

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"
NAMESPACE = "StreamingFileBuilder"
NO_VALUE = {"Ref": "AWS::NoValue"}
STACK_NAME = {"Ref": "AWS::StackName"}
ALARM_ACTIONS = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], NO_VALUE]}
# What the dashboard's !Sub variables stand for when its body is read here.
DASHBOARD_VARIABLES = {
    "AWS::StackName": "STACK",
    "AWS::Region": "REGION",
    "Function": "FUNCTION",
    "ExpireFunction": "EXPIRE-FUNCTION",
}

Node = dict[str, Any]


@dataclass(frozen=True)
class Statement:
    role: str
    body: Node
    # Names of the !If conditions this statement sits under ("!Name" for an else branch).
    conditions: tuple[str, ...]

    def actions(self) -> list[str]:
        return [str(action) for action in as_list(self.body.get("Action"))]

    def resources(self) -> list[str]:
        return [text(resource) for resource in as_list(self.body.get("Resource"))]


@dataclass(frozen=True)
class GraphedMetric:
    namespace: str
    name: str
    dimensions: dict[str, str]
    options: Node


@pytest.fixture(scope="module")
def template() -> Node:
    loaded, problems = decode(str(TEMPLATE))
    assert problems == []
    assert isinstance(loaded, dict)
    return loaded


def as_list(value: object) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def text(value: object) -> str:
    """A resource as written: a literal, the text of a !Sub, or ``Name.Attribute``."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Fn::Sub" in value:
        sub = value["Fn::Sub"]
        return str(sub[0] if isinstance(sub, list) else sub)
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return ".".join(str(part) for part in as_list(value["Fn::GetAtt"]))
    if isinstance(value, dict) and "Ref" in value:
        return str(value["Ref"])
    return json.dumps(value, sort_keys=True)


def resources(template: Node, kind: str) -> dict[str, Node]:
    found: dict[str, Node] = {}
    for name, resource in template["Resources"].items():
        if resource["Type"] == kind:
            found[str(name)] = resource
    return found


def properties(template: Node, name: str) -> Node:
    props: Node = template["Resources"][name]["Properties"]
    return props


def branches(
    value: object, conditions: tuple[str, ...] = ()
) -> Iterator[tuple[Node, tuple[str, ...]]]:
    """Every object a list item may become, through any nesting of !If, with its conditions."""
    if isinstance(value, dict) and set(value) == {"Fn::If"}:
        condition, when_true, when_false = value["Fn::If"]
        yield from branches(when_true, (*conditions, str(condition)))
        yield from branches(when_false, (*conditions, f"!{condition}"))
    elif isinstance(value, dict) and value != NO_VALUE:
        yield value, conditions


def statements(template: Node) -> list[Statement]:
    """Every statement of every policy in the template: inline role policies and any policy
    resource, each !If branch on its own."""
    found: list[Statement] = []
    documents: list[tuple[str, object]] = []
    for name, role in resources(template, "AWS::IAM::Role").items():
        documents.append((name, role["Properties"]["AssumeRolePolicyDocument"]))
        for policy in as_list(role["Properties"].get("Policies")):
            for branch, _ in branches(policy):
                documents.append((name, branch["PolicyDocument"]))
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for name, policy in resources(template, kind).items():
            documents.append((name, policy["Properties"]["PolicyDocument"]))
    for owner, document in documents:
        assert isinstance(document, dict)
        for item in as_list(document["Statement"]):
            for body, conditions in branches(item):
                found.append(Statement(owner, body, conditions))
    return found


def role_statements(template: Node, role: str) -> list[Statement]:
    return [s for s in statements(template) if s.role == role and "Principal" not in s.body]


def dashboard_widgets(template: Node) -> list[Node]:
    body = properties(template, "Dashboard")["DashboardBody"]
    assert set(body) == {"Fn::Sub"}, "the dashboard body is one !Sub of JSON"
    source = str(body["Fn::Sub"])
    resolved = re.sub(
        r"\$\{([^}!]+)\}",
        lambda match: DASHBOARD_VARIABLES.get(match[1], "0"),
        source,
    )
    widgets: list[Node] = json.loads(resolved)["widgets"]
    return widgets


def graphed(template: Node) -> list[GraphedMetric]:
    found: list[GraphedMetric] = []
    for widget in dashboard_widgets(template):
        for row in widget["properties"].get("metrics", []):
            if not isinstance(row[0], str):
                continue  # an expression
            namespace, name, *rest = row
            options: Node = rest.pop() if rest and isinstance(rest[-1], dict) else {}
            dimensions = dict(zip(rest[::2], rest[1::2], strict=True))
            found.append(GraphedMetric(namespace, name, dimensions, options))
    return found


def expressions(template: Node) -> list[str]:
    return [
        str(row[0]["expression"])
        for widget in dashboard_widgets(template)
        for row in widget["properties"].get("metrics", [])
        if isinstance(row[0], dict) and "expression" in row[0]
    ]


def functions(template: Node) -> dict[str, Node]:
    return resources(template, "AWS::Serverless::Function")


# --- the dashboard -------------------------------------------------------------------------


def test_the_dashboard_graphs_every_metric_the_service_publishes_for_this_stack(
    template: Node,
) -> None:
    ours = {
        metric.name
        for metric in graphed(template)
        if metric.namespace == NAMESPACE and metric.dimensions == {"Service": "STACK"}
    }

    assert {metric.metric_name for metric in Metric} <= ours


def test_the_dashboard_graphs_the_event_sources_iterator_age_and_the_functions_health(
    template: Node,
) -> None:
    lambda_metrics = {
        (metric.name, metric.dimensions["FunctionName"])
        for metric in graphed(template)
        if metric.namespace == "AWS/Lambda"
    }

    assert ("IteratorAge", "FUNCTION") in lambda_metrics
    for name in ("Errors", "Throttles"):
        assert (name, "FUNCTION") in lambda_metrics
        assert (name, "EXPIRE-FUNCTION") in lambda_metrics


def test_the_dashboard_splits_rejections_by_reason_with_a_search_over_the_reason_dimension(
    template: Node,
) -> None:
    [search] = [e for e in expressions(template) if "Rejections" in e]

    assert search.startswith("SEARCH(")
    assert f"{{{NAMESPACE},Reason,Service}}" in search
    assert 'Service="STACK"' in search


def test_the_dashboard_shows_upload_latency_at_p50_p99_and_maximum(template: Node) -> None:
    statistics = {
        metric.options.get("stat")
        for metric in graphed(template)
        if metric.name == Metric.UPLOAD_LATENCY.metric_name
    }

    assert statistics == {"p50", "p99", "Maximum"}


def test_both_functions_publish_metrics_under_the_stack_name(template: Node) -> None:
    assert set(functions(template)) == {"Function", "ExpireFunction"}
    for function in functions(template).values():
        assert function["Properties"]["Environment"]["Variables"]["METRICS_SERVICE"] == STACK_NAME


# --- the alarms ----------------------------------------------------------------------------


@dataclass(frozen=True)
class ExpectedAlarm:
    name: str
    namespace: str
    metric: str
    dimensions: dict[str, object]
    statistic: str
    threshold: object


EXPECTED_ALARMS = [
    ExpectedAlarm(
        "IteratorAgeAlarm",
        "AWS/Lambda",
        "IteratorAge",
        {"FunctionName": {"Ref": "Function"}},
        "Maximum",
        {"Ref": "IteratorAgeAlarmMilliseconds"},
    ),
    ExpectedAlarm(
        "UploadsFailedAlarm",
        NAMESPACE,
        "UploadsFailed",
        {"Service": STACK_NAME},
        "Sum",
        1,
    ),
    # Service alone: the total across reasons, which the EMF documents also declare.
    ExpectedAlarm(
        "RejectionsAlarm",
        NAMESPACE,
        "Rejections",
        {"Service": STACK_NAME},
        "Sum",
        {"Ref": "RejectionsAlarmThreshold"},
    ),
    ExpectedAlarm(
        "IncompleteFilesExpiredAlarm",
        NAMESPACE,
        "IncompleteFilesExpired",
        {"Service": STACK_NAME},
        "Sum",
        1,
    ),
    # Watched as its age past IncompleteFileTtlSeconds (metric math): an hour past the TTL.
    ExpectedAlarm(
        "StaleIncompleteFileAlarm",
        NAMESPACE,
        "OldestIncompleteFileAge",
        {"Service": STACK_NAME},
        "Maximum",
        3600,
    ),
    ExpectedAlarm(
        "FunctionErrorsAlarm",
        "AWS/Lambda",
        "Errors",
        {"FunctionName": {"Ref": "Function"}},
        "Sum",
        1,
    ),
    ExpectedAlarm(
        "ExpireFunctionErrorsAlarm",
        "AWS/Lambda",
        "Errors",
        {"FunctionName": {"Ref": "ExpireFunction"}},
        "Sum",
        1,
    ),
]


def watched(props: Node) -> tuple[str, str, dict[str, object], str]:
    """The metric an alarm reads: its own, or the one metric under its metric math."""
    if "Metrics" not in props:
        metric: Node = props
        statistic = props["Statistic"]
    else:
        [stat] = [m["MetricStat"] for m in props["Metrics"] if "MetricStat" in m]
        metric = stat["Metric"]
        statistic = stat["Stat"]
    dimensions = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
    return metric["Namespace"], metric["MetricName"], dimensions, statistic


@pytest.mark.parametrize("expected", EXPECTED_ALARMS, ids=lambda alarm: alarm.name)
def test_each_alarm_watches_its_metric_at_or_above_its_threshold(
    template: Node, expected: ExpectedAlarm
) -> None:
    alarm = template["Resources"][expected.name]
    props = alarm["Properties"]

    assert alarm["Type"] == "AWS::CloudWatch::Alarm"
    assert watched(props) == (
        expected.namespace,
        expected.metric,
        expected.dimensions,
        expected.statistic,
    )
    assert props["Threshold"] == expected.threshold
    assert props["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert props["TreatMissingData"] == "notBreaching"


def test_every_alarm_notifies_the_alarm_topic_only_when_one_is_given(template: Node) -> None:
    alarms = resources(template, "AWS::CloudWatch::Alarm")

    assert set(alarms) == {alarm.name for alarm in EXPECTED_ALARMS}
    assert template["Parameters"]["AlarmTopicArn"]["Default"] == ""
    assert template["Conditions"]["HasAlarmTopic"] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmTopicArn"}, ""]}]
    }
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == ALARM_ACTIONS
        assert alarm["Properties"]["OKActions"] == ALARM_ACTIONS


def test_the_stale_file_alarm_measures_the_oldest_file_past_the_expiry_ttl(
    template: Node,
) -> None:
    props = properties(template, "StaleIncompleteFileAlarm")
    [returned] = [m for m in props["Metrics"] if m.get("ReturnData", True)]
    [read] = [m for m in props["Metrics"] if "MetricStat" in m]

    assert returned["Expression"] == {"Fn::Sub": f"{read['Id']} - ${{IncompleteFileTtlSeconds}}"}


def test_the_iterator_age_alarm_defaults_to_ten_minutes(template: Node) -> None:
    assert template["Parameters"]["IteratorAgeAlarmMilliseconds"]["Default"] == 600_000


# --- IAM -----------------------------------------------------------------------------------


def test_the_walk_reaches_both_roles_and_the_statements_inside_if_branches(
    template: Node,
) -> None:
    walked = statements(template)

    assert {s.role for s in walked} == {"FunctionRole", "ExpireRole"}
    assert {c for s in walked for c in s.conditions} >= {
        "UseDynamoDb",
        "HasSsmPath",
        "FailToS3",
        "FailToSqs",
    }


def test_no_iam_statement_allows_every_action_or_every_resource(template: Node) -> None:
    for statement in statements(template):
        assert "NotAction" not in statement.body
        assert "NotResource" not in statement.body
        for action in statement.actions():
            assert action != "*"
            assert not action.endswith(":*"), statement
        for resource in statement.resources():
            assert resource != "*", statement
        assert statement.body.get("Principal") != "*"


def test_the_stream_is_read_without_any_account_wide_kinesis_action(template: Node) -> None:
    actions = {a for s in statements(template) for a in s.actions()}

    assert "kinesis:ListStreams" not in actions


# What the function's own code does under each prefix (adapters/s3_storage.py and
# adapters/shard_log.py), plus the
# event source's on-failure records.
FUNCTION_OBJECT_ACCESS = {
    "${Bucket.Arn}/pending/*": {"s3:PutObject", "s3:GetObject", "s3:DeleteObject"},
    "${Bucket.Arn}/quarantine/*": {"s3:PutObject"},
    "${Bucket.Arn}/failed/*": {"s3:PutObject", "s3:AbortMultipartUpload"},
    "${Bucket.Arn}/aws/lambda/*": {"s3:PutObject"},
    "${Bucket.Arn}/shards/*": {"s3:PutObject", "s3:GetObject"},
}


def object_access(template: Node, role: str) -> dict[str, set[str]]:
    access: dict[str, set[str]] = {}
    for statement in role_statements(template, role):
        for resource in statement.resources():
            if resource.startswith("${Bucket.Arn}/"):
                access.setdefault(resource, set()).update(statement.actions())
    return access


def test_the_function_role_reaches_objects_only_under_the_prefixes_its_code_uses(
    template: Node,
) -> None:
    assert object_access(template, "FunctionRole") == FUNCTION_OBJECT_ACCESS


def test_the_function_role_may_list_the_bucket_so_a_missing_log_entry_reads_as_404(
    template: Node,
) -> None:
    listing = [
        s for s in role_statements(template, "FunctionRole") if "s3:ListBucket" in s.actions()
    ]

    for statement in listing:
        assert statement.resources() == ["Bucket.Arn"]
        assert "Condition" not in statement.body  # a narrowed listing turns 404s into 403s
    assert ("FailToS3",) in {s.conditions for s in listing}
    assert () in {s.conditions for s in listing}


def test_the_expire_role_reads_and_drops_pending_chunks_and_records_under_expired(
    template: Node,
) -> None:
    assert object_access(template, "ExpireRole") == {
        "${Bucket.Arn}/pending/*": {"s3:PutObject", "s3:GetObject", "s3:DeleteObject"},
        "${Bucket.Arn}/shards/*": {"s3:PutObject", "s3:GetObject"},
        "${Bucket.Arn}/expired/*": {"s3:PutObject"},
    }
    actions = {a for s in role_statements(template, "ExpireRole") for a in s.actions()}
    assert not {a for a in actions if a.startswith(("kinesis:", "sqs:"))}
    [table] = [
        s
        for s in role_statements(template, "ExpireRole")
        if any(a.startswith("dynamodb:") for a in s.actions())
    ]
    assert table.conditions == ("UseDynamoDb",)
    assert set(table.actions()) == {
        "dynamodb:Scan",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:BatchGetItem",  # a given-up file's chunk objects: who else needs them
    }
    # The Scan reads the index of open files; the table whole only before provisioning.
    assert table.resources() == ["StateTable.Arn", "${StateTable.Arn}/index/open-files"]


def test_the_state_table_has_the_keys_and_the_index_sfb_provision_gives_it(
    template: Node,
) -> None:
    table = properties(template, "StateTable")
    for part in ("KeySchema", "AttributeDefinitions", "GlobalSecondaryIndexes", "BillingMode"):
        assert table[part] == TABLE_DEFINITION[part], part


def test_the_function_role_reads_and_writes_the_state_table_only_as_its_code_does(
    template: Node,
) -> None:
    """GetItem and UpdateItem for a file; BatchGetItem for a large file's segment items at
    assembly and for the whole files of a batch, BatchWriteItem for their tombstones
    (adapters/dynamodb_batch.py); on the state table only."""
    [table] = [
        s
        for s in role_statements(template, "FunctionRole")
        if any(a.startswith("dynamodb:") for a in s.actions())
    ]
    assert table.conditions == ("UseDynamoDb",)
    assert sorted(table.actions()) == [
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
    ]
    assert table.resources() == ["StateTable.Arn"]


# --- logs ----------------------------------------------------------------------------------


def test_every_function_logs_json_and_lambdas_level_filter_never_drops_info(
    template: Node,
) -> None:
    assert template["Conditions"]["LogDebug"] == {"Fn::Equals": [{"Ref": "LogLevel"}, "DEBUG"]}
    for name, function in functions(template).items():
        logging = function["Properties"]["LoggingConfig"]
        assert logging["LogFormat"] == "JSON", name
        # EMF lines carry no level, so Lambda counts them as INFO: INFO must always pass.
        level = logging["ApplicationLogLevel"]
        assert level == {"Fn::If": ["LogDebug", "DEBUG", "INFO"]}, name
        assert logging["LogGroup"]["Ref"] in resources(template, "AWS::Logs::LogGroup")


# --- the expiry ----------------------------------------------------------------------------


def test_the_expire_function_runs_the_expire_handler_on_a_schedule(template: Node) -> None:
    props = properties(template, "ExpireFunction")
    [event] = props["Events"].values()

    assert props["Handler"] == "entrypoints.lambda_handler.expire"
    assert props["Role"] == {"Fn::GetAtt": ["ExpireRole", "Arn"]}
    assert event["Type"] == "Schedule"
    assert event["Properties"]["Schedule"] == {"Ref": "ExpireSchedule"}
    assert template["Parameters"]["ExpireSchedule"]["Default"] == "rate(5 minutes)"


def test_both_functions_share_the_settings_and_the_incomplete_file_ttl(template: Node) -> None:
    function, expire = (
        properties(template, name)["Environment"]["Variables"]
        for name in ("Function", "ExpireFunction")
    )

    assert function == expire
    assert function["INCOMPLETE_FILE_TTL_SECONDS"] == {"Ref": "IncompleteFileTtlSeconds"}
    assert template["Parameters"]["IncompleteFileTtlSeconds"]["Default"] == 86400


def test_both_functions_fix_mallocs_mmap_threshold_so_freed_events_do_not_raise_it(
    template: Node,
) -> None:
    for name in ("Function", "ExpireFunction"):
        variables = properties(template, name)["Environment"]["Variables"]
        # A string: Lambda takes environment values as strings only.
        assert variables["MALLOC_MMAP_THRESHOLD_"] == "4194304"


def test_the_expire_function_is_built_like_the_function(template: Node) -> None:
    function, expire = (template["Resources"][n] for n in ("Function", "ExpireFunction"))

    assert expire["Properties"]["CodeUri"] == function["Properties"]["CodeUri"]
    assert expire.get("Metadata") == function.get("Metadata")


# --- the failure destination ---------------------------------------------------------------


def test_failed_batches_go_to_the_bucket_by_default_and_to_a_queue_only_when_chosen(
    template: Node,
) -> None:
    parameter = template["Parameters"]["FailureDestination"]
    [chunks] = properties(template, "Function")["Events"].values()

    assert parameter["Default"] == "S3"
    assert parameter["AllowedValues"] == ["S3", "SQS"]
    assert template["Conditions"]["FailToS3"] == {
        "Fn::Equals": [{"Ref": "FailureDestination"}, "S3"]
    }
    assert chunks["Properties"]["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::If": [
            "FailToS3",
            {"Fn::GetAtt": ["Bucket", "Arn"]},
            {"Fn::GetAtt": ["FailureQueue", "Arn"]},
        ]
    }
    assert template["Resources"]["FailureQueue"]["Condition"] == "FailToSqs"


def test_a_batch_holds_as_many_records_as_sfb_consume_and_lambda_give_by_default(
    template: Node,
) -> None:
    """Small single-chunk files go a batch at a time, their uploads side by side: ten a
    batch would cap a shard near a hundred files a second and cost a log write every ten."""
    parameter = template["Parameters"]["BatchSize"]
    [chunks] = properties(template, "Function")["Events"].values()

    assert parameter["Default"] == BATCH_SIZE == 100
    assert (parameter["MinValue"], parameter["MaxValue"]) == (1, 10_000)
    assert chunks["Properties"]["BatchSize"] == {"Ref": "BatchSize"}


def test_batches_are_invoked_at_once_unless_a_batching_window_is_chosen(template: Node) -> None:
    parameter = template["Parameters"]["MaximumBatchingWindowInSeconds"]
    [chunks] = properties(template, "Function")["Events"].values()

    assert (parameter["Default"], parameter["MinValue"], parameter["MaxValue"]) == (0, 0, 300)
    assert chunks["Properties"]["MaximumBatchingWindowInSeconds"] == {
        "Ref": "MaximumBatchingWindowInSeconds"
    }


def test_the_role_may_write_failed_batches_only_under_aws_lambda_and_only_for_s3(
    template: Node,
) -> None:
    for_s3 = [s for s in role_statements(template, "FunctionRole") if "FailToS3" in s.conditions]
    writes = [s for s in for_s3 if "s3:PutObject" in s.actions()]

    assert [s.resources() for s in writes] == [["${Bucket.Arn}/aws/lambda/*"]]
    assert all(s.conditions == ("FailToS3",) for s in for_s3)
    for statement in role_statements(template, "FunctionRole"):
        if "sqs:SendMessage" in statement.actions():
            assert statement.conditions == ("FailToSqs",)


def test_the_bucket_expires_failed_batch_records_under_aws_lambda(template: Node) -> None:
    rules = properties(template, "Bucket")["LifecycleConfiguration"]["Rules"]
    [rule] = [
        r for r in rules if r.get("Prefix", r.get("Filter", {}).get("Prefix")) == "aws/lambda/"
    ]

    assert rule["Status"] == "Enabled"
    assert 0 < rule["ExpirationInDays"] <= 90


def test_the_outputs_name_the_dashboard_and_the_failure_destination(template: Node) -> None:
    outputs = template["Outputs"]

    assert outputs["DashboardName"]["Value"] == {"Ref": "Dashboard"}
    assert "#dashboards:name=${Dashboard}" in text(outputs["DashboardUrl"]["Value"])
    assert outputs["FailureDestinationArn"]["Value"] == {
        "Fn::If": [
            "FailToS3",
            {"Fn::GetAtt": ["Bucket", "Arn"]},
            {"Fn::GetAtt": ["FailureQueue", "Arn"]},
        ]
    }
    assert outputs["FailureQueueUrl"]["Condition"] == "FailToSqs"


# --- the redis backend ----------------------------------------------------------------------


def test_the_redis_url_is_a_no_echo_parameter_set_only_for_the_redis_backend(
    template: Node,
) -> None:
    parameter = template["Parameters"]["RedisUrl"]
    assert (parameter["NoEcho"], parameter["Default"]) == (True, "")
    assert "redis" in template["Parameters"]["StateBackend"]["AllowedValues"]
    for name in ("Function", "ExpireFunction"):
        variables = properties(template, name)["Environment"]["Variables"]
        assert variables["REDIS_URL"] == {"Fn::If": ["HasRedisUrl", {"Ref": "RedisUrl"}, NO_VALUE]}
        assert variables["REDIS_MAX_CHUNK_BYTES"] == {
            "Fn::If": ["UseRedis", {"Ref": "RedisMaxChunkBytes"}, NO_VALUE]
        }


def test_both_functions_join_the_vpc_only_when_subnets_are_given(template: Node) -> None:
    placement = {
        "Fn::If": [
            "InVpc",
            {"SubnetIds": {"Ref": "SubnetIds"}, "SecurityGroupIds": {"Ref": "SecurityGroupIds"}},
            NO_VALUE,
        ]
    }
    for name in ("Function", "ExpireFunction"):
        assert properties(template, name)["VpcConfig"] == placement
    for role in ("FunctionRole", "ExpireRole"):
        [managed] = template["Resources"][role]["Properties"]["ManagedPolicyArns"]["Fn::If"][1]
        assert text(managed).endswith(
            ":iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole"
        )


def test_the_redis_backend_may_run_parallel_batches_and_needs_a_url_or_a_parameter_path(
    template: Node,
) -> None:
    rules = template["Rules"]
    [parallel] = rules["ParallelBatchesNeedTheSharedBackend"]["Assertions"]
    assert parallel["Assert"] == {"Fn::Not": [{"Fn::Equals": [{"Ref": "StateBackend"}, "local"]}]}
    [url] = rules["RedisNeedsItsUrl"]["Assertions"]
    assert {"Ref": "RedisUrl"} in json_refs(url["Assert"])
    assert {"Ref": "SsmParameterPath"} in json_refs(url["Assert"])


def json_refs(node: Any) -> list[Node]:
    """Every {"Ref": ...} inside ``node``."""
    if isinstance(node, dict):
        found = [node] if set(node) == {"Ref"} else []
        return found + [ref for value in node.values() for ref in json_refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in json_refs(value)]
    return []
