"""The official Python `kubernetes` client against the sandbox API server.

Usage: python k8s_client.py <admin-url-unused>   (KUBECONFIG points at the sandbox)
Prints "OK <check>" per check; exits non-zero on the first failure.
"""
import base64
import json
import sys

import jwt
import kubernetes
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def check(name, cond, detail=""):
    if not cond:
        print(f"FAIL {name} {detail}", flush=True)
        sys.exit(1)
    print(f"OK {name}", flush=True)


def expect_status(name, code, fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except ApiException as e:
        check(name, e.status == code, f"got {e.status}: {e.body}")
        return e
    check(name, False, "no error")


def raw(api_client, method, path, body=None, auth=True):
    """A request outside the generated API (admin and OIDC endpoints)."""
    headers = {"Content-Type": "application/json"} if body is not None else None
    m, url, hdrs, b, post = api_client.param_serialize(
        method, path, header_params=headers, body=body,
        auth_settings=["BearerToken"] if auth else [])
    resp = api_client.call_api(m, url, hdrs, b, post)
    resp.read()
    if "json" in (resp.getheader("content-type") or ""):
        return resp.status, json.loads(resp.data or b"null")
    return resp.status, resp.data.decode()


def main():
    config.load_kube_config()
    core = client.CoreV1Api()
    coord = client.CoordinationV1Api()
    auth_api = client.AuthenticationV1Api()
    ns = "py"

    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    check("namespace active", core.read_namespace(ns).status.phase == "Active")

    # CRUD and conflicts.
    s = core.create_namespaced_secret(ns, client.V1Secret(
        metadata=client.V1ObjectMeta(name="creds", labels={"app": "irsa"}),
        string_data={"user": "AWS"}))
    check("secret stringData folded into data", base64.b64decode(s.data["user"]) == b"AWS")
    e = expect_status("create twice is 409", 409, core.create_namespaced_secret, ns,
                      client.V1Secret(metadata=client.V1ObjectMeta(name="creds")))
    check("AlreadyExists reason", '"reason":"AlreadyExists"' in e.body.replace(" ", ""), e.body)
    s.metadata.labels["v"] = "1"
    fresh = core.replace_namespaced_secret("creds", ns, s)
    check("replace bumps resourceVersion", fresh.metadata.resource_version != s.metadata.resource_version)
    s.metadata.labels["v"] = "2"
    e = expect_status("stale replace is 409", 409, core.replace_namespaced_secret, "creds", ns, s)
    check("Conflict reason", '"reason":"Conflict"' in e.body.replace(" ", ""), e.body)
    expect_status("missing is 404", 404, core.read_namespaced_secret, "nope", ns)

    patched = core.patch_namespaced_secret("creds", ns, {"metadata": {"annotations": {"a": "b"}}})
    check("strategic merge patch", patched.metadata.annotations == {"a": "b"})

    # Selectors and pagination.
    for i in range(9):
        core.create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"cm{i}", labels={"n": str(i % 3)}), data={"i": str(i)}))
    check("label selector", len(core.list_namespaced_config_map(ns, label_selector="n=1").items) == 3)
    check("set selector", len(core.list_namespaced_config_map(ns, label_selector="n in (0,2)").items) == 6)
    check("field selector",
          [c.metadata.name for c in core.list_namespaced_config_map(ns, field_selector="metadata.name=cm4").items] == ["cm4"])
    names, token, pages = [], None, 0
    while pages < 20:
        page = core.list_namespaced_config_map(ns, limit=4, _continue=token)
        names += [c.metadata.name for c in page.items]
        pages += 1
        token = page.metadata._continue
        if not token:
            break
    check("pagination", names == [f"cm{i}" for i in range(9)] and pages == 3, f"{names} {pages}")

    # Watch: events after a resourceVersion, clean end on timeout.
    rv = core.list_namespaced_config_map(ns).metadata.resource_version
    core.patch_namespaced_config_map("cm0", ns, {"data": {"i": "changed"}})
    core.delete_namespaced_config_map("cm1", ns)
    w = watch.Watch()
    seen = [(ev["type"], ev["object"].metadata.name)
            for ev in w.stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=1)]
    check("watch from resourceVersion", seen == [("MODIFIED", "cm0"), ("DELETED", "cm1")], str(seen))

    # 410 Gone for a compacted version.
    admin = client.ApiClient()
    raw(admin, "POST", "/sandbox/compact")
    try:
        for _ in watch.Watch().stream(core.list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=1):
            pass
        check("410 on a compacted resourceVersion", False, "no error")
    except ApiException as e:
        check("410 on a compacted resourceVersion", e.status == 410, str(e.status))

    # Leases.
    lease = coord.create_namespaced_lease(ns, client.V1Lease(
        metadata=client.V1ObjectMeta(name="leader"), spec=client.V1LeaseSpec(holder_identity="a")))
    lease.spec.holder_identity = "b"
    check("lease update", coord.replace_namespaced_lease("leader", ns, lease).spec.holder_identity == "b")

    # TokenRequest, verified with PyJWT against the published JWKS.
    core.create_namespaced_service_account(ns, client.V1ServiceAccount(metadata=client.V1ObjectMeta(name="puller")))
    tr = core.create_namespaced_service_account_token("puller", ns, client.AuthenticationV1TokenRequest(
        spec=client.V1TokenRequestSpec(audiences=["sts.amazonaws.com"], expiration_seconds=3600)))
    token = tr.status.token
    host = client.Configuration.get_default_copy().host
    _, disco = raw(admin, "GET", "/.well-known/openid-configuration", auth=False)
    check("openid configuration", disco["issuer"] == host, str(disco))
    _, jwks = raw(admin, "GET", "/openid/v1/jwks", auth=False)
    kid = jwt.get_unverified_header(token)["kid"]
    key = next(jwt.PyJWK(k) for k in jwks["keys"] if k["kid"] == kid)
    claims = jwt.decode(token, key.key, algorithms=["RS256"], audience="sts.amazonaws.com", issuer=host)
    check("token subject", claims["sub"] == f"system:serviceaccount:{ns}:puller", str(claims))
    check("token claims", claims["kubernetes.io"]["namespace"] == ns and claims["exp"] - claims["iat"] == 3600)

    # Unauthenticated requests get 401.
    anon_cfg = client.Configuration.get_default_copy()
    anon_cfg.api_key = {}
    anon = client.CoreV1Api(client.ApiClient(anon_cfg))
    expect_status("no token is 401", 401, anon.list_namespace)

    # Throttling through the admin endpoint: 429 with Retry-After, which urllib3 honours
    # by retrying; then a 500 it does not retry.
    raw(admin, "PUT", "/sandbox/faults",
        body={"errors": [{"verb": "list", "resource": "pods", "code": 429, "retryAfterSeconds": 1, "count": 1}]})
    check("429 retried after Retry-After", core.list_namespaced_pod(ns).items == [])
    _, metrics = raw(admin, "GET", "/metrics")
    check("429 counted", 'action="list pods",outcome="429"} 1' in metrics, metrics)
    raw(admin, "PUT", "/sandbox/faults",
        body={"errors": [{"verb": "create", "resource": "configmaps", "code": 500, "count": 1}]})
    expect_status("injected 500", 500, core.create_namespaced_config_map, ns,
                  client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
    raw(admin, "DELETE", "/sandbox/faults")

    # Namespace deletion removes its objects.
    core.delete_namespace(ns)
    expect_status("namespace gone", 404, core.read_namespace, ns)
    expect_status("its secrets gone", 404, core.read_namespaced_secret, "creds", ns)
    print("ALL OK", kubernetes.__version__)


if __name__ == "__main__":
    main()
