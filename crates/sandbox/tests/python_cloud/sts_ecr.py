"""boto3 against the irsa sandbox's STS, ECR and ECR Public.

Usage: python sts_ecr.py SPEC.json  (prints one JSON object of results on stdout)

The environment carries what a pod with IRSA has: AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE,
AWS_ENDPOINT_URL, AWS_REGION. SPEC lists extra web-identity cases (name, role, token) and a role
without ECR permissions.
"""
import base64
import json
import sys

import boto3
from botocore.exceptions import ClientError


def error(e):
    return {
        "code": e.response["Error"]["Code"],
        "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        "message": e.response["Error"].get("Message", ""),
    }


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    results = {}

    # The default credential chain: web identity from the environment.
    session = boto3.Session()
    ident = session.client("sts").get_caller_identity()
    results["caller_arn"] = ident["Arn"]
    results["caller_account"] = ident["Account"]
    token = session.client("ecr").get_authorization_token()["authorizationData"][0]
    results["ecr_username"] = base64.b64decode(token["authorizationToken"]).decode().split(":", 1)[0]
    results["ecr_proxy_endpoint"] = token["proxyEndpoint"]
    public = session.client("ecr-public").get_authorization_token()["authorizationData"]
    results["ecr_public_username"] = base64.b64decode(public["authorizationToken"]).decode().split(":", 1)[0]

    sts = boto3.client("sts")
    cases = {}
    for case in spec["cases"]:
        try:
            sts.assume_role_with_web_identity(
                RoleArn=case["role"], RoleSessionName="boto3-test", WebIdentityToken=case["token"]
            )
            cases[case["name"]] = {"code": "ok"}
        except ClientError as e:
            cases[case["name"]] = error(e)
    results["cases"] = cases

    # A role that may not call ecr:GetAuthorizationToken.
    creds = sts.assume_role_with_web_identity(
        RoleArn=spec["no_ecr_role"], RoleSessionName="boto3-test", WebIdentityToken=spec["good_token"]
    )["Credentials"]
    keys = dict(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    for service in ("ecr", "ecr-public"):
        try:
            boto3.client(service, **keys).get_authorization_token()
            results[f"{service}_without_permission"] = {"code": "ok"}
        except ClientError as e:
            results[f"{service}_without_permission"] = error(e)
    bad = dict(keys, aws_secret_access_key="x" * 40)
    try:
        boto3.client("ecr", **bad).get_authorization_token()
        results["ecr_wrong_secret"] = {"code": "ok"}
    except ClientError as e:
        results["ecr_wrong_secret"] = error(e)

    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
