//! `irsa token inspect`: what a web-identity token says, and whether it would pass verification.

use std::time::{SystemTime, UNIX_EPOCH};

use clap::{Args, Subcommand};
use irsa_core::time::{human_duration, rfc3339};
use irsa_core::token::{self, DEFAULT_LEEWAY_SECONDS, Expectations, Jwks, UnverifiedToken};
use serde_json::{Value, json};

use crate::input::read_text;
use crate::output::{Output, OutputArgs, print_json};
use crate::{Invalid, Verdict};

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Decode a service-account token and, given a JWKS, verify it as STS would.
    ///
    /// Shows the header, the claims, the expiry in human time and the service account. The raw
    /// token is never printed. With --jwks the signature is verified; with --issuer/--audience
    /// those claims are checked (iss, aud, exp, nbf and iat are always checked when any check is
    /// asked for, with a clock skew of --leeway seconds).
    /// Exits 0 when decoded and every requested check passed, 1 when a check failed, 2 on bad input.
    #[command(after_help = "Examples:\n  \
        irsa token inspect /var/run/secrets/eks.amazonaws.com/serviceaccount/token\n  \
        kubectl create token app -n prod --audience sts.amazonaws.com | irsa token inspect -\n  \
        irsa token inspect token.jwt --jwks jwks.json --issuer https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE --audience sts.amazonaws.com")]
    Inspect(InspectArgs),
}

#[derive(Debug, Args)]
pub(crate) struct InspectArgs {
    /// The token file, or `-` to read it from stdin.
    #[arg(value_name = "FILE|-")]
    token: String,
    /// JWKS to verify the signature with (the issuer's `/openid/v1/jwks` or `jwks_uri` document).
    #[arg(long, value_name = "FILE")]
    jwks: Option<String>,
    /// The issuer the token must carry in `iss`, e.g. https://oidc.eks.us-east-1.amazonaws.com/id/EXAMPLE.
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// An audience the token must carry in `aud` (STS expects sts.amazonaws.com unless configured).
    #[arg(long, value_name = "AUD")]
    audience: Vec<String>,
    /// Allowed clock skew in seconds for exp, nbf and iat.
    #[arg(long, value_name = "SECONDS", default_value_t = DEFAULT_LEEWAY_SECONDS,
          value_parser = clap::value_parser!(i64).range(0..=86_400))]
    leeway: i64,
    #[command(flatten)]
    output: OutputArgs,
}

pub(crate) fn run(cmd: Command) -> anyhow::Result<Verdict> {
    match cmd {
        Command::Inspect(args) => inspect(args),
    }
}

pub(crate) fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

fn inspect(args: InspectArgs) -> anyhow::Result<Verdict> {
    let raw = read_text(&args.token, "token")?;
    let decoded = token::decode_unverified(&raw).map_err(|e| Invalid(e.to_string()))?;
    let jwks = match &args.jwks {
        Some(path) => Some(
            Jwks::parse(read_text(path, "--jwks")?.as_bytes())
                .map_err(|e| Invalid(e.to_string()))?,
        ),
        None => None,
    };
    let now = now();
    let expect = Expectations {
        issuer: args.issuer.clone(),
        audiences: args.audience.clone(),
        now,
        leeway_seconds: args.leeway,
    };
    let asked = jwks.is_some() || args.issuer.is_some() || !args.audience.is_empty();
    let problems: Vec<String> = if !asked {
        Vec::new()
    } else if let Some(jwks) = &jwks {
        match token::verify(&raw, jwks, &expect) {
            Ok(_) => Vec::new(),
            Err(first) => {
                // verify stops at the first failure; list every claim problem too.
                let mut all = vec![first.to_string()];
                for p in token::check_claims(&decoded.claims, &expect) {
                    let p = p.to_string();
                    if !all.contains(&p) {
                        all.push(p);
                    }
                }
                all
            }
        }
    } else {
        token::check_claims(&decoded.claims, &expect)
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    let verification = Verification {
        asked,
        signature_checked: jwks.is_some(),
        problems,
    };
    let report = report(&decoded, &verification, now);
    match args.output.output {
        Output::Json => print_json(&report, false)?,
        Output::Text => print_text(&decoded, &verification, now),
    }
    Ok(if verification.problems.is_empty() {
        Verdict::Ok
    } else {
        Verdict::No
    })
}

struct Verification {
    asked: bool,
    signature_checked: bool,
    problems: Vec<String>,
}

fn report(t: &UnverifiedToken, v: &Verification, now: i64) -> Value {
    let c = &t.claims;
    json!({
        "header": t.header,
        "claims": c.raw,
        "service_account": c.service_account(),
        "issued_at": c.iat.map(rfc3339),
        "not_before": c.nbf.map(rfc3339),
        "expires_at": c.exp.map(rfc3339),
        "expires_in_seconds": c.exp.map(|e| e - now),
        "expired": c.exp.map(|e| e <= now),
        "verification": {
            "checked": v.asked,
            "signature_checked": v.signature_checked,
            "valid": if v.asked { Some(v.problems.is_empty()) } else { None },
            "problems": v.problems,
        },
    })
}

fn print_text(t: &UnverifiedToken, v: &Verification, now: i64) {
    let c = &t.claims;
    let h = &t.header;
    let opt = |s: &Option<String>| s.clone().unwrap_or_else(|| "-".to_owned());
    println!(
        "header           alg {}, kid {}, typ {}",
        h.alg,
        opt(&h.kid),
        opt(&h.typ)
    );
    println!("issuer           {}", opt(&c.iss));
    println!("subject          {}", opt(&c.sub));
    match c.service_account() {
        Some(sa) => println!("service account  {}/{}", sa.namespace, sa.name),
        None => {
            println!("service account  - (sub is not system:serviceaccount:<namespace>:<name>)")
        }
    }
    let aud = if c.aud.is_empty() {
        "-".to_owned()
    } else {
        c.aud.join(", ")
    };
    println!("audience         {aud}");
    let when = |t: i64| {
        let d = t - now;
        if d >= 0 {
            format!("{} (in {})", rfc3339(t), human_duration(d))
        } else {
            format!("{} ({} ago)", rfc3339(t), human_duration(-d))
        }
    };
    if let Some(iat) = c.iat {
        println!("issued           {}", when(iat));
    }
    if let Some(nbf) = c.nbf {
        println!("not before       {}", when(nbf));
    }
    match c.exp {
        Some(exp) if exp <= now => println!("expires          {}  EXPIRED", when(exp)),
        Some(exp) => println!("expires          {}", when(exp)),
        None => println!("expires          never (no exp claim: STS rejects such a token)"),
    }
    if let Some(k) = &c.kubernetes {
        let obj = |o: &Option<token::ObjectRef>| {
            o.as_ref().map_or_else(
                || "-".to_owned(),
                |o| match &o.uid {
                    Some(uid) => format!("{} (uid {uid})", o.name),
                    None => o.name.clone(),
                },
            )
        };
        if k.pod.is_some() {
            println!("bound to pod     {}", obj(&k.pod));
        }
        if k.node.is_some() {
            println!("bound to node    {}", obj(&k.node));
        }
        if k.secret.is_some() {
            println!("bound to secret  {}", obj(&k.secret));
        }
    }
    if !v.asked {
        println!("verification     not requested (pass --jwks, --issuer or --audience)");
    } else if v.problems.is_empty() {
        let what = if v.signature_checked {
            "signature, issuer, audience and lifetime"
        } else {
            "claims (signature not checked: pass --jwks)"
        };
        println!("verification     valid: {what}");
    } else {
        println!("verification     FAILED");
        for p in &v.problems {
            println!("  - {p}");
        }
    }
}
