//! Labels as the index holds them, for every namespace and every Secret of irsa's: a sorted
//! boxed slice of boxed strings. A `BTreeMap<String, String>` allocates a whole B-tree node
//! (about 540 bytes) however few labels it holds; with 10,000 namespaces and 10,000 Secrets
//! those nodes were a fifth of the controller's heap. Lookups are binary searches.

use std::collections::BTreeMap;
use std::sync::Arc;

/// Something labels can be looked up in: the index's [`Labels`] and an API object's map alike.
pub trait LabelMap {
    /// The value of label `key`, if set.
    fn label(&self, key: &str) -> Option<&str>;
}

impl LabelMap for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<&str> {
        self.get(key).map(String::as_str)
    }
}

impl<T: LabelMap + ?Sized> LabelMap for Arc<T> {
    fn label(&self, key: &str) -> Option<&str> {
        (**self).label(key)
    }
}

impl<T: LabelMap + ?Sized> LabelMap for &T {
    fn label(&self, key: &str) -> Option<&str> {
        (**self).label(key)
    }
}

/// A compact, immutable-in-practice label set, sorted by key (see the [module docs](self)).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Labels(Box<[(Box<str>, Box<str>)]>);

impl Labels {
    /// Sets `key` to `value` (rebuilds the slice: for building, not for hot paths).
    pub fn insert(&mut self, key: &str, value: &str) {
        let mut pairs = std::mem::take(&mut self.0).into_vec();
        match pairs.binary_search_by(|(k, _)| (**k).cmp(key)) {
            Ok(i) => pairs[i].1 = value.into(),
            Err(i) => pairs.insert(i, (key.into(), value.into())),
        }
        self.0 = pairs.into_boxed_slice();
    }

    /// The pairs, sorted by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (&**k, &**v))
    }

    /// How many labels there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl LabelMap for Labels {
    fn label(&self, key: &str) -> Option<&str> {
        self.0
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|i| &*self.0[i].1)
    }
}

impl From<&BTreeMap<String, String>> for Labels {
    fn from(map: &BTreeMap<String, String>) -> Self {
        // A BTreeMap iterates in key order: the slice comes out sorted.
        Self(
            map.iter()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
        )
    }
}

impl From<BTreeMap<String, String>> for Labels {
    fn from(map: BTreeMap<String, String>) -> Self {
        Self::from(&map)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_agree_with_the_map_it_came_from() {
        let map: BTreeMap<String, String> = [("b", "2"), ("a", "1"), ("kubernetes.io/x", "")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let labels = Labels::from(&map);
        for key in ["a", "b", "kubernetes.io/x", "c", "", "A"] {
            assert_eq!(labels.label(key), map.label(key), "{key}");
        }
        assert_eq!(labels.len(), 3);
        let keys: Vec<&str> = labels.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, ["a", "b", "kubernetes.io/x"]);
    }

    #[test]
    fn insert_keeps_the_slice_sorted_and_replaces_a_value() {
        let mut labels = Labels::default();
        assert!(labels.is_empty());
        labels.insert("m", "1");
        labels.insert("a", "2");
        labels.insert("z", "3");
        labels.insert("m", "4");
        let pairs: Vec<(&str, &str)> = labels.iter().collect();
        assert_eq!(pairs, [("a", "2"), ("m", "4"), ("z", "3")]);
        assert_eq!(labels.label("m"), Some("4"));
    }
}
