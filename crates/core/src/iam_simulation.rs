//! The answer of IAM's `SimulatePrincipalPolicy` (Query API, XML), read into one decision per
//! action and resource.
//!
//! From the IAM API Reference, "EvaluationResult" and "ResourceSpecificResult": an
//! `EvaluationResult` carries `EvalActionName`, `EvalDecision` (`allowed`, `explicitDeny` or
//! `implicitDeny`), `EvalResourceName`, `MatchedStatements` (each with a `SourcePolicyId` and
//! `SourcePolicyType`) and `PermissionsBoundaryDecisionDetail`
//! (`AllowedByPermissionsBoundary`). IAM now answers one `EvaluationResult` per action, with the
//! per-resource decisions in `ResourceSpecificResults` (`EvalResourceName`,
//! `EvalResourceDecision`, and the same details); it used to answer one per action and
//! resource. [`results`] reads both shapes.
//!
//! The answer is untrusted: every value is bounded ([`MAX_RESULTS`], [`MAX_TEXT`]) and a
//! missing required element or an unknown decision is an error naming it.

use serde::Serialize;

use crate::aws_xml::{self, Element};

/// Most (action, resource) decisions read from one answer.
pub const MAX_RESULTS: usize = 1000;
/// Longest action, resource or policy id kept (IAM's own limit for a resource is 2048).
pub const MAX_TEXT: usize = 2048;

/// `EvalDecision` / `EvalResourceDecision`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SimulatedDecision {
    /// `allowed`.
    Allowed,
    /// `explicitDeny`.
    ExplicitDeny,
    /// `implicitDeny`.
    ImplicitDeny,
}

impl SimulatedDecision {
    fn parse(text: &str) -> Option<Self> {
        match text.trim() {
            "allowed" => Some(Self::Allowed),
            "explicitDeny" => Some(Self::ExplicitDeny),
            "implicitDeny" => Some(Self::ImplicitDeny),
            _ => None,
        }
    }

    /// IAM's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Allowed => "allowed",
            Self::ExplicitDeny => "explicitDeny",
            Self::ImplicitDeny => "implicitDeny",
        }
    }
}

/// One statement that decided a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MatchedStatement {
    /// `SourcePolicyId` (an inline policy's name, a managed policy's ARN or name).
    pub source_policy_id: String,
    /// `SourcePolicyType`, when given: in the API's reference `user`, `group`, `role`,
    /// `aws-managed`, `user-managed`, `resource` or `none` (it does not tell a permissions
    /// boundary apart: `PermissionsBoundaryDecisionDetail` does). Kept as IAM wrote it.
    pub source_policy_type: Option<String>,
}

/// The decision for one action on one resource.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimulatedResult {
    /// `EvalActionName`, e.g. `ecr:BatchGetImage`.
    pub action: String,
    /// `EvalResourceName` (`*` when IAM named none).
    pub resource: String,
    /// The decision.
    pub decision: SimulatedDecision,
    /// The statements that decided it.
    pub matched: Vec<MatchedStatement>,
    /// `PermissionsBoundaryDecisionDetail.AllowedByPermissionsBoundary`, when given.
    pub allowed_by_boundary: Option<bool>,
    /// `MissingContextValues`: the context keys the policies' conditions need and the
    /// simulation was not given (the result's own, and for a resource-specific result its
    /// action's too). A decision made without them may not be the one a real request gets:
    /// IAM evaluates a condition on a missing key as not matching.
    pub missing_context: Vec<String>,
}

/// Most `MissingContextValues` read from one result.
pub const MAX_CONTEXT_KEYS: usize = 64;

fn bounded(field: &str, text: &str) -> Result<String, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("{field} is empty"));
    }
    if text.len() > MAX_TEXT {
        return Err(format!(
            "{field} is {} bytes; at most {MAX_TEXT} are read",
            text.len()
        ));
    }
    Ok(text.to_owned())
}

fn matched(el: &Element) -> Result<Vec<MatchedStatement>, String> {
    el.members("MatchedStatements")
        .map(|m| {
            Ok(MatchedStatement {
                source_policy_id: bounded(
                    "MatchedStatements: SourcePolicyId",
                    m.text_of("SourcePolicyId").unwrap_or(""),
                )?,
                source_policy_type: m
                    .text_of("SourcePolicyType")
                    .map(|t| bounded("MatchedStatements: SourcePolicyType", t))
                    .transpose()?,
            })
        })
        .collect()
}

fn missing_context(el: &Element, inherited: &[String]) -> Result<Vec<String>, String> {
    let mut out = inherited.to_vec();
    for m in el.members("MissingContextValues") {
        let key = bounded("MissingContextValues", &m.text)?;
        if !out.contains(&key) {
            out.push(key);
        }
        if out.len() > MAX_CONTEXT_KEYS {
            return Err(format!(
                "MissingContextValues: more than {MAX_CONTEXT_KEYS} keys"
            ));
        }
    }
    Ok(out)
}

fn boundary(el: &Element) -> Result<Option<bool>, String> {
    let Some(detail) = el.child("PermissionsBoundaryDecisionDetail") else {
        return Ok(None);
    };
    match detail.text_of("AllowedByPermissionsBoundary").map(str::trim) {
        None => Ok(None),
        Some("true") => Ok(Some(true)),
        Some("false") => Ok(Some(false)),
        Some(_) => Err(
            "PermissionsBoundaryDecisionDetail: AllowedByPermissionsBoundary is neither true nor false"
                .to_owned(),
        ),
    }
}

/// The decisions of a `<SimulatePrincipalPolicyResult>` element (what the Query client hands
/// back), one per action and resource, in the answer's order.
pub fn results(result: &Element) -> Result<Vec<SimulatedResult>, String> {
    let mut out = Vec::new();
    for (i, r) in result.members("EvaluationResults").enumerate() {
        let at = |m: String| format!("EvaluationResults[{i}]: {m}");
        let action =
            bounded("EvalActionName", r.text_of("EvalActionName").unwrap_or("")).map_err(at)?;
        let decision_text = r
            .text_of("EvalDecision")
            .ok_or_else(|| at("no EvalDecision".to_owned()))?;
        let decision = SimulatedDecision::parse(decision_text).ok_or_else(|| {
            at("EvalDecision is none of allowed, explicitDeny, implicitDeny".to_owned())
        })?;
        let per_resource: Vec<&Element> = r.members("ResourceSpecificResults").collect();
        let top_missing = missing_context(r, &[]).map_err(at)?;
        if per_resource.is_empty() {
            let resource = match r.text_of("EvalResourceName") {
                Some(name) => bounded("EvalResourceName", name).map_err(at)?,
                None => "*".to_owned(),
            };
            out.push(SimulatedResult {
                action,
                resource,
                decision,
                matched: matched(r).map_err(at)?,
                allowed_by_boundary: boundary(r).map_err(at)?,
                missing_context: top_missing,
            });
        } else {
            for (j, s) in per_resource.into_iter().enumerate() {
                let at =
                    |m: String| format!("EvaluationResults[{i}].ResourceSpecificResults[{j}]: {m}");
                let resource = bounded(
                    "EvalResourceName",
                    s.text_of("EvalResourceName").unwrap_or(""),
                )
                .map_err(at)?;
                let decision = s
                    .text_of("EvalResourceDecision")
                    .ok_or_else(|| at("no EvalResourceDecision".to_owned()))
                    .and_then(|t| {
                        SimulatedDecision::parse(t).ok_or_else(|| {
                            at("EvalResourceDecision is none of allowed, explicitDeny, implicitDeny"
                                .to_owned())
                        })
                    })?;
                out.push(SimulatedResult {
                    action: action.clone(),
                    resource,
                    decision,
                    matched: matched(s).map_err(at)?,
                    allowed_by_boundary: boundary(s).map_err(at)?,
                    missing_context: missing_context(s, &top_missing).map_err(at)?,
                });
                if out.len() > MAX_RESULTS {
                    break;
                }
            }
        }
        if out.len() > MAX_RESULTS {
            return Err(format!("more than {MAX_RESULTS} results"));
        }
    }
    Ok(out)
}

/// A whole `SimulatePrincipalPolicyResponse` document: its decisions, and the `Marker` of the
/// next page when `IsTruncated` is true.
pub fn parse_response(text: &str) -> Result<(Vec<SimulatedResult>, Option<String>), String> {
    let root = aws_xml::parse(text).map_err(|e| e.to_string())?;
    if let Some((code, _)) = aws_xml::query_error(&root) {
        return Err(format!(
            "the answer is an error ({})",
            code.unwrap_or("no code")
        ));
    }
    let result = root
        .child("SimulatePrincipalPolicyResult")
        .ok_or("the answer holds no SimulatePrincipalPolicyResult")?;
    let marker = match result.text_of("IsTruncated").map(str::trim) {
        Some("true") => Some(bounded("Marker", result.text_of("Marker").unwrap_or(""))?),
        _ => None,
    };
    Ok((results(result)?, marker))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(members: &str) -> String {
        format!(
            "<SimulatePrincipalPolicyResponse xmlns=\"https://iam.amazonaws.com/doc/2010-05-08/\"><SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated><EvaluationResults>{members}</EvaluationResults></SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>r</RequestId></ResponseMetadata></SimulatePrincipalPolicyResponse>"
        )
    }

    // The shape of the IAM API Reference's SimulatePrincipalPolicy example (one result per
    // action and resource, EvalResourceName on the result).
    #[test]
    fn the_per_resource_shape_of_the_api_reference() {
        let text = wrap(
            "<member><MatchedStatements><member><SourcePolicyId>PolicyInputList.1</SourcePolicyId><SourcePolicyType>IAM Policy</SourcePolicyType><StartPosition><Line>1</Line><Column>1</Column></StartPosition></member></MatchedStatements><MissingContextValues/><EvalResourceName>arn:aws:s3:::teambucket</EvalResourceName><EvalDecision>allowed</EvalDecision><EvalActionName>s3:ListBucket</EvalActionName></member>\
             <member><MatchedStatements/><EvalResourceName>*</EvalResourceName><EvalDecision>implicitDeny</EvalDecision><EvalActionName>ecr:GetAuthorizationToken</EvalActionName><PermissionsBoundaryDecisionDetail><AllowedByPermissionsBoundary>false</AllowedByPermissionsBoundary></PermissionsBoundaryDecisionDetail></member>",
        );
        let (r, marker) = parse_response(&text).unwrap();
        assert_eq!(marker, None);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].action, "s3:ListBucket");
        assert_eq!(r[0].resource, "arn:aws:s3:::teambucket");
        assert_eq!(r[0].decision, SimulatedDecision::Allowed);
        assert_eq!(r[0].matched[0].source_policy_id, "PolicyInputList.1");
        assert_eq!(
            r[0].matched[0].source_policy_type.as_deref(),
            Some("IAM Policy")
        );
        assert_eq!(r[0].allowed_by_boundary, None);
        assert_eq!(r[1].decision, SimulatedDecision::ImplicitDeny);
        assert_eq!(r[1].allowed_by_boundary, Some(false));
    }

    // The current shape: one result per action, the decisions per resource inside.
    #[test]
    fn resource_specific_results_give_one_decision_per_resource() {
        let text = wrap(
            "<member><EvalActionName>ecr:BatchGetImage</EvalActionName><EvalDecision>explicitDeny</EvalDecision><ResourceSpecificResults>\
             <member><EvalResourceName>arn:aws:ecr:us-east-1:111122223333:repository/app</EvalResourceName><EvalResourceDecision>allowed</EvalResourceDecision><MatchedStatements><member><SourcePolicyId>pull</SourcePolicyId></member></MatchedStatements></member>\
             <member><EvalResourceName>arn:aws:ecr:us-east-1:111122223333:repository/secret</EvalResourceName><EvalResourceDecision>explicitDeny</EvalResourceDecision><PermissionsBoundaryDecisionDetail><AllowedByPermissionsBoundary>true</AllowedByPermissionsBoundary></PermissionsBoundaryDecisionDetail></member>\
             </ResourceSpecificResults></member>",
        );
        let (r, _) = parse_response(&text).unwrap();
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|x| x.action == "ecr:BatchGetImage"));
        assert_eq!(r[0].decision, SimulatedDecision::Allowed);
        assert_eq!(r[0].matched[0].source_policy_id, "pull");
        assert_eq!(r[1].decision, SimulatedDecision::ExplicitDeny);
        assert!(r[1].resource.ends_with("repository/secret"));
        assert_eq!(r[1].allowed_by_boundary, Some(true));
    }

    // Review M2: a Deny conditioned on a key the simulation was not given does not apply, so
    // the simulator says "allowed" and names the key in MissingContextValues (IAM API
    // Reference, "EvaluationResult": at the top level when the resource is `*`, inside
    // ResourceSpecificResults otherwise).
    #[test]
    fn missing_context_values_are_read_at_the_top_and_per_resource() {
        let text = wrap(
            "<member><EvalActionName>ecr:GetAuthorizationToken</EvalActionName><EvalDecision>allowed</EvalDecision><EvalResourceName>*</EvalResourceName><MissingContextValues><member>aws:SourceVpce</member><member>aws:SourceVpce</member></MissingContextValues></member>\
             <member><EvalActionName>ecr:BatchGetImage</EvalActionName><EvalDecision>allowed</EvalDecision><MissingContextValues><member>aws:PrincipalTag/team</member></MissingContextValues><ResourceSpecificResults>\
             <member><EvalResourceName>arn:aws:ecr:us-east-1:111122223333:repository/app</EvalResourceName><EvalResourceDecision>allowed</EvalResourceDecision><MissingContextValues><member>ecr:ResourceTag/x</member></MissingContextValues></member>\
             <member><EvalResourceName>arn:aws:ecr:us-east-1:111122223333:repository/b</EvalResourceName><EvalResourceDecision>allowed</EvalResourceDecision><MissingContextValues/></member>\
             </ResourceSpecificResults></member>\
             <member><EvalActionName>ecr:X</EvalActionName><EvalDecision>allowed</EvalDecision><MissingContextValues/></member>",
        );
        let (r, _) = parse_response(&text).unwrap();
        assert_eq!(r[0].missing_context, ["aws:SourceVpce"]);
        assert_eq!(
            r[1].missing_context,
            ["aws:PrincipalTag/team", "ecr:ResourceTag/x"]
        );
        assert_eq!(r[2].missing_context, ["aws:PrincipalTag/team"]);
        assert!(r[3].missing_context.is_empty());
        let many = format!(
            "<member><EvalActionName>ecr:X</EvalActionName><EvalDecision>allowed</EvalDecision><MissingContextValues>{}</MissingContextValues></member>",
            (0..=MAX_CONTEXT_KEYS)
                .map(|i| format!("<member>k{i}</member>"))
                .collect::<String>()
        );
        assert!(
            parse_response(&wrap(&many))
                .unwrap_err()
                .contains("more than 64")
        );
        let empty = "<member><EvalActionName>ecr:X</EvalActionName><EvalDecision>allowed</EvalDecision><MissingContextValues><member></member></MissingContextValues></member>";
        assert!(
            parse_response(&wrap(empty))
                .unwrap_err()
                .contains("MissingContextValues is empty")
        );
    }

    #[test]
    fn a_truncated_page_hands_back_its_marker() {
        let text = "<SimulatePrincipalPolicyResponse><SimulatePrincipalPolicyResult><IsTruncated>true</IsTruncated><Marker>m2</Marker><EvaluationResults/></SimulatePrincipalPolicyResult></SimulatePrincipalPolicyResponse>";
        assert_eq!(parse_response(text).unwrap(), (vec![], Some("m2".into())));
        let no_marker = text.replace("<Marker>m2</Marker>", "");
        assert!(parse_response(&no_marker).unwrap_err().contains("Marker"));
    }

    #[test]
    fn malformed_answers_are_errors_naming_what_is_wrong() {
        for (text, want) in [
            ("<SimulatePrincipalPolicyResponse><SimulatePrincipalPolicyResult>".to_owned(), "well-formed"),
            ("not xml at all".to_owned(), "XML"),
            ("<Other/>".to_owned(), "no SimulatePrincipalPolicyResult"),
            (
                "<ErrorResponse><Error><Code>AccessDenied</Code><Message>m</Message></Error></ErrorResponse>".to_owned(),
                "AccessDenied",
            ),
            (wrap("<member><EvalDecision>allowed</EvalDecision></member>"), "EvaluationResults[0]: EvalActionName is empty"),
            (wrap("<member><EvalActionName>ecr:X</EvalActionName></member>"), "no EvalDecision"),
            (wrap("<member><EvalActionName>ecr:X</EvalActionName><EvalDecision>Allowed</EvalDecision></member>"), "EvalDecision is none of"),
            (
                wrap("<member><EvalActionName>ecr:X</EvalActionName><EvalDecision>allowed</EvalDecision><ResourceSpecificResults><member><EvalResourceName>r</EvalResourceName></member></ResourceSpecificResults></member>"),
                "ResourceSpecificResults[0]: no EvalResourceDecision",
            ),
            (
                wrap("<member><EvalActionName>ecr:X</EvalActionName><EvalDecision>allowed</EvalDecision><PermissionsBoundaryDecisionDetail><AllowedByPermissionsBoundary>yes</AllowedByPermissionsBoundary></PermissionsBoundaryDecisionDetail></member>"),
                "AllowedByPermissionsBoundary",
            ),
            (
                wrap("<member><EvalActionName>ecr:X</EvalActionName><EvalDecision>allowed</EvalDecision><MatchedStatements><member/></MatchedStatements></member>"),
                "SourcePolicyId is empty",
            ),
            (
                wrap(&format!("<member><EvalActionName>{}</EvalActionName><EvalDecision>allowed</EvalDecision></member>", "a".repeat(MAX_TEXT + 1))),
                "at most 2048",
            ),
        ] {
            let e = parse_response(&text).unwrap_err();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn more_results_than_the_bound_are_refused() {
        let one = "<member><EvalActionName>ecr:X</EvalActionName><EvalDecision>allowed</EvalDecision></member>";
        let text = wrap(&one.repeat(MAX_RESULTS + 1));
        assert!(
            parse_response(&text)
                .unwrap_err()
                .contains("more than 1000")
        );
        assert_eq!(parse_response(&wrap(&one.repeat(3))).unwrap().0.len(), 3);
    }

    use proptest::prelude::*;

    proptest! {
        /// Answers made of the pieces real ones (and broken ones) hold: never a panic, and
        /// what parses keeps the bounds.
        #[test]
        fn pieces_of_answers_never_panic(pieces in proptest::collection::vec(
            prop::sample::select(vec![
                "<SimulatePrincipalPolicyResponse>", "</SimulatePrincipalPolicyResponse>",
                "<SimulatePrincipalPolicyResult>", "</SimulatePrincipalPolicyResult>",
                "<EvaluationResults>", "</EvaluationResults>", "<member>", "</member>",
                "<EvalActionName>ecr:X</EvalActionName>", "<EvalDecision>allowed</EvalDecision>",
                "<EvalDecision>implicitDeny</EvalDecision>", "<EvalResourceName>r</EvalResourceName>",
                "<ResourceSpecificResults>", "</ResourceSpecificResults>",
                "<EvalResourceDecision>explicitDeny</EvalResourceDecision>",
                "<MatchedStatements>", "</MatchedStatements>", "<SourcePolicyId>p</SourcePolicyId>",
                "<PermissionsBoundaryDecisionDetail><AllowedByPermissionsBoundary>false</AllowedByPermissionsBoundary></PermissionsBoundaryDecisionDetail>",
                "<IsTruncated>true</IsTruncated>", "<Marker>m</Marker>", " ", "&amp;", "<", "é",
                "<MissingContextValues>", "</MissingContextValues>", "<member>aws:SourceVpce</member>",
            ]),
            0..40,
        )) {
            let text: String = pieces.concat();
            if let Ok((results, marker)) = parse_response(&text) {
                prop_assert!(results.len() <= MAX_RESULTS);
                for r in &results {
                    prop_assert!(!r.action.is_empty() && !r.resource.is_empty());
                }
                prop_assert!(marker.is_none_or(|m| !m.is_empty()));
            }
        }
    }
}
