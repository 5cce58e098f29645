//! Reading a file argument (or `-` for stdin) with a size limit, so no input can exhaust memory.

use std::io::Read;

use anyhow::Context;

use crate::Invalid;

/// Largest file any command reads: far above any real token, policy or JWKS.
const MAX_INPUT_BYTES: u64 = 1024 * 1024;

/// Reads `path` (or stdin for `-`) as UTF-8. `what` names the flag in errors: "--trust-policy".
pub(crate) fn read_text(path: &str, what: &str) -> anyhow::Result<String> {
    let mut bytes = Vec::new();
    if path == "-" {
        std::io::stdin()
            .take(MAX_INPUT_BYTES + 1)
            .read_to_end(&mut bytes)
            .with_context(|| format!("failed to read {what} from stdin"))?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_INPUT_BYTES + 1).read_to_end(&mut bytes))
            .map_err(|e| Invalid(format!("cannot read {what} file {path:?}: {e}")))?;
    }
    if bytes.len() as u64 > MAX_INPUT_BYTES {
        return Err(Invalid(format!(
            "{what} {path:?} is larger than {MAX_INPUT_BYTES} bytes; pass the token, policy or JWKS file itself"
        ))
        .into());
    }
    String::from_utf8(bytes)
        .map_err(|_| Invalid(format!("{what} {path:?} is not UTF-8 text")).into())
}

/// `--chainguard-identity` (or `IRSA_CHAINGUARD_IDENTITY`): blank is unset; anything else must
/// have the shape `chainctl iam identities create` prints, the rule the CRDs and the credential
/// provider's annotation follow too.
pub(crate) fn chainguard_identity(id: Option<&str>) -> anyhow::Result<Option<String>> {
    match id.map(str::trim).filter(|id| !id.is_empty()) {
        Some(id) => {
            irsa_core::chainguard::validate_identity(id)
                .map_err(|e| Invalid(format!("--chainguard-identity: {e}")))?;
            Ok(Some(id.to_owned()))
        }
        None => Ok(None),
    }
}
