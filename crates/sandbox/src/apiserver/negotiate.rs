//! Response shapes a client asks for in `Accept`: the full objects, `meta.k8s.io` Tables
//! (`kubectl get`) or metadata only (`PartialObjectMetadata`, which kube-rs's
//! `metadata_watcher` and `Api::list_metadata` use).

use std::sync::Arc;

use http::HeaderMap;
use serde_json::{Value, json};

use super::error::ApiError;

/// How objects are rendered in a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Render {
    /// The objects themselves.
    #[default]
    Full,
    /// `meta.k8s.io/v1` Tables.
    Table,
    /// `PartialObjectMetadata` (lists: `PartialObjectMetadataList`) of this
    /// `meta.k8s.io` version (`v1` or `v1beta1`).
    Metadata(MetaVersion),
}

/// The `meta.k8s.io` version a metadata-only response is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetaVersion {
    /// `meta.k8s.io/v1`.
    V1,
    /// `meta.k8s.io/v1beta1`.
    V1Beta1,
}

impl MetaVersion {
    /// The `apiVersion` field's value.
    pub fn api_version(self) -> &'static str {
        match self {
            Self::V1 => "meta.k8s.io/v1",
            Self::V1Beta1 => "meta.k8s.io/v1beta1",
        }
    }
}

/// One recognised alternative of an `Accept` header.
enum Alternative {
    Plain,
    Table,
    Partial(MetaVersion),
    PartialList(MetaVersion),
}

fn alternative(media: &str) -> Option<Alternative> {
    let mut params = media.split(';').map(str::trim);
    let _media_type = params.next()?;
    let (mut as_, mut group, mut version) = (None, None, None);
    for p in params {
        match p.split_once('=') {
            Some(("as", v)) => as_ = Some(v),
            Some(("g", v)) => group = Some(v),
            Some(("v", v)) => version = Some(v),
            _ => {}
        }
    }
    let Some(as_) = as_ else {
        return Some(Alternative::Plain);
    };
    let version = match (group, version) {
        (Some("meta.k8s.io"), Some("v1")) => MetaVersion::V1,
        (Some("meta.k8s.io"), Some("v1beta1")) => MetaVersion::V1Beta1,
        _ => return None,
    };
    match as_ {
        "Table" => Some(Alternative::Table),
        "PartialObjectMetadata" => Some(Alternative::Partial(version)),
        "PartialObjectMetadataList" => Some(Alternative::PartialList(version)),
        _ => None,
    }
}

/// Picks the rendering from `Accept`: the first alternative the server knows wins. `list`
/// says whether the response is a list (list, deletecollection); as on kube-apiserver,
/// `PartialObjectMetadataList` is only for lists and `PartialObjectMetadata` only for single
/// objects and watch events, and the other way round is `406 Not Acceptable`.
pub fn negotiate(headers: &HeaderMap, list: bool) -> Result<Render, ApiError> {
    let accept = headers
        .get_all(http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','));
    let Some(chosen) = accept.map(str::trim).find_map(alternative) else {
        // Nothing recognised (or no Accept at all): JSON, as before.
        return Ok(Render::Full);
    };
    match (chosen, list) {
        (Alternative::Plain, _) => Ok(Render::Full),
        (Alternative::Table, _) => Ok(Render::Table),
        (Alternative::Partial(v), false) | (Alternative::PartialList(v), true) => {
            Ok(Render::Metadata(v))
        }
        (Alternative::Partial(_), true) => Err(not_acceptable(
            "you requested PartialObjectMetadata, but the requested object is a list",
        )),
        (Alternative::PartialList(_), false) => Err(not_acceptable(
            "you requested PartialObjectMetadataList, but the requested object is not a list",
        )),
    }
}

fn not_acceptable(message: &str) -> ApiError {
    ApiError::new(406, "NotAcceptable", message.to_owned())
}

/// The `PartialObjectMetadata` of `obj`: its `metadata`, nothing else.
pub fn partial(obj: &Value, version: MetaVersion) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": version.api_version(),
        "metadata": obj.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// [`partial`] for every item.
pub fn partial_items(items: &[Arc<Value>], version: MetaVersion) -> Vec<Arc<Value>> {
    items
        .iter()
        .map(|o| Arc::new(partial(o, version)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(accept: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(http::header::ACCEPT, accept.parse().unwrap());
        h
    }

    #[test]
    fn accept_headers() {
        let v1 = Render::Metadata(MetaVersion::V1);
        let cases: &[(&str, bool, Result<Render, u16>)] = &[
            ("application/json", false, Ok(Render::Full)),
            ("*/*", true, Ok(Render::Full)),
            (
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                true,
                Ok(v1),
            ),
            (
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                false,
                Ok(v1),
            ),
            (
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1beta1",
                false,
                Ok(Render::Metadata(MetaVersion::V1Beta1)),
            ),
            (
                "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                true,
                Err(406),
            ),
            (
                "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1",
                false,
                Err(406),
            ),
            // kubectl get.
            (
                "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json",
                true,
                Ok(Render::Table),
            ),
            // An unknown alternative is skipped.
            (
                "application/json;as=Foo;g=example.com;v=v1, application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1",
                false,
                Ok(v1),
            ),
            (
                "application/json;as=PartialObjectMetadata;g=example.com;v=v1",
                false,
                Ok(Render::Full),
            ),
        ];
        for (accept, list, want) in cases {
            let got = negotiate(&headers(accept), *list).map_err(|e| e.code);
            assert_eq!(&got, want, "{accept} (list: {list})");
        }
        assert_eq!(negotiate(&HeaderMap::new(), true).unwrap(), Render::Full);
    }

    #[test]
    fn partial_keeps_only_metadata() {
        let obj = json!({
            "kind": "Secret", "apiVersion": "v1",
            "metadata": {"name": "s", "labels": {"a": "b"}, "resourceVersion": "7"},
            "data": {"k": "dg=="},
        });
        assert_eq!(
            partial(&obj, MetaVersion::V1),
            json!({
                "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                "metadata": {"name": "s", "labels": {"a": "b"}, "resourceVersion": "7"},
            })
        );
    }
}
