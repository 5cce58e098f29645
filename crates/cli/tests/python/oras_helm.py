"""A Helm chart as an OCI artifact, pushed to and pulled from a registry with oras-py (PyPI
`oras`), a real OCI registry client: it follows the registry's 401 challenge to the token service
with HTTP Basic credentials, as Argo CD and Helm do.

Usage (credentials as JSON {"username": …, "password": …} on stdin, never in argv):
  python oras_helm.py push REGISTRY REPOSITORY TAG DESCRIPTION
  python oras_helm.py pull REGISTRY REPOSITORY TAG
REGISTRY is HOST:PORT, spoken to over plain HTTP (the sandbox registry on loopback).
Prints one JSON object: {"ok": true, …} (exit 0) or {"ok": false, "error": …} (exit 1).
The password is never printed.
"""
import io
import json
import os
import sys
import tarfile
import tempfile

import oras.provider

CONFIG_MEDIA_TYPE = "application/vnd.cncf.helm.config.v1+json"
CHART_MEDIA_TYPE = "application/vnd.cncf.helm.chart.content.v1.tar+gzip"


# oras-py retries a refused request 5 times, sleeping 3 to 83 s between tries: a refusal is
# what these tests expect, so each request is sent without that decorator.
_send = oras.provider.Registry.do_request.__wrapped__


class OneTry(oras.provider.Registry):
    def do_request(self, *args, **kwargs):
        response = _send(self, *args, **kwargs)
        if response.status_code == 401 and self.auth.token is not None:
            # oras-py keeps the first token (a HEAD's pull scope) and resends it where the
            # registry asks for more (the upload's push): ask the token service again for the
            # scope this challenge names, as oras-go, Helm and Argo CD do.
            self.auth.token = None
            response = _send(self, *args, **kwargs)
        return response


def chart_files(name, version, description):
    chart_yaml = (
        f"apiVersion: v2\nname: {name}\nversion: {version}\n"
        f"description: {description}\ntype: application\n"
    ).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"{name}/Chart.yaml")
        info.size = len(chart_yaml)
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(chart_yaml))
    config = json.dumps(
        {"apiVersion": "v2", "name": name, "version": version, "description": description}
    ).encode()
    return buf.getvalue(), config


def client(credentials):
    registry = OneTry(insecure=True)
    registry.auth.set_basic_auth(credentials["username"], credentials["password"])
    return registry


def push(registry, repository, tag, description, credentials):
    name = repository.rsplit("/", 1)[-1]
    chart, config = chart_files(name, tag, description)
    with tempfile.TemporaryDirectory() as work:
        # oras-py pushes only files below the working directory.
        os.chdir(work)
        with open(f"{name}-{tag}.tgz", "wb") as f:
            f.write(chart)
        with open("config.json", "wb") as f:
            f.write(config)
        response = client(credentials).push(
            target=f"{registry}/{repository}:{tag}",
            files=[f"{name}-{tag}.tgz:{CHART_MEDIA_TYPE}"],
            manifest_config=f"config.json:{CONFIG_MEDIA_TYPE}",
            quiet=True,
        )
        return {"ok": True, "status": response.status_code}


def pull(registry, repository, tag, credentials):
    target = f"{registry}/{repository}:{tag}"
    reg = client(credentials)
    manifest = reg.get_manifest(target)
    with tempfile.TemporaryDirectory() as out:
        files = reg.pull(target=target, outdir=out)
        charts = [f for f in files if f.endswith(".tgz")]
        if len(charts) != 1:
            return {"ok": False, "error": f"pulled {files}, not one chart"}
        with tarfile.open(charts[0], "r:gz") as tar:
            chart_yaml = tar.extractfile(tar.getmember(f"{repository.rsplit('/', 1)[-1]}/Chart.yaml"))
            text = chart_yaml.read().decode()
    return {
        "ok": True,
        "configMediaType": manifest["config"]["mediaType"],
        "layerMediaTypes": [layer["mediaType"] for layer in manifest["layers"]],
        "chartYaml": text,
    }


def main():
    credentials = json.load(sys.stdin)
    op, args = sys.argv[1], sys.argv[2:]
    try:
        if op == "push":
            result = push(*args, credentials)
        elif op == "pull":
            result = pull(*args, credentials)
        else:
            result = {"ok": False, "error": f"unknown operation {op}"}
    except Exception as e:  # noqa: BLE001 - the refusal is the answer
        message = str(e).replace(credentials["password"], "<password>")
        result = {"ok": False, "error": f"{type(e).__name__}: {message}"}
    print(json.dumps(result))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
