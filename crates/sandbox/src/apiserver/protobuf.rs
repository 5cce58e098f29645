//! Just enough of Kubernetes' protobuf encoding to read the request bodies kubectl's typed
//! clients send (`kubectl create namespace|secret|configmap|serviceaccount|token`):
//! the `k8s\0` envelope, `ObjectMeta`'s common fields, and the few kinds irsa's users create
//! imperatively. Responses are always JSON (clients accept it).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value, json};

/// A field of a protobuf message: number and value.
#[derive(Debug, Clone, PartialEq)]
enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
}

fn varint(buf: &[u8], pos: &mut usize) -> Result<u64, String> {
    let mut out = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *buf.get(*pos).ok_or("truncated varint")?;
        *pos += 1;
        out |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(out);
        }
    }
    Err("varint too long".into())
}

fn fields(buf: &[u8]) -> Result<Vec<(u64, Field<'_>)>, String> {
    let mut pos = 0;
    let mut out = Vec::new();
    while pos < buf.len() {
        let key = varint(buf, &mut pos)?;
        let (num, wire) = (key >> 3, key & 7);
        let field = match wire {
            0 => Field::Varint(varint(buf, &mut pos)?),
            1 => {
                pos += 8;
                continue;
            }
            2 => {
                let len = usize::try_from(varint(buf, &mut pos)?).map_err(|_| "length overflow")?;
                let end = pos
                    .checked_add(len)
                    .filter(|e| *e <= buf.len())
                    .ok_or("truncated field")?;
                let bytes = &buf[pos..end];
                pos = end;
                Field::Bytes(bytes)
            }
            5 => {
                pos += 4;
                continue;
            }
            other => return Err(format!("unsupported wire type {other}")),
        };
        out.push((num, field));
    }
    if pos > buf.len() {
        return Err("truncated message".into());
    }
    Ok(out)
}

fn string(f: &Field<'_>) -> Result<String, String> {
    match f {
        Field::Bytes(b) => String::from_utf8(b.to_vec()).map_err(|_| "invalid UTF-8".into()),
        Field::Varint(_) => Err("expected a string".into()),
    }
}

fn bytes<'a>(f: &Field<'a>) -> Result<&'a [u8], String> {
    match f {
        Field::Bytes(b) => Ok(b),
        Field::Varint(_) => Err("expected bytes".into()),
    }
}

fn map_entry(f: &Field<'_>, binary: bool) -> Result<(String, Value), String> {
    let mut key = String::new();
    let mut value = Value::String(String::new());
    for (n, v) in fields(bytes(f)?)? {
        match n {
            1 => key = string(&v)?,
            2 if binary => value = json!(STANDARD.encode(bytes(&v)?)),
            2 => value = json!(string(&v)?),
            _ => {}
        }
    }
    Ok((key, value))
}

fn insert_map(obj: &mut Map<String, Value>, key: &str, entry: (String, Value)) {
    let m = obj.entry(key).or_insert_with(|| json!({}));
    if let Some(m) = m.as_object_mut() {
        m.insert(entry.0, entry.1);
    }
}

/// Go's encoder writes empty strings; JSON clients omit them.
fn insert_nonempty(obj: &mut Map<String, Value>, key: &str, value: String) {
    if !value.is_empty() {
        obj.insert(key.into(), json!(value));
    }
}

fn object_meta(buf: &[u8]) -> Result<Value, String> {
    let mut meta = Map::new();
    for (n, f) in fields(buf)? {
        match n {
            1 => insert_nonempty(&mut meta, "name", string(&f)?),
            2 => insert_nonempty(&mut meta, "generateName", string(&f)?),
            3 => insert_nonempty(&mut meta, "namespace", string(&f)?),
            6 => insert_nonempty(&mut meta, "resourceVersion", string(&f)?),
            11 => insert_map(&mut meta, "labels", map_entry(&f, false)?),
            12 => insert_map(&mut meta, "annotations", map_entry(&f, false)?),
            14 => {
                let list = meta.entry("finalizers").or_insert_with(|| json!([]));
                if let Some(l) = list.as_array_mut() {
                    l.push(json!(string(&f)?));
                }
            }
            _ => {}
        }
    }
    Ok(Value::Object(meta))
}

fn body(kind: &str, raw: &[u8]) -> Result<Value, String> {
    let mut obj = Map::new();
    for (n, f) in fields(raw)? {
        if n == 1 {
            obj.insert("metadata".into(), object_meta(bytes(&f)?)?);
            continue;
        }
        match (kind, n) {
            ("Secret", 2) => insert_map(&mut obj, "data", map_entry(&f, true)?),
            ("Secret", 3) => insert_nonempty(&mut obj, "type", string(&f)?),
            ("Secret", 4) => insert_map(&mut obj, "stringData", map_entry(&f, false)?),
            ("ConfigMap", 2) => insert_map(&mut obj, "data", map_entry(&f, false)?),
            ("ConfigMap", 3) => insert_map(&mut obj, "binaryData", map_entry(&f, true)?),
            ("ServiceAccount", 3) => {
                let mut name = String::new();
                for (m, v) in fields(bytes(&f)?)? {
                    if m == 1 {
                        name = string(&v)?;
                    }
                }
                let list = obj.entry("imagePullSecrets").or_insert_with(|| json!([]));
                if let Some(l) = list.as_array_mut() {
                    l.push(json!({"name": name}));
                }
            }
            ("TokenRequest", 2) => {
                let mut spec = Map::new();
                for (m, v) in fields(bytes(&f)?)? {
                    match (m, &v) {
                        (1, _) => {
                            let list = spec.entry("audiences").or_insert_with(|| json!([]));
                            if let Some(l) = list.as_array_mut() {
                                l.push(json!(string(&v)?));
                            }
                        }
                        (4, Field::Varint(secs)) => {
                            spec.insert("expirationSeconds".into(), json!(*secs as i64));
                        }
                        (3, _) => {
                            let mut r = Map::new();
                            for (k, rv) in fields(bytes(&v)?)? {
                                let key = match k {
                                    1 => "kind",
                                    2 => "apiVersion",
                                    3 => "name",
                                    4 => "uid",
                                    _ => continue,
                                };
                                r.insert(key.into(), json!(string(&rv)?));
                            }
                            spec.insert("boundObjectRef".into(), Value::Object(r));
                        }
                        _ => {}
                    }
                }
                obj.insert("spec".into(), Value::Object(spec));
            }
            ("Namespace" | "ServiceAccount" | "Secret" | "ConfigMap" | "TokenRequest", _) => {}
            (other, _) => {
                return Err(format!(
                    "protobuf bodies of kind {other} are not supported; send JSON"
                ));
            }
        }
    }
    Ok(Value::Object(obj))
}

/// Decodes a `k8s\0`-enveloped protobuf body into the JSON object it encodes.
pub fn decode(envelope: &[u8]) -> Result<Value, String> {
    let unknown = envelope
        .strip_prefix(b"k8s\0")
        .ok_or("missing the k8s protobuf envelope")?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (n, f) in fields(unknown)? {
        match n {
            1 => {
                for (m, v) in fields(bytes(&f)?)? {
                    match m {
                        1 => api_version = string(&v)?,
                        2 => kind = string(&v)?,
                        _ => {}
                    }
                }
            }
            2 => raw = bytes(&f)?,
            _ => {}
        }
    }
    let mut obj = body(&kind, raw)?;
    obj["apiVersion"] = json!(api_version);
    obj["kind"] = json!(kind);
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(n: u64, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![(n << 3 | 2) as u8, payload.len() as u8];
        out.extend_from_slice(payload);
        out
    }

    fn entry(k: &str, v: &[u8]) -> Vec<u8> {
        [field(1, k.as_bytes()), field(2, v)].concat()
    }

    fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
        let type_meta = [field(1, api_version.as_bytes()), field(2, kind.as_bytes())].concat();
        [b"k8s\0".to_vec(), field(1, &type_meta), field(2, raw)].concat()
    }

    #[test]
    fn decodes_a_secret() {
        let meta = [
            field(1, b"creds"),
            field(3, b"demo"),
            field(11, &entry("app", b"irsa")),
        ]
        .concat();
        let raw = [
            field(1, &meta),
            field(2, &entry("user", b"AWS")),
            field(3, b"Opaque"),
        ]
        .concat();
        let got = decode(&envelope("v1", "Secret", &raw)).unwrap();
        assert_eq!(
            got,
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                "metadata": {"name": "creds", "namespace": "demo", "labels": {"app": "irsa"}},
                "data": {"user": "QVdT"}})
        );
    }

    #[test]
    fn decodes_a_token_request() {
        let spec = [field(1, b"sts.amazonaws.com"), vec![4 << 3, 0x90, 0x1c]].concat();
        let raw = [field(1, &[]), field(2, &spec)].concat();
        let got = decode(&envelope("authentication.k8s.io/v1", "TokenRequest", &raw)).unwrap();
        assert_eq!(
            got["spec"],
            json!({"audiences": ["sts.amazonaws.com"], "expirationSeconds": 3600})
        );
    }

    #[test]
    fn rejects_garbage() {
        for bad in [&b"nope"[..], b"k8s\0\x0a\x05ab", b"k8s\0\x0f"] {
            assert!(decode(bad).is_err(), "{bad:?}");
        }
        let pod = envelope("v1", "Pod", &field(2, b"x"));
        assert!(decode(&pod).is_err());
    }
}
