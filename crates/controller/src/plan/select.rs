//! Which namespaces a resource serves: label selectors and name globs.

use irsa_k8s::NamespaceSelection;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

use super::NamespaceState;
use crate::labels::LabelMap;

/// Whether a ClusterPullSecret's selection serves `ns`: not terminating, matching the label
/// selector (every namespace when absent), matching one `include` glob (every name when the list
/// is empty) and no `exclude` glob. Exclude wins over everything.
pub fn selects(selection: &NamespaceSelection, ns: &NamespaceState) -> bool {
    !ns.terminating
        && !selection.exclude.iter().any(|g| glob_matches(g, &ns.name))
        && (selection.include.is_empty()
            || selection.include.iter().any(|g| glob_matches(g, &ns.name)))
        && selection
            .selector
            .as_ref()
            .is_none_or(|s| selector_matches(s, &ns.labels))
}

/// Whether `labels` satisfy a label selector: every `matchLabels` pair and every
/// `matchExpressions` requirement (`In`, `NotIn`, `Exists`, `DoesNotExist`), as the API server
/// evaluates them. An empty selector matches everything; an unknown operator matches nothing
/// (validation refuses it first).
pub fn selector_matches(selector: &LabelSelector, labels: &impl LabelMap) -> bool {
    let pairs = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.label(k) == Some(v.as_str()));
    pairs
        && selector.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let value = labels.label(&e.key);
            let listed = |v: &str| values.iter().any(|x| x == v);
            match e.operator.as_str() {
                "In" => value.is_some_and(listed),
                // As in Kubernetes: a namespace without the key satisfies NotIn.
                "NotIn" => value.is_none_or(|v| !listed(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

/// Whether `name` matches `glob`, where `*` is any run of characters (also empty) and `?` exactly
/// one; everything else matches itself.
pub fn glob_matches(glob: &str, name: &str) -> bool {
    let (g, n): (Vec<char>, Vec<char>) = (glob.chars().collect(), name.chars().collect());
    // Iterative matching with one backtrack point: linear in practice, never exponential.
    let (mut gi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        match g.get(gi) {
            Some('*') => {
                star = Some((gi, ni));
                gi += 1;
            }
            Some(&c) if c == '?' || c == n[ni] => {
                gi += 1;
                ni += 1;
            }
            _ => match star {
                Some((sg, sn)) => {
                    gi = sg + 1;
                    ni = sn + 1;
                    star = Some((sg, sn + 1));
                }
                None => return false,
            },
        }
    }
    g[gi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelectorRequirement;
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn globs() {
        for (glob, name, want) in [
            ("*", "", true),
            ("*", "anything", true),
            ("team-*", "team-a", true),
            ("team-*", "team-", true),
            ("team-*", "team", false),
            ("*-prod", "shop-prod", true),
            ("*-prod", "shop-prod-2", false),
            ("t?am", "team", true),
            ("t?am", "tam", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("kube-system", "kube-system", true),
            ("kube-system", "kube-systems", false),
            ("**", "x", true),
            ("?*", "", false),
            ("", "", true),
            ("", "a", false),
        ] {
            assert_eq!(glob_matches(glob, name), want, "{glob:?} vs {name:?}");
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expr(key: &str, op: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: op.into(),
            values: (!values.is_empty()).then(|| values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn selectors() {
        let prod = labels(&[("env", "prod"), ("team", "a")]);
        let dev = labels(&[("env", "dev")]);
        let none = labels(&[]);
        let sel = |m: &[(&str, &str)], e: Vec<LabelSelectorRequirement>| LabelSelector {
            match_labels: (!m.is_empty()).then(|| labels(m)),
            match_expressions: (!e.is_empty()).then_some(e),
        };
        let cases = [
            (sel(&[], vec![]), [true, true, true]),
            (sel(&[("env", "prod")], vec![]), [true, false, false]),
            (
                sel(&[("env", "prod"), ("team", "b")], vec![]),
                [false, false, false],
            ),
            (
                sel(&[], vec![expr("env", "In", &["prod", "dev"])]),
                [true, true, false],
            ),
            (
                sel(&[], vec![expr("env", "NotIn", &["prod"])]),
                [false, true, true],
            ),
            (
                sel(&[], vec![expr("team", "Exists", &[])]),
                [true, false, false],
            ),
            (
                sel(&[], vec![expr("team", "DoesNotExist", &[])]),
                [false, true, true],
            ),
            (
                sel(&[("env", "prod")], vec![expr("team", "In", &["a"])]),
                [true, false, false],
            ),
            (
                sel(&[], vec![expr("env", "Like", &["prod"])]),
                [false, false, false],
            ),
        ];
        for (i, (s, want)) in cases.iter().enumerate() {
            let got = [&prod, &dev, &none].map(|l| selector_matches(s, l));
            assert_eq!(&got, want, "case {i}: {s:?}");
        }
    }

    #[test]
    fn selection_combines_selector_globs_and_phase() {
        let ns = |name: &str, l: &[(&str, &str)]| NamespaceState {
            name: name.into(),
            labels: labels(l).into(),
            terminating: false,
            uid: None,
        };
        let selection = NamespaceSelection {
            selector: Some(LabelSelector {
                match_expressions: Some(vec![expr("pull", "NotIn", &["off"])]),
                ..Default::default()
            }),
            include: vec!["team-*".into(), "shop".into()],
            exclude: vec!["team-secret*".into()],
        };
        let mut terminating = ns("team-c", &[]);
        terminating.terminating = true;
        for (n, want) in [
            (ns("team-a", &[]), true),
            (ns("shop", &[("pull", "on")]), true),
            (ns("team-b", &[("pull", "off")]), false),
            (ns("team-secrets", &[]), false),
            (ns("default", &[]), false),
            (terminating, false),
        ] {
            assert_eq!(selects(&selection, &n), want, "{}", n.name);
        }
        // Exclude wins even over an explicit include.
        let both = NamespaceSelection {
            include: vec!["a".into()],
            exclude: vec!["a".into()],
            ..Default::default()
        };
        assert!(!selects(&both, &ns("a", &[])));
        assert!(selects(
            &NamespaceSelection::default(),
            &ns("anything", &[])
        ));
    }

    /// A reference matcher: plain recursion over the same definition.
    fn reference(g: &[char], n: &[char]) -> bool {
        match (g.first(), n.first()) {
            (None, _) => n.is_empty(),
            (Some('*'), _) => reference(&g[1..], n) || (!n.is_empty() && reference(g, &n[1..])),
            (Some(_), None) => false,
            (Some(&c), Some(&d)) => (c == '?' || c == d) && reference(&g[1..], &n[1..]),
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_the_reference(glob in "[ab*?]{0,8}", name in "[ab]{0,10}") {
            let g: Vec<char> = glob.chars().collect();
            let n: Vec<char> = name.chars().collect();
            prop_assert_eq!(glob_matches(&glob, &name), reference(&g, &n));
        }
    }
}
