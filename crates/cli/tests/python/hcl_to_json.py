"""Parse a Terraform file with python-hcl2 (a real HCL parser) and print it as JSON.

Usage: hcl_to_json.py FILE. Blocks come out as {"resource": {TYPE: {LABEL: {attr: value}}},
"output": {LABEL: {...}}}; an attribute `jsonencode({...})` is parsed again and comes out as
{"jsonencode": <the object>}, with references such as `aws_iam_role.x.arn` as "${...}" strings.
A file python-hcl2 cannot parse makes this script fail.
"""

import json
import sys

import hcl2
from hcl2.utils import SerializationOptions

OPTIONS = SerializationOptions(
    strip_string_quotes=True, explicit_blocks=False, with_comments=False
)
PREFIX, SUFFIX = "${jsonencode(", ")}"


def decode(value):
    if isinstance(value, str) and value.startswith(PREFIX) and value.endswith(SUFFIX):
        inner = value[len(PREFIX) : -len(SUFFIX)]
        return {"jsonencode": hcl2.loads("x = " + inner, serialization_options=OPTIONS)["x"]}
    if isinstance(value, dict):
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


def main():
    with open(sys.argv[1]) as f:
        parsed = hcl2.load(f, serialization_options=OPTIONS)
    out = {}
    for kind, blocks in parsed.items():
        merged = out.setdefault(kind, {})
        for block in blocks:
            for key, body in block.items():
                if kind == "resource":
                    for label, attrs in body.items():
                        if label in merged.setdefault(key, {}):
                            raise SystemExit(f"duplicate resource {key}.{label}")
                        merged[key][label] = decode(attrs)
                else:
                    merged[key] = decode(body)
    print(json.dumps(out))


main()
