//! The record, on a ServiceAccount, of the `imagePullSecrets` entries irsa added
//! ([`ADDED_PULL_SECRETS_ANNOTATION`]): JSON mapping each owner (`ClusterPullSecret/x`,
//! `PullSecret/ns/x`) to the secret names it added, so that irsa removes only its own entries.
//! The annotation is tenant-editable: anything unreadable is no record at all.

use std::collections::{BTreeMap, BTreeSet};

/// Annotation on a ServiceAccount: the `imagePullSecrets` entries irsa added, per owner, as a
/// JSON object (`{"ClusterPullSecret/ecr": ["regcred"]}`). irsa removes only entries recorded
/// here, never one a person added. Tenants may edit it: it is parsed defensively (anything
/// unreadable counts as no record), and at worst names entries on that tenant's own
/// service account.
pub const ADDED_PULL_SECRETS_ANNOTATION: &str = "irsa.dev/added-pull-secrets";

/// Entries irsa added to one ServiceAccount's `imagePullSecrets`: owner (`ClusterPullSecret/x`,
/// `PullSecret/ns/x`) to secret names.
pub type AddedPullSecrets = BTreeMap<String, BTreeSet<String>>;

/// Reads [`ADDED_PULL_SECRETS_ANNOTATION`]; anything but an object of string arrays is no
/// record at all (tenant-editable input). Owners with no names are dropped.
pub fn parse_added_pull_secrets(value: &str) -> AddedPullSecrets {
    serde_json::from_str::<AddedPullSecrets>(value)
        .map(|mut added| {
            added.retain(|_, names| !names.is_empty());
            added
        })
        .unwrap_or_default()
}

/// The value of [`ADDED_PULL_SECRETS_ANNOTATION`] for `added`; [`parse_added_pull_secrets`]
/// reads it back to `added` (less any owner with no names).
pub fn render_added_pull_secrets(added: &AddedPullSecrets) -> String {
    // Serialising a map of strings to sets of strings cannot fail.
    serde_json::to_string(added).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_record_of_added_entries_is_parsed_defensively() {
        let owner = "ClusterPullSecret/ecr";
        for (value, want) in [
            (r#"{"ClusterPullSecret/ecr": ["a", "b"]}"#, vec!["a", "b"]),
            (
                r#"{"ClusterPullSecret/ecr": ["b", "a", "a"]}"#,
                vec!["a", "b"],
            ),
            (r#"{"ClusterPullSecret/ecr": []}"#, vec![]),
            (r#"{"ClusterPullSecret/ecr": "a"}"#, vec![]),
            (r#"{"ClusterPullSecret/ecr": [1]}"#, vec![]),
            (r#"{"ClusterPullSecret/ecr": null}"#, vec![]),
            (r#"["a"]"#, vec![]),
            ("null", vec![]),
            ("not json", vec![]),
            ("", vec![]),
        ] {
            let added = parse_added_pull_secrets(value);
            let got: Vec<&str> = added
                .get(owner)
                .into_iter()
                .flatten()
                .map(String::as_str)
                .collect();
            assert_eq!(got, want, "{value}");
            assert!(added.values().all(|n| !n.is_empty()), "{value}");
        }
    }

    #[test]
    fn a_rendered_record_reads_back() {
        let added = AddedPullSecrets::from([
            (
                "ClusterPullSecret/ecr".to_owned(),
                BTreeSet::from(["ecr-pull".to_owned()]),
            ),
            (
                "PullSecret/ns/x".to_owned(),
                BTreeSet::from(["a\"b".to_owned(), "c".to_owned()]),
            ),
        ]);
        let text = render_added_pull_secrets(&added);
        assert_eq!(
            text,
            r#"{"ClusterPullSecret/ecr":["ecr-pull"],"PullSecret/ns/x":["a\"b","c"]}"#
        );
        assert_eq!(parse_added_pull_secrets(&text), added);
    }

    proptest! {
        /// The record is tenant-editable: any text parses (to no record or a record) without panic.
        #[test]
        fn any_record_text_parses_without_panicking(value in ".{0,200}") {
            let added = parse_added_pull_secrets(&value);
            prop_assert!(added.values().all(|n| !n.is_empty()));
        }

        /// parse(render(x)) == x for every record without empty owners.
        #[test]
        fn a_record_round_trips(
            added in proptest::collection::btree_map(
                ".{0,30}",
                proptest::collection::btree_set(".{0,20}", 1..4),
                0..4,
            ),
        ) {
            prop_assert_eq!(parse_added_pull_secrets(&render_added_pull_secrets(&added)), added);
        }
    }
}
