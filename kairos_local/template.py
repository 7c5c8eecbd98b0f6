"""Read ``template.yaml`` (CloudFormation tags included) and deploy its resources into embedded AWS (moto).

The local runtime, the tests and the demo all build their tables, buckets and queues from the real
template, never from copies, so a change to the template is a change to every local run.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

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
    with open(path) as fh:
        return yaml.load(fh, Loader=_CfnLoader)  # noqa: S506 - SafeLoader subclass


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
        return {k: v for k, v in self.resources.items() if v["Type"] == kind}

    def resolve(self, value: Any) -> Any:
        """Resolve Ref, GetAtt and Sub against this deployment."""
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
        if isinstance(value, dict):
            return {k: self.resolve(v) for k, v in value.items()}
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
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
    """Create the template's tables, buckets and queues with ``session`` (a boto3 session inside moto).

    Parameters
    ----------
    session
        ``boto3.Session`` (or the ``boto3`` module) to create clients from.
    prefix
        Physical names are ``<prefix>-<LogicalId>`` (lower-cased for buckets).
    overrides
        Parameter values that replace the template defaults.
    """
    tpl = template or load_template()
    params = {k: str(v.get("Default", "")) for k, v in tpl.get("Parameters", {}).items()}
    params.update(overrides or {})
    dep = Deployment(prefix=prefix, template=tpl, parameters=params)
    ddb = session.client("dynamodb")
    s3 = session.client("s3")
    sqs = session.client("sqs")
    dep.region = ddb.meta.region_name

    for lid, res in dep.of_type("AWS::DynamoDB::Table").items():
        props = res["Properties"]
        name = f"{prefix}-{lid}"
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
        desc = ddb.create_table(**args)["TableDescription"]
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

    for lid in dep.of_type("AWS::S3::Bucket"):
        name = f"{prefix}-{lid}".lower()
        if dep.region == "us-east-1":
            s3.create_bucket(Bucket=name)
        else:
            s3.create_bucket(Bucket=name, CreateBucketConfiguration={"LocationConstraint": dep.region})
        props = dep.resolve(dep.resources[lid].get("Properties", {}))
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
            s3.put_public_access_block(
                Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"]
            )
        dep.physical[lid] = name
        dep.attributes[(lid, "Arn")] = f"arn:aws:s3:::{name}"

    for lid in dep.of_type("AWS::SQS::Queue"):
        name = f"{prefix}-{lid}"
        url = sqs.create_queue(QueueName=name)["QueueUrl"]
        dep.physical[lid] = url
        dep.attributes[(lid, "Arn")] = f"arn:aws:sqs:{dep.region}:{dep.account}:{name}"

    _deploy_messaging(dep, session)

    for lid in dep.of_type("AWS::Serverless::Function"):
        dep.physical[lid] = f"{prefix}-{lid}"
        dep.attributes[(lid, "Arn")] = f"arn:aws:lambda:{dep.region}:{dep.account}:function:{prefix}-{lid}"
    for lid in dep.of_type("AWS::Serverless::Api"):
        dep.physical[lid] = f"{prefix}api"
    return dep


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
