"""boto3 against the irsa sandbox's IAM Query API, and its STS deciding from the same state.

Usage: python iam_query.py SPEC.json  (prints one JSON object of results on stdout)

SPEC: issuer, account, team_a_token, team_b_token (service-account tokens of the sandbox's
issuer), trust_a and trust_b (trust policies for team-a:puller and team-b:puller), pull (a
permission policy). The environment carries AWS_ENDPOINT_URL and static administrator keys.
"""
import json
import sys
import xml.etree.ElementTree as ET

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
import botocore.httpsession
from botocore.exceptions import ClientError

NS = {"iam": "https://iam.amazonaws.com/doc/2010-05-08/"}


def error(e):
    return {
        "code": e.response["Error"]["Code"],
        "status": e.response["ResponseMetadata"]["HTTPStatusCode"],
        "message": e.response["Error"].get("Message", ""),
    }


def attempt(call):
    try:
        call()
        return {"code": "ok"}
    except ClientError as e:
        return error(e)


def raw(url, body):
    """A SigV4-signed POST for service iam with any body, as botocore signs it."""
    creds = botocore.credentials.Credentials("AKIASANDBOXADMIN0001", "not-checked")
    request = botocore.awsrequest.AWSRequest(
        method="POST",
        url=url + "/",
        data=body,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    botocore.auth.SigV4Auth(creds, "iam", "us-east-1").add_auth(request)
    response = botocore.httpsession.URLLib3Session().send(request.prepare())
    root = ET.fromstring(response.content)
    return {
        "status": response.status_code,
        "root": root.tag,
        "type": root.findtext("iam:Error/iam:Type", namespaces=NS),
        "code": root.findtext("iam:Error/iam:Code", namespaces=NS),
        "message": root.findtext("iam:Error/iam:Message", namespaces=NS),
    }


def main():
    with open(sys.argv[1]) as f:
        spec = json.load(f)
    url = spec["url"]
    r = {}
    iam = boto3.client("iam")
    sts = boto3.client("sts")

    arn = iam.create_open_id_connect_provider(
        Url=spec["issuer"], ClientIDList=["sts.amazonaws.com"]
    )["OpenIDConnectProviderArn"]
    r["provider_arn"] = arn
    iam.add_client_id_to_open_id_connect_provider(OpenIDConnectProviderArn=arn, ClientID="other")
    iam.update_open_id_connect_provider_thumbprint(
        OpenIDConnectProviderArn=arn, ThumbprintList=["9e99a48a9960b14926bb7f3b02e22da2b0ab7280"]
    )
    got = iam.get_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    r["provider"] = {
        "url": got["Url"],
        "client_ids": got["ClientIDList"],
        "thumbprints": got["ThumbprintList"],
    }
    r["providers"] = [p["Arn"] for p in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]]
    r["provider_again"] = attempt(
        lambda: iam.create_open_id_connect_provider(Url=spec["issuer"], ClientIDList=["x"])
    )
    r["provider_http"] = attempt(
        lambda: iam.create_open_id_connect_provider(Url="http://insecure.test", ClientIDList=["x"])
    )

    role = iam.create_role(
        RoleName="iam-puller",
        Path="/irsa/",
        AssumeRolePolicyDocument=json.dumps(spec["trust_a"], indent=2),
        Description="made by boto3",
    )["Role"]
    r["role_arn"] = role["Arn"]
    r["role_created_doc"] = role["AssumeRolePolicyDocument"]
    r["role_again"] = attempt(
        lambda: iam.create_role(RoleName="iam-puller", AssumeRolePolicyDocument=json.dumps(spec["trust_a"]))
    )
    r["role_missing"] = attempt(lambda: iam.get_role(RoleName="nobody"))
    r["role_bad_trust"] = attempt(
        lambda: iam.create_role(RoleName="bad", AssumeRolePolicyDocument='{"Statement": [')
    )
    iam.put_role_policy(RoleName="iam-puller", PolicyName="pull", PolicyDocument=json.dumps(spec["pull"]))
    r["inline"] = iam.get_role_policy(RoleName="iam-puller", PolicyName="pull")["PolicyDocument"]
    r["inline_names"] = iam.list_role_policies(RoleName="iam-puller")["PolicyNames"]
    r["inline_missing"] = attempt(lambda: iam.get_role_policy(RoleName="iam-puller", PolicyName="nope"))
    r["inline_malformed"] = attempt(
        lambda: iam.put_role_policy(RoleName="iam-puller", PolicyName="x", PolicyDocument='{"Statement": [{"Effect": "Maybe"}]}')
    )
    policy = iam.create_policy(PolicyName="ecr-pull", PolicyDocument=json.dumps(spec["pull"]))["Policy"]
    iam.attach_role_policy(RoleName="iam-puller", PolicyArn=policy["Arn"])
    r["attached"] = [p["PolicyArn"] for p in iam.list_attached_role_policies(RoleName="iam-puller")["AttachedPolicies"]]
    r["policy_attachments"] = iam.get_policy(PolicyArn=policy["Arn"])["Policy"]["AttachmentCount"]
    r["policy_version_doc"] = iam.get_policy_version(PolicyArn=policy["Arn"], VersionId="v1")["PolicyVersion"]["Document"]
    r["policy_again"] = attempt(lambda: iam.create_policy(PolicyName="ecr-pull", PolicyDocument=json.dumps(spec["pull"])))
    r["attach_missing"] = attempt(
        lambda: iam.attach_role_policy(RoleName="iam-puller", PolicyArn="arn:aws:iam::aws:policy/Nope")
    )
    got = iam.get_role(RoleName="iam-puller")["Role"]
    r["role"] = {k: got[k] for k in ("Arn", "Path", "RoleName", "Description", "MaxSessionDuration")}
    r["role"]["RoleId"] = got["RoleId"]
    r["role_doc"] = got["AssumeRolePolicyDocument"]
    r["roles"] = [x["RoleName"] for x in iam.get_paginator("list_roles").paginate(PaginationConfig={"PageSize": 1}).build_full_result()["Roles"]]

    def assume(token):
        return sts.assume_role_with_web_identity(
            RoleArn=r["role_arn"], RoleSessionName="boto3-iam", WebIdentityToken=token
        )["Credentials"]

    r["assume_a"] = attempt(lambda: assume(spec["team_a_token"]))
    creds = assume(spec["team_a_token"])
    keys = dict(
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    r["ecr_with_role"] = attempt(lambda: boto3.client("ecr", **keys).get_authorization_token())
    r["iam_as_role"] = attempt(lambda: boto3.client("iam", **keys).get_role(RoleName="iam-puller"))

    iam.update_assume_role_policy(RoleName="iam-puller", PolicyDocument=json.dumps(spec["trust_b"]))
    r["assume_a_after_update"] = attempt(lambda: assume(spec["team_a_token"]))
    r["assume_b_after_update"] = attempt(lambda: assume(spec["team_b_token"]))

    iam.detach_role_policy(RoleName="iam-puller", PolicyArn=policy["Arn"])
    iam.delete_role_policy(RoleName="iam-puller", PolicyName="pull")
    r["ecr_after_detach"] = attempt(lambda: boto3.client("ecr", **keys).get_authorization_token())
    r["delete_conflict"] = attempt(lambda: iam.delete_role(RoleName="irsa-seeded"))

    iam.delete_open_id_connect_provider(OpenIDConnectProviderArn=arn)
    r["assume_b_without_provider"] = attempt(lambda: assume(spec["team_b_token"]))
    iam.delete_role(RoleName="iam-puller")
    r["role_after_delete"] = attempt(lambda: iam.get_role(RoleName="iam-puller"))

    r["garbage"] = raw(url, b"\x00\xff%%%garbage&&==")
    r["unknown_action"] = raw(url, b"Action=CreateUser&Version=2010-05-08&UserName=x")
    json.dump(r, sys.stdout)


if __name__ == "__main__":
    main()
