"""Read ``template.yaml`` (CloudFormation tags included) and deploy its resources into embedded AWS (moto).

The local runtime, the tests and the demo all build their tables, buckets, queues, topics, log groups and
alarms from the real template, never from copies, so a change to the template is a change to every local run.
Every resource type of the template is either deployed here (:data:`DEPLOYED`), deployed by the runtime that
runs it (:data:`RUN_LOCALLY`), or skipped for a stated reason (:data:`SKIPPED`); a contract test keeps the three
exhaustive, so a new type cannot be silently left out. Conditions are evaluated: a resource whose condition is
false (``AlarmEmailSubscription`` without an ``AlarmEmail``) is not deployed, as in CloudFormation.
"""

from __future__ import annotations

import copy
import functools
import json
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

if TYPE_CHECKING:
    from collections.abc import Callable

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = ROOT / "template.yaml"


class _CfnLoader(yaml.SafeLoader):
    """YAML loader that turns ``!Ref X`` into ``{"Ref": "X"}`` and ``!Sub s`` into ``{"Fn::Sub": s}``."""


def _cfn_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


_CfnLoader.add_multi_constructor("!", _cfn_tag)


def load_template(path: Path | str = TEMPLATE) -> dict[str, Any]:
    """The template as a dict (a fresh copy each call: callers may change theirs)."""
    text = Path(path).read_text()
    return copy.deepcopy(_parse_template(text))


@functools.lru_cache(maxsize=8)
def _parse_template(text: str) -> dict[str, Any]:
    # YAML parsing is a third of a second; tests deploy the same template hundreds of times.
    return yaml.load(text, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


class _Clients:
    """A session whose clients are made once per service (making a boto3 client costs about 10 ms)."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        if service not in self._clients:
            self._clients[service] = self._session.client(service)
        return self._clients[service]


NO_VALUE = object()  # what ``Ref AWS::NoValue`` resolves to: the enclosing key or list item is dropped


@dataclass
class Deployment:
    """Physical names and attributes of the resources deployed from a template."""

    prefix: str
    template: dict[str, Any]
    region: str = "us-east-1"
    account: str = "123456789012"
    parameters: dict[str, str] = field(default_factory=dict)
    physical: dict[str, str] = field(default_factory=dict)
    attributes: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def resources(self) -> dict[str, Any]:
        return self.template["Resources"]

    def of_type(self, kind: str) -> dict[str, dict[str, Any]]:
        """The resources of one type that this deployment has (their condition, if any, holds)."""
        return {k: v for k, v in self.resources.items() if v["Type"] == kind and self.active(k)}

    def active(self, logical_id: str) -> bool:
        """Whether a resource is part of this deployment: no ``Condition``, or a condition that holds."""
        name = self.resources[logical_id].get("Condition")
        return name is None or self.condition(name)

    def condition(self, name: str) -> bool:
        """Evaluate a condition of the template's ``Conditions`` section against the parameters."""
        return bool(self._evaluate(self.template.get("Conditions", {})[name]))

    def _evaluate(self, expr: Any) -> Any:
        if isinstance(expr, dict) and len(expr) == 1:
            ((fn, arg),) = expr.items()
            if fn == "Fn::Equals":
                return str(self.resolve(arg[0])) == str(self.resolve(arg[1]))
            if fn == "Fn::Not":
                return not self._evaluate(arg[0])
            if fn == "Fn::And":
                return all(self._evaluate(a) for a in arg)
            if fn == "Fn::Or":
                return any(self._evaluate(a) for a in arg)
            if fn in ("Condition", "Fn::Condition"):  # the loader reads ``!Condition X`` as Fn::Condition
                return self.condition(arg)
        raise ValueError(f"not a condition: {expr!r}")

    def resolve(self, value: Any) -> Any:
        """Resolve Ref, GetAtt, Sub, Join, Select, Split and If against this deployment."""
        if isinstance(value, dict) and len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref":
                if arg in self.parameters:
                    return self.parameters[arg]
                if arg == "AWS::Region":
                    return self.region
                if arg == "AWS::AccountId":
                    return self.account
                if arg == "AWS::Partition":
                    return "aws"
                if arg == "AWS::StackName":
                    return self.prefix
                if arg == "AWS::URLSuffix":
                    return "amazonaws.com"
                if arg == "AWS::NoValue":
                    return NO_VALUE
                return self.physical.get(arg, arg)
            if fn == "Fn::GetAtt":
                return self.attributes.get((arg[0], arg[1]), f"{self.physical.get(arg[0], arg[0])}.{arg[1]}")
            if fn == "Fn::Sub":
                text = arg if isinstance(arg, str) else arg[0]
                local = {} if isinstance(arg, str) else arg[1]

                def sub(m: re.Match[str]) -> str:
                    name = m.group(1)
                    if name in local:
                        return str(self.resolve(local[name]))
                    if "." in name:
                        res, att = name.split(".", 1)
                        return str(self.resolve({"Fn::GetAtt": [res, att]}))
                    return str(self.resolve({"Ref": name}))

                return re.sub(r"\$\{([^}!]+)\}", sub, text)
            if fn == "Fn::Join":
                return str(arg[0]).join(str(self.resolve(v)) for v in self.resolve(arg[1]))
            if fn == "Fn::Split":
                return str(self.resolve(arg[1])).split(str(arg[0]))
            if fn == "Fn::Select":
                return self.resolve(arg[1])[int(self.resolve(arg[0]))]
            if fn == "Fn::If":
                return self.resolve(arg[1] if self.condition(arg[0]) else arg[2])
        if isinstance(value, dict):
            out = {k: self.resolve(v) for k, v in value.items()}
            return {k: v for k, v in out.items() if v is not NO_VALUE}
        if isinstance(value, list):
            return [v for v in (self.resolve(v) for v in value) if v is not NO_VALUE]
        return value

    def function_environment(self, logical_id: str) -> dict[str, str]:
        glob = self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        own = self.resources[logical_id]["Properties"].get("Environment", {}).get("Variables", {})
        return {k: str(self.resolve(v)) for k, v in {**glob, **own}.items()}


def deploy(
    session: Any,
    prefix: str = "kairos",
    template: dict[str, Any] | None = None,
    overrides: dict[str, str] | None = None,
) -> Deployment:
    """Create the template's resources with ``session`` (a boto3 session inside moto).

    Parameters
    ----------
    session
        ``boto3.Session`` (or the ``boto3`` module) to create clients from.
    prefix
        Physical names are ``<prefix>-<LogicalId>`` (lower-cased for buckets); ``AWS::StackName`` is ``prefix``.
    template
        A template to deploy instead of ``template.yaml``.
    overrides
        Parameter values that replace the template defaults.

    Returns
    -------
    Deployment
        Physical names and attributes of what was created; state machines are added by
        :func:`kairos_local.stepfunctions.deploy_state_machines`.
    """
    session = _Clients(session)
    tpl = template or load_template()
    params = {k: str(v.get("Default", "")) for k, v in tpl.get("Parameters", {}).items()}
    params.update(overrides or {})
    dep = Deployment(prefix=prefix, template=tpl, parameters=params)
    dep.region = session.client("sts").meta.region_name
    # Names first: log groups and alarms name the functions and the API.
    for lid in dep.of_type("AWS::Serverless::Function"):
        dep.physical[lid] = f"{prefix}-{lid}"
        dep.attributes[(lid, "Arn")] = f"arn:aws:lambda:{dep.region}:{dep.account}:function:{prefix}-{lid}"
    for lid in dep.of_type("AWS::Serverless::Api"):
        dep.physical[lid] = f"{prefix}api"
    for lid, res in dep.of_type("AWS::Serverless::StateMachine").items():
        name = str(dep.resolve(res["Properties"]["Name"])) if "Name" in res["Properties"] else f"{prefix}-{lid}"
        dep.physical[lid] = f"arn:aws:states:{dep.region}:{dep.account}:stateMachine:{name}"
        dep.attributes[(lid, "Arn")] = dep.physical[lid]
        dep.attributes[(lid, "Name")] = name
    _deploy_messaging(dep, session)
    for kind, create in DEPLOYED.items():
        for lid, res in dep.of_type(kind).items():
            create(dep, session, lid, res)
    return dep


def _deploy_table(dep: Deployment, session: Any, lid: str, res: dict[str, Any]) -> None:
    ddb = session.client("dynamodb")
    props = res["Properties"]
    name = f"{dep.prefix}-{lid}"
    args: dict[str, Any] = {
        "TableName": name,
        "AttributeDefinitions": props["AttributeDefinitions"],
        "KeySchema": props["KeySchema"],
        "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST"),
    }
    if "GlobalSecondaryIndexes" in props:
        args["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    if "StreamSpecification" in props:
        args["StreamSpecification"] = {"StreamEnabled": True, **props["StreamSpecification"]}
    if props.get("SSESpecification", {}).get("SSEEnabled"):
        args["SSESpecification"] = {"Enabled": True}
    ddb.create_table(**args)
    ttl = props.get("TimeToLiveSpecification")
    if ttl and ttl.get("Enabled"):
        ddb.update_time_to_live(
            TableName=name, TimeToLiveSpecification={"Enabled": True, "AttributeName": ttl["AttributeName"]}
        )
    if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
        ddb.update_continuous_backups(
            TableName=name, PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}
        )
    desc = ddb.describe_table(TableName=name)["Table"]
    dep.physical[lid] = name
    dep.attributes[(lid, "Arn")] = desc["TableArn"]
    if "LatestStreamArn" in desc:
        dep.attributes[(lid, "StreamArn")] = desc["LatestStreamArn"]


def _deploy_bucket(dep: Deployment, session: Any, lid: str, res: dict[str, Any]) -> None:
    s3 = session.client("s3")
    name = f"{dep.prefix}-{lid}".lower()
    if dep.region == "us-east-1":
        s3.create_bucket(Bucket=name)
    else:
        s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": dep.region})
    dep.physical[lid] = name
    dep.attributes[(lid, "Arn")] = f"arn:aws:s3:::{name}"
    props = dep.resolve(res.get("Properties", {}))
    if "BucketEncryption" in props:
        s3.put_bucket_encryption(
            Bucket=name,
            ServerSideEncryptionConfiguration={
                "Rules": [
                    # CloudFormation and the S3 API name the same setting differently.
                    {
                        "ApplyServerSideEncryptionByDefault": rule["ServerSideEncryptionByDefault"],
                        "BucketKeyEnabled": bool(rule.get("BucketKeyEnabled", False)),
                    }
                    for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
                ]
            },
        )
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
    if "VersioningConfiguration" in props:
        s3.put_bucket_versioning(Bucket=name, VersioningConfiguration=props["VersioningConfiguration"])
    if "LifecycleConfiguration" in props:
        s3.put_bucket_lifecycle_configuration(
            Bucket=name,
            LifecycleConfiguration={"Rules": [_lifecycle_rule(r) for r in props["LifecycleConfiguration"]["Rules"]]},
        )


def _lifecycle_rule(rule: dict[str, Any]) -> dict[str, Any]:
    """A CloudFormation lifecycle rule (``Id``, ``Prefix``, ``ExpirationInDays``) in the S3 API's shape."""
    out: dict[str, Any] = {"ID": rule["Id"], "Status": rule["Status"], "Filter": {"Prefix": rule.get("Prefix", "")}}
    if "ExpirationInDays" in rule:
        out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
    return out


def _deploy_queue(dep: Deployment, session: Any, lid: str, res: dict[str, Any]) -> None:
    name = f"{dep.prefix}-{lid}"
    props = dep.resolve(res.get("Properties", {}))
    attributes = {
        k: str(props[k]).lower() if isinstance(props[k], bool) else str(props[k])
        for k in ("MessageRetentionPeriod", "VisibilityTimeout", "SqsManagedSseEnabled")
        if k in props
    }
    url = session.client("sqs").create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    dep.physical[lid] = url
    dep.attributes[(lid, "Arn")] = f"arn:aws:sqs:{dep.region}:{dep.account}:{name}"
    dep.attributes[(lid, "QueueName")] = name
    dep.attributes[(lid, "QueueUrl")] = url


def _deploy_queue_policy(dep: Deployment, session: Any, lid: str, res: dict[str, Any]) -> None:
    props = dep.resolve(res["Properties"])
    for url in props["Queues"]:
        session.client("sqs").set_queue_attributes(
            QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
        )
    dep.physical[lid] = lid


def _deploy_topic(dep: Deployment, session: Any, lid: str, res: dict[str, Any]) -> None:
    props = dep.resolve(res.get("Properties", {}))
    attributes = {"DisplayName": props["DisplayName"]} if "DisplayName" in props else {}
    arn = session.client("sns").create_topic(Name=f"{dep.prefix}-{lid}", Attributes=attributes)["TopicArn"]
    dep.physical[lid] = arn
    dep.attributes[(lid, "TopicArn")] = arn
    dep.attributes[(lid, "TopicName")] = f"{dep.prefix}-{lid}"


def _deploy_subscription(dep: Deployment, session: Any, lid: str, res: dict[str, Any]) -> None:
    props = dep.resolve(res["Properties"])
    arn = session.client("sns").subscribe(
        TopicArn=props["TopicArn"], Protocol=props["Protocol"], Endpoint=props["Endpoint"], ReturnSubscriptionArn=True
    )["SubscriptionArn"]
    dep.physical[lid] = arn


def _deploy_log_group(dep: Deployment, session: Any, lid: str, res: dict[str, Any]) -> None:
    props = dep.resolve(res.get("Properties", {}))
    name = props.get("LogGroupName") or f"{dep.prefix}-{lid}"
    logs = session.client("logs")
    logs.create_log_group(logGroupName=name)
    if "RetentionInDays" in props:
        logs.put_retention_policy(logGroupName=name, retentionInDays=int(props["RetentionInDays"]))
    dep.physical[lid] = name
    # CloudFormation's Arn of a log group ends in ":*" (what Step Functions logging wants).
    dep.attributes[(lid, "Arn")] = f"arn:aws:logs:{dep.region}:{dep.account}:log-group:{name}:*"


def _deploy_alarm(dep: Deployment, session: Any, lid: str, res: dict[str, Any]) -> None:
    props = dep.resolve(res["Properties"])
    name = props.pop("AlarmName", None) or f"{dep.prefix}-{lid}"
    for key in ("Period", "EvaluationPeriods", "DatapointsToAlarm"):
        if key in props:
            props[key] = int(props[key])
    props["Threshold"] = float(props["Threshold"])
    props["Dimensions"] = [{"Name": d["Name"], "Value": str(d["Value"])} for d in props.get("Dimensions", [])]
    session.client("cloudwatch").put_metric_alarm(AlarmName=name, **props)
    dep.physical[lid] = name
    dep.attributes[(lid, "Arn")] = f"arn:aws:cloudwatch:{dep.region}:{dep.account}:alarm:{name}"


def _deploy_secret(dep: Deployment, session: Any, lid: str, res: dict[str, Any]) -> None:
    """A secret with a generated value, as CloudFormation's ``GenerateSecretString`` makes it."""
    props = dep.resolve(res.get("Properties", {}))
    name = props.get("Name") or f"{dep.prefix}-{lid}"
    spec = props.get("GenerateSecretString") or {}
    value = secrets.token_hex(max(16, int(spec.get("PasswordLength", 32)) // 2))
    arn = session.client("secretsmanager").create_secret(Name=name, SecretString=value)["ARN"]
    dep.physical[lid] = arn
    dep.attributes[(lid, "Id")] = arn


def _deploy_glue_database(dep: Deployment, session: Any, lid: str, res: dict[str, Any]) -> None:
    props = dep.resolve(res["Properties"])
    session.client("glue").create_database(DatabaseInput=props["DatabaseInput"])
    dep.physical[lid] = props["DatabaseInput"]["Name"]


def _deploy_glue_table(dep: Deployment, session: Any, lid: str, res: dict[str, Any]) -> None:
    props = dep.resolve(res["Properties"])
    session.client("glue").create_table(DatabaseName=props["DatabaseName"], TableInput=props["TableInput"])
    dep.physical[lid] = props["TableInput"]["Name"]


def _deploy_workgroup(dep: Deployment, session: Any, lid: str, res: dict[str, Any]) -> None:
    """An Athena workgroup: moto keeps it and takes queries in it, but runs none (the local runtime's analytics
    run on DuckDB instead, see ``kairos_local.runtime.LOCAL_ENVIRONMENT``)."""
    props = dep.resolve(res["Properties"])
    config = dict(props.get("WorkGroupConfiguration", {}))
    if "BytesScannedCutoffPerQuery" in config:
        config["BytesScannedCutoffPerQuery"] = int(config["BytesScannedCutoffPerQuery"])
    session.client("athena").create_work_group(
        Name=props["Name"], Description=props.get("Description", ""), Configuration=config
    )
    dep.physical[lid] = props["Name"]


def _named_by_messaging(dep: Deployment, session: Any, lid: str, res: dict[str, Any]) -> None:
    """Created by :func:`_deploy_messaging`, which runs first (functions' environments name them)."""


#: Resource types this module creates in embedded AWS, in creation order.
DEPLOYED: dict[str, Callable[[Deployment, Any, str, dict[str, Any]], None]] = {
    "AWS::SES::ConfigurationSet": _named_by_messaging,
    "AWS::DynamoDB::Table": _deploy_table,
    "AWS::S3::Bucket": _deploy_bucket,
    "AWS::SQS::Queue": _deploy_queue,
    "AWS::SQS::QueuePolicy": _deploy_queue_policy,
    "AWS::SNS::Topic": _deploy_topic,
    "AWS::SNS::Subscription": _deploy_subscription,
    "AWS::Logs::LogGroup": _deploy_log_group,
    "AWS::CloudWatch::Alarm": _deploy_alarm,
    "AWS::SecretsManager::Secret": _deploy_secret,
    "AWS::Glue::Database": _deploy_glue_database,
    "AWS::Glue::Table": _deploy_glue_table,
    "AWS::Athena::WorkGroup": _deploy_workgroup,
}

#: Resource types the local runtime brings up itself: named in :func:`deploy`, run in-process.
RUN_LOCALLY: dict[str, str] = {
    "AWS::Serverless::Function": "kairos_local.runtime.LocalRuntime runs the handlers in-process",
    "AWS::Serverless::Api": "kairos_local.runtime.LocalRuntime.http serves the routes and runs the authorizer",
    "AWS::Serverless::StateMachine": "kairos_local.stepfunctions.deploy_state_machines creates them in moto",
}

#: Resource types embedded AWS does without, and why.
SKIPPED: dict[str, str] = {
    "AWS::Serverless::LayerVersion": "functions import the repository's kairos package; there is no layer to build",
    "AWS::S3::BucketPolicy": (
        "the policies deny insecure transport (and let CloudFront read the console), and moto takes in-process "
        "requests for insecure: it would refuse every one"
    ),
    "AWS::SES::ConfigurationSetEventDestination": (
        "moto's SES has no EventBridge destinations; local engagement arrives through POST /v1/events"
    ),
    "AWS::ApiGateway::Account": "the local API writes no access log: there is no account logging role to set",
    "AWS::IAM::Role": "in-process functions run with the test credentials; IAM is not enforced locally",
    "AWS::CloudFront::Distribution": "make serve answers /console and /v1 on one local origin (kairos_local.server)",
    "AWS::CloudFront::OriginAccessControl": "the distribution's access to the console bucket, skipped with it",
    "AWS::CloudFront::Function": "the distribution's paths; the local server redirects /console to /console/ itself",
    "AWS::CloudFront::ResponseHeadersPolicy": "the local server sends the console's headers (console_assets.py)",
    "Custom::ConsolePublish": "the local server serves the console from the package; nothing is copied to a bucket",
    "AWS::Cognito::UserPool": "locally the console signs in with the local API key; moto issues no verifiable tokens",
    "AWS::Cognito::UserPoolClient": "the console's client of the user pool, skipped with it",
    "AWS::Cognito::UserPoolGroup": "the user pool's groups, skipped with it",
}


def _deploy_messaging(dep: Deployment, session: Any) -> None:
    """SES configuration sets and the sender identity; locally, stand-ins for what a team brings.

    A real deployment brings a verified sender, an SNS platform application for push and (for End User
    Messaging) an origination identity as parameters. Embedded AWS makes them: it verifies the sender in
    SES, creates a push platform application when none is given, and sends SMS through SNS (moto has no
    End User Messaging) unless told otherwise.
    """
    sets = dep.of_type("AWS::SES::ConfigurationSet")
    if not sets and "SenderEmail" not in dep.parameters:
        return
    ses = session.client("sesv2")
    for lid, res in sets.items():
        name = str(dep.resolve(res.get("Properties", {}).get("Name", f"{dep.prefix}-{lid}")))
        ses.create_configuration_set(ConfigurationSetName=name)
        dep.physical[lid] = name
    if dep.parameters.get("SenderEmail"):
        ses.create_email_identity(EmailIdentity=dep.parameters["SenderEmail"])
    if "PushPlatformApplicationArn" in dep.parameters and not dep.parameters["PushPlatformApplicationArn"]:
        sns = session.client("sns")
        arn = sns.create_platform_application(
            Name=f"{dep.prefix}-push", Platform="GCM", Attributes={"PlatformCredential": "local-fcm-key"}
        )["PlatformApplicationArn"]
        dep.parameters["PushPlatformApplicationArn"] = arn
    if dep.parameters.get("SmsProvider") == "eum" and not dep.parameters.get("SmsOriginationIdentity"):
        dep.parameters["SmsProvider"] = "sns"
