"""The stack serves the web console over HTTPS: a private bucket read only by its CloudFront distribution (origin
access control), /v1/* sent uncached to the API stage on the same origin, the console's security headers, the
files published by the ConsolePublish resource, and the console's URL as an output."""

from __future__ import annotations

from kairos.http.console_assets import CSP
from kairos_local.template import DEPLOYED, RUN_LOCALLY, SKIPPED, load_template

TEMPLATE = load_template()
RESOURCES = TEMPLATE["Resources"]
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST = "b689b0a8-53d0-40ab-baf2-68738e2966ac"


def distribution() -> dict:
    return RESOURCES["ConsoleDistribution"]["Properties"]["DistributionConfig"]


def test_console_bucket_is_private_and_encrypted():
    props = RESOURCES["ConsoleBucket"]["Properties"]
    assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
    assert all(props["PublicAccessBlockConfiguration"].values()) and len(props["PublicAccessBlockConfiguration"]) == 4
    assert props["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]


def test_console_bucket_policy_lets_only_this_distribution_get_objects():
    statements = RESOURCES["ConsoleBucketPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert RESOURCES["ConsoleBucketPolicy"]["Properties"]["Bucket"] == {"Ref": "ConsoleBucket"}
    allows = [s for s in statements if s["Effect"] == "Allow"]
    (allow,) = allows
    assert allow["Principal"] == {"Service": "cloudfront.amazonaws.com"}
    assert allow["Action"] == "s3:GetObject"
    assert allow["Resource"] == {"Fn::Sub": "${ConsoleBucket.Arn}/console/*"}
    source = allow["Condition"]["StringEquals"]["AWS:SourceArn"]["Fn::Sub"]
    assert source.endswith(":distribution/${ConsoleDistribution}")
    deny = next(s for s in statements if s.get("Sid") == "DenyInsecureTransport")
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_console_distribution_reads_the_bucket_through_origin_access_control_over_https():
    config = distribution()
    origins = {o["Id"]: o for o in config["Origins"]}
    assert origins["console"]["DomainName"] == {"Fn::GetAtt": ["ConsoleBucket", "RegionalDomainName"]}
    assert origins["console"]["OriginAccessControlId"] == {"Fn::GetAtt": ["ConsoleOriginAccessControl", "Id"]}
    oac = RESOURCES["ConsoleOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert (oac["OriginAccessControlOriginType"], oac["SigningBehavior"]) == ("s3", "always")
    default = config["DefaultCacheBehavior"]
    assert default["TargetOriginId"] == "console" and default["ViewerProtocolPolicy"] == "redirect-to-https"
    # /console/ answers console/index.html: the viewer-request function adds it to every folder
    (association,) = default["FunctionAssociations"]
    assert association["FunctionARN"] == {"Fn::GetAtt": ["ConsolePaths", "FunctionMetadata.FunctionARN"]}
    assert 'request.uri += "index.html"' in RESOURCES["ConsolePaths"]["Properties"]["FunctionCode"]


def test_console_distribution_sends_v1_uncached_to_the_api_stage_with_the_authorization_header():
    config = distribution()
    api = next(o for o in config["Origins"] if o["Id"] == "api")
    assert api["DomainName"] == {"Fn::Sub": "${KairosApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"}
    assert api["OriginPath"] == {"Fn::Sub": "/${StageName}"}
    assert api["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    (v1,) = [b for b in config["CacheBehaviors"] if b["PathPattern"] == "/v1/*"]
    assert v1["TargetOriginId"] == "api" and v1["ViewerProtocolPolicy"] in ("https-only", "redirect-to-https")
    assert v1["CachePolicyId"] == CACHING_DISABLED
    # AllViewerExceptHostHeader forwards Authorization (allowed with caching disabled), not the viewer's Host
    assert v1["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST
    assert {"POST", "PUT", "DELETE"} <= set(v1["AllowedMethods"])


def test_console_security_headers_match_the_consoles_own():
    headers = RESOURCES["ConsoleSecurityHeaders"]["Properties"]["ResponseHeadersPolicyConfig"]["SecurityHeadersConfig"]
    # The console's own policy, but for the account sign-in's calls to the region's Cognito endpoint
    cognito = "connect-src 'self' https://cognito-idp.${AWS::Region}.amazonaws.com;"
    policy = headers["ContentSecurityPolicy"]["ContentSecurityPolicy"]["Fn::Sub"]
    assert " ".join(policy.split()) == CSP.replace("connect-src 'self';", cognito)
    assert headers["StrictTransportSecurity"]["AccessControlMaxAgeSec"] >= 31536000
    assert headers["ContentTypeOptions"]["Override"] is True
    assert headers["FrameOptions"]["FrameOption"] == "DENY"
    assert distribution()["DefaultCacheBehavior"]["ResponseHeadersPolicyId"] == {"Ref": "ConsoleSecurityHeaders"}


def test_console_publish_resource_copies_to_the_bucket_and_may_only_write_there():
    publish = RESOURCES["ConsolePublish"]["Properties"]
    assert publish["ServiceToken"] == {"Fn::GetAtt": ["ConsolePublishFunction", "Arn"]}
    assert publish["Bucket"] == {"Ref": "ConsoleBucket"}
    assert publish["Package"] == {"Ref": "KairosLayer"}  # a new layer (new console files) publishes again
    (policy,) = RESOURCES["ConsolePublishFunction"]["Properties"]["Policies"]
    resources = [s["Resource"] for s in policy["Statement"]]
    assert resources == [{"Fn::Sub": "${ConsoleBucket.Arn}/console/*"}, {"Fn::GetAtt": ["ConsoleBucket", "Arn"]}]


def test_console_url_is_an_output():
    assert TEMPLATE["Outputs"]["ConsoleUrl"]["Value"] == {
        "Fn::Sub": "https://${ConsoleDistribution.DomainName}/console/"
    }


def test_every_template_resource_type_is_deployed_run_or_skipped_locally():
    # make serve deploys the template: a new type is either created in moto, run in-process, or skipped with a reason
    kinds = {res["Type"] for res in RESOURCES.values()}
    known = set(DEPLOYED) | set(RUN_LOCALLY) | set(SKIPPED)
    assert {k for k in kinds if k.startswith(("AWS::CloudFront::", "Custom::"))} <= known
