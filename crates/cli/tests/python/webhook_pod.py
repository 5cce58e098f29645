"""The official Python `kubernetes` client creates pods through the sandbox while `irsa webhook`
runs as `irsa install --webhook` deploys it, and reads the mutated pods back.

Usage: python webhook_pod.py READYZ_URL CA_FILE ROLE_ARN   (KUBECONFIG points at the sandbox)
Prints "OK <check>" per check and "ALL OK"; exits non-zero on the first failure.
"""
import ssl
import sys
import time
import urllib.request

from kubernetes import client, config


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name} {detail}", flush=True)
        sys.exit(1)
    print(f"OK {name}", flush=True)


def wait_ready(url, ca_file, deadline_s=30):
    # The CA from the Secret `irsa webhook certs` wrote; the name is the Service's, not 127.0.0.1.
    ctx = ssl.create_default_context(cafile=ca_file)
    ctx.check_hostname = False
    deadline = time.monotonic() + deadline_s
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, context=ctx, timeout=2) as r:
                if r.status == 200:
                    return
        except Exception as e:  # not listening or not synced yet
            last = e
        time.sleep(0.05)
    check("webhook ready", False, f"{url}: {last}")


def main():
    url, ca_file, role = sys.argv[1:4]
    wait_ready(url, ca_file)
    check("webhook ready", True)
    config.load_kube_config()
    core = client.CoreV1Api()
    ns = "team"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(
        metadata=client.V1ObjectMeta(name="app", annotations={"eks.amazonaws.com/role-arn": role})))

    def pod(name, labels=None):
        return client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, labels=labels),
            spec=client.V1PodSpec(service_account_name="app", containers=[
                client.V1Container(name="app", image="busybox",
                                   env=[client.V1EnvVar(name="KEEP", value="1")])]))

    created = core.create_namespaced_pod(ns, pod("app"))
    read = core.read_namespaced_pod("app", ns)
    for p, how in ((created, "create answer"), (read, "read back")):
        env = {e.name: e.value for e in p.spec.containers[0].env}
        check(f"{how}: AWS_ROLE_ARN", env.get("AWS_ROLE_ARN") == role, str(env))
        check(f"{how}: token file", env.get("AWS_WEB_IDENTITY_TOKEN_FILE")
              == "/var/run/secrets/eks.amazonaws.com/serviceaccount/token", str(env))
        check(f"{how}: own env kept", env.get("KEEP") == "1", str(env))
        mounts = {m.name: m for m in p.spec.containers[0].volume_mounts or []}
        check(f"{how}: token mount", "aws-iam-token" in mounts and mounts["aws-iam-token"].read_only,
              str(mounts))
        vols = {v.name: v for v in p.spec.volumes or []}
        token = vols["aws-iam-token"].projected.sources[0].service_account_token
        check(f"{how}: projected token", token.audience == "sts.amazonaws.com"
              and token.expiration_seconds == 86400 and token.path == "token", str(token))

    # The configuration's objectSelector keeps labelled pods away from the webhook.
    skipped = core.create_namespaced_pod(
        ns, pod("skipped", {"eks.amazonaws.com/skip-pod-identity-webhook": "true"}))
    env = {e.name for e in skipped.spec.containers[0].env}
    check("skip label: unchanged", env == {"KEEP"}, str(env))
    print("ALL OK", flush=True)


main()
