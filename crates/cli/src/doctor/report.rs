//! The checks doctor ran, as a tree for people (✓ ✗ –) and as JSON for scripts. Pure: building
//! and rendering a report does no I/O, so its shape is unit-tested.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::{Map, Value};

use super::fix::Change;

/// Where a check looks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Group {
    /// The cluster: service account, issuer, token.
    Kubernetes,
    /// The AWS account, read with the caller's credentials.
    Aws,
    /// The real calls a workload makes: AssumeRoleWithWebIdentity, GetAuthorizationToken.
    Exchange,
    /// Files given on the command line (offline mode).
    Files,
}

impl Group {
    fn title(self) -> &'static str {
        match self {
            Group::Kubernetes => "Kubernetes",
            Group::Aws => "AWS (read with your credentials)",
            Group::Exchange => "Exchange (what the workload does)",
            Group::Files => "Files",
        }
    }
}

/// How a check ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Status {
    /// The link holds.
    Pass,
    /// The link is broken: this is what to fix.
    Fail,
    /// The check could not run (an API refused or was unreachable): says why.
    Error,
    /// Not run because a link it needs failed or was skipped.
    Skip,
}

impl Status {
    fn mark(&self) -> &'static str {
        match self {
            Status::Pass => "✓",
            Status::Fail | Status::Error => "✗",
            Status::Skip => "–",
        }
    }
}

/// What fixes a failing check: commands to run and, when it is a policy, the document itself.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Fix {
    /// One sentence: what to change.
    pub summary: String,
    /// Shell commands, in order.
    pub commands: Vec<String>,
    /// A policy document or object to apply, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<Value>,
    /// The change `irsa doctor --fix` makes for it, as data, when it can make one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub change: Option<Change>,
}

impl Fix {
    pub(crate) fn new(summary: impl Into<String>) -> Self {
        Self {
            summary: summary.into(),
            commands: Vec::new(),
            document: None,
            change: None,
        }
    }

    pub(crate) fn command(mut self, command: impl Into<String>) -> Self {
        self.commands.push(command.into());
        self
    }

    pub(crate) fn document(mut self, document: Value) -> Self {
        self.document = Some(document);
        self
    }

    pub(crate) fn change(mut self, change: Change) -> Self {
        self.change = Some(change);
        self
    }
}

/// One check: a link of the chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Check {
    /// Stable id (`service-account`, `trust-policy`, …).
    pub id: &'static str,
    /// Where it looks.
    pub group: Group,
    /// Pass, fail, error, skip.
    pub status: Status,
    /// One line: what was found (or, for a skip, what it needs).
    pub summary: String,
    /// Further lines for people: claims, statements, expected against actual.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub details: Vec<String>,
    /// What the chain needs here, when it did not find it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<Value>,
    /// What it found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<Value>,
    /// Facts for scripts (claims, ARNs, keys).
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub data: Map<String, Value>,
    /// The checks it needs, which must pass for it to run.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub requires: Vec<&'static str>,
    /// How to fix it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<Fix>,
}

impl Check {
    fn new(id: &'static str, group: Group, status: Status, summary: impl Into<String>) -> Self {
        Self {
            id,
            group,
            status,
            summary: summary.into(),
            details: Vec::new(),
            expected: None,
            actual: None,
            data: Map::new(),
            requires: Vec::new(),
            fix: None,
        }
    }

    pub(crate) fn pass(id: &'static str, group: Group, summary: impl Into<String>) -> Self {
        Self::new(id, group, Status::Pass, summary)
    }

    pub(crate) fn fail(id: &'static str, group: Group, summary: impl Into<String>) -> Self {
        Self::new(id, group, Status::Fail, summary)
    }

    /// The check ran but could not decide (what it needed is not in what it can read):
    /// `summary` says what it could not examine.
    pub(crate) fn skip(id: &'static str, group: Group, summary: impl Into<String>) -> Self {
        Self::new(id, group, Status::Skip, summary)
    }

    /// The check could not run: `summary` says which call failed and why.
    pub(crate) fn error(id: &'static str, group: Group, summary: impl Into<String>) -> Self {
        Self::new(id, group, Status::Error, summary)
    }

    pub(crate) fn detail(mut self, line: impl Into<String>) -> Self {
        self.details.push(line.into());
        self
    }

    pub(crate) fn details(mut self, lines: impl IntoIterator<Item = String>) -> Self {
        self.details.extend(lines);
        self
    }

    pub(crate) fn expected_actual(mut self, expected: Value, actual: Value) -> Self {
        self.expected = Some(expected);
        self.actual = Some(actual);
        self
    }

    pub(crate) fn data(mut self, key: &str, value: Value) -> Self {
        self.data.insert(key.to_owned(), value);
        self
    }

    pub(crate) fn fix(mut self, fix: Fix) -> Self {
        self.fix = Some(fix);
        self
    }

    pub(crate) fn passed(&self) -> bool {
        self.status == Status::Pass
    }

    /// Attaches `change` to the check's fix (creating one from the change's summary).
    pub(crate) fn with_change(mut self, change: Change) -> Self {
        let fix = self
            .fix
            .take()
            .unwrap_or_else(|| Fix::new(change.summary.clone()));
        self.fix = Some(fix.change(change));
        self
    }
}

/// Receives each check as it starts and ends (live progress on a terminal).
pub(crate) trait Progress {
    fn started(&mut self, id: &'static str);
    fn finished(&mut self, check: &Check);
}

/// No progress output.
pub(crate) struct Quiet;

impl Progress for Quiet {
    fn started(&mut self, _: &'static str) {}
    fn finished(&mut self, _: &Check) {}
}

/// The checks of one run, in chain order.
pub(crate) struct Report {
    /// What was examined (`service account ci/builder`, `files`).
    pub target: String,
    pub checks: Vec<Check>,
    progress: Box<dyn Progress>,
}

impl Report {
    pub(crate) fn new(target: impl Into<String>, progress: Box<dyn Progress>) -> Self {
        Self {
            target: target.into(),
            checks: Vec::new(),
            progress,
        }
    }

    /// The required checks that did not pass (empty: the check may run).
    fn blocked_by(&self, requires: &[&'static str]) -> Vec<&'static str> {
        requires
            .iter()
            .copied()
            .filter(|r| !self.checks.iter().any(|c| c.id == *r && c.passed()))
            .collect()
    }

    /// Whether every check in `requires` passed; if not, records `id` as skipped and returns
    /// false. Call before running a check; then [`Report::record`] its result.
    pub(crate) fn ready(
        &mut self,
        id: &'static str,
        group: Group,
        requires: &[&'static str],
    ) -> bool {
        let blocked = self.blocked_by(requires);
        if blocked.is_empty() {
            self.progress.started(id);
            return true;
        }
        let mut check = Check::new(
            id,
            group,
            Status::Skip,
            format!("skipped: needs {}", blocked.join(", ")),
        );
        check.requires = requires.to_vec();
        self.progress.finished(&check);
        self.checks.push(check);
        false
    }

    /// Records a check that ran (after [`Report::ready`] said it could).
    pub(crate) fn record(&mut self, mut check: Check, requires: &[&'static str]) -> bool {
        check.requires = requires.to_vec();
        let passed = check.passed();
        self.progress.finished(&check);
        self.checks.push(check);
        passed
    }

    /// The first check that failed or could not run.
    pub(crate) fn first_failure(&self) -> Option<&Check> {
        self.checks
            .iter()
            .find(|c| matches!(c.status, Status::Fail | Status::Error))
    }

    pub(crate) fn ok(&self) -> bool {
        self.first_failure().is_none()
    }

    /// The changes `--fix` would make: those of the checks that failed, in chain order.
    pub(crate) fn plan(&self) -> Vec<(&'static str, Change)> {
        self.checks
            .iter()
            .filter(|c| matches!(c.status, Status::Fail | Status::Error))
            .filter_map(|c| Some((c.id, c.fix.as_ref()?.change.clone()?)))
            .collect()
    }

    /// The JSON report: stable field names.
    pub(crate) fn to_json(&self) -> Value {
        let count = |s: Status| self.checks.iter().filter(|c| c.status == s).count();
        serde_json::json!({
            "target": self.target,
            "ok": self.ok(),
            "first_failure": self.first_failure().map(|c| c.id),
            "counts": {
                "pass": count(Status::Pass),
                "fail": count(Status::Fail),
                "error": count(Status::Error),
                "skip": count(Status::Skip),
            },
            "checks": self.checks,
        })
    }

    /// The tree for people.
    pub(crate) fn to_text(&self) -> String {
        let mut out = format!("irsa doctor: {}\n", printable(&self.target));
        let width = self.checks.iter().map(|c| c.id.len()).max().unwrap_or(0);
        let mut group = None;
        for c in &self.checks {
            if group != Some(c.group) {
                group = Some(c.group);
                let _ = writeln!(out, "{}", c.group.title());
            }
            let _ = writeln!(
                out,
                "  {} {:width$}  {}",
                c.status.mark(),
                c.id,
                printable(&c.summary)
            );
            let indent = " ".repeat(width + 6);
            for line in &c.details {
                let _ = writeln!(out, "{indent}{}", printable(line));
            }
            if let (Some(expected), Some(actual)) = (&c.expected, &c.actual) {
                let _ = writeln!(out, "{indent}expected: {}", compact(expected));
                let _ = writeln!(out, "{indent}actual:   {}", compact(actual));
            }
            if let Some(fix) = &c.fix {
                let _ = writeln!(out, "{indent}fix: {}", printable(&fix.summary));
                for cmd in &fix.commands {
                    let _ = writeln!(out, "{indent}  $ {}", printable(cmd));
                }
                if let Some(doc) = &fix.document {
                    let pretty = serde_json::to_string_pretty(doc).unwrap_or_default();
                    for line in pretty.lines() {
                        let _ = writeln!(out, "{indent}  {}", printable(line));
                    }
                }
                if let Some(change) = &fix.change {
                    let _ = writeln!(
                        out,
                        "{indent}irsa doctor --fix makes this change ({}){}",
                        change.permission,
                        if change.confirm.is_some() {
                            ", once the role's name is confirmed"
                        } else {
                            ""
                        }
                    );
                }
            }
        }
        match self.first_failure() {
            None => {
                let _ = writeln!(out, "\nall {} checks passed", self.checks.len());
            }
            Some(first) => {
                let broken: Vec<&str> = self
                    .checks
                    .iter()
                    .filter(|c| matches!(c.status, Status::Fail | Status::Error))
                    .map(|c| c.id)
                    .collect();
                let what = if first.status == Status::Error {
                    "could not be checked"
                } else {
                    "is broken"
                };
                let _ = writeln!(
                    out,
                    "\nthe first link that {what}: {} ({} of {} checks failed: {})",
                    first.id,
                    broken.len(),
                    self.checks.len(),
                    broken.join(", ")
                );
            }
        }
        out
    }
}

fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => printable(s),
        // `to_string` escapes C0 inside strings, not C1 or the format characters.
        other => printable(&other.to_string()),
    }
}

/// Characters that change how the text around them looks without being seen: control
/// characters (Cc: ESC, CR, BEL, C1, even a newline), the bidirectional marks, embeddings,
/// overrides and isolates, zero-width characters, the line and paragraph separators and other
/// format characters (Cf, Zl, Zp). A Trojan-Source style U+202E in a tenant's value would
/// reorder what is shown for approval.
pub(crate) fn is_invisible(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{ad}'
                | '\u{600}'..='\u{605}'
                | '\u{61c}'
                | '\u{6dd}'
                | '\u{70f}'
                | '\u{180e}'
                | '\u{200b}'..='\u{200f}'
                | '\u{2028}'..='\u{202e}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206f}'
                | '\u{feff}'
                | '\u{fff9}'..='\u{fffb}'
                | '\u{110bd}'
                | '\u{1d173}'..='\u{1d17a}'
                | '\u{e0001}'
                | '\u{e0020}'..='\u{e007f}'
        )
}

/// `s` with every invisible character ([`is_invisible`]) written as its Rust escape
/// (`\u{1b}`, `\r`, `\u{202e}`): much of what the report shows was written by a tenant
/// (annotations, pod env values, pull-secret keys), and a raw ESC or CR could repaint the
/// terminal, e.g. a forged ✓ line over a ✗.
pub(crate) fn printable(s: &str) -> String {
    if !s.chars().any(is_invisible) {
        return s.to_owned();
    }
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_debug().to_string()
            } else if is_invisible(c) {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// `s` cut to `max` characters, with `…` when cut: a tenant-written value is shown bounded.
pub(crate) fn cut_to(s: &str, max: usize) -> String {
    let mut chars = s.chars();
    let head: String = chars.by_ref().take(max).collect();
    if chars.next().is_some() {
        format!("{head}…")
    } else {
        head
    }
}

/// Live progress on a terminal's stderr: the check running now, overwritten in place.
pub(crate) struct Terminal;

impl Progress for Terminal {
    fn started(&mut self, id: &'static str) {
        eprint!("\r\x1b[2Kchecking {id}…");
    }
    fn finished(&mut self, check: &Check) {
        eprint!("\r\x1b[2K{} {}", check.status.mark(), check.id);
        if !check.passed() {
            eprintln!();
        }
    }
}

impl Drop for Terminal {
    fn drop(&mut self) {
        eprint!("\r\x1b[2K");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> Report {
        let mut r = Report::new("service account ci/builder", Box::new(Quiet));
        assert!(r.ready("service-account", Group::Kubernetes, &[]));
        r.record(
            Check::pass("service-account", Group::Kubernetes, "ci/builder exists"),
            &[],
        );
        assert!(r.ready("role-annotation", Group::Kubernetes, &["service-account"]));
        r.record(
            Check::fail(
                "role-annotation",
                Group::Kubernetes,
                "no role-arn annotation",
            )
            .fix(Fix::new("annotate it").command("kubectl annotate …")),
            &["service-account"],
        );
        assert!(!r.ready("role", Group::Aws, &["role-annotation"]));
        assert!(!r.ready("assume-role", Group::Exchange, &["role", "service-account"]));
        r
    }

    #[test]
    fn control_characters_from_the_cluster_never_reach_the_text_raw() {
        let mut r = Report::new("service account ci/b\u{1b}[2J", Box::new(Quiet));
        assert!(r.ready("pull-secrets", Group::Kubernetes, &[]));
        r.record(
            Check::fail("pull-secrets", Group::Kubernetes, "secret a\rb")
                .detail("registry \u{1b}[1A✓ forged\u{7}")
                .expected_actual(serde_json::json!("x"), serde_json::json!("y\u{1b}"))
                .fix(Fix::new("fix \u{9b}it").command("kubectl get \u{1b}x")),
            &[],
        );
        let text = r.to_text();
        assert!(
            !text.chars().any(|c| c.is_control() && c != '\n'),
            "{text:?}"
        );
        assert!(
            text.contains("a\\rb") && text.contains("\\u{1b}[1A"),
            "{text}"
        );
    }

    #[test]
    fn bidi_overrides_zero_width_and_c1_in_json_values_are_escaped() {
        let mut r = Report::new("service account ci/builder", Box::new(Quiet));
        assert!(r.ready("oidc-audience", Group::Aws, &[]));
        r.record(
            Check::fail(
                "oidc-audience",
                Group::Aws,
                "add sts\u{202e}moc.evil\u{202c} to it",
            )
            .detail("zero\u{200b}width\u{2028}line\u{feff}")
            .expected_actual(
                serde_json::json!(["a\u{9b}b", "c\u{2066}d"]),
                serde_json::json!({"k": "\u{85}"}),
            ),
            &[],
        );
        let text = r.to_text();
        for c in [
            '\u{202e}', '\u{202c}', '\u{200b}', '\u{2028}', '\u{feff}', '\u{9b}', '\u{2066}',
            '\u{85}',
        ] {
            assert!(!text.contains(c), "{c:?} raw in {text:?}");
        }
        assert!(text.contains("sts\\u{202e}moc.evil\\u{202c}"), "{text}");
        // Ordinary text outside ASCII is left as it is.
        assert_eq!(printable("café ✓ 東京"), "café ✓ 東京");
    }

    #[test]
    fn a_check_whose_requirement_failed_is_skipped_naming_it() {
        let r = report();
        assert_eq!(r.first_failure().map(|c| c.id), Some("role-annotation"));
        let role = &r.checks[2];
        assert_eq!(role.status, Status::Skip);
        assert_eq!(role.summary, "skipped: needs role-annotation");
        // A skipped requirement blocks too, and only the ones that did not pass are named.
        assert_eq!(r.checks[3].summary, "skipped: needs role");
    }

    #[test]
    fn text_is_a_tree_with_marks_and_fixes() {
        let text = report().to_text();
        assert!(
            text.contains("Kubernetes\n  ✓ service-account  ci/builder exists"),
            "{text}"
        );
        assert!(
            text.contains("  ✗ role-annotation  no role-arn annotation"),
            "{text}"
        );
        assert!(text.contains("fix: annotate it\n"), "{text}");
        assert!(text.contains("$ kubectl annotate …"), "{text}");
        assert!(
            text.contains("  – role             skipped: needs role-annotation"),
            "{text}"
        );
        assert!(
            text.contains("the first link that is broken: role-annotation (1 of 4 checks failed"),
            "{text}"
        );
    }

    #[test]
    fn json_carries_status_requirements_and_fixes_as_data() {
        let json = report().to_json();
        assert_eq!(json["ok"], false);
        assert_eq!(json["first_failure"], "role-annotation");
        assert_eq!(json["counts"]["skip"], 2);
        assert_eq!(json["checks"][1]["status"], "fail");
        assert_eq!(
            json["checks"][1]["fix"]["commands"][0],
            "kubectl annotate …"
        );
        assert_eq!(json["checks"][2]["requires"][0], "role-annotation");
        assert_eq!(json["checks"][0]["group"], "kubernetes");
    }
}
