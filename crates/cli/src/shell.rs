//! Quoting for the shell commands irsa prints for people to paste (doctor's fixes): every value
//! that goes into one, whoever wrote it (a tenant's annotation, an ARN IAM returned), goes
//! through [`sh`].

/// `s` as one POSIX shell word: bare when it is only `[A-Za-z0-9_./:=@%+,-]` (and not empty),
/// otherwise in single quotes, each `'` written as `'\''`. Nothing inside single quotes is
/// special to the shell, so `$`, `;`, `` ` ``, `*` and newlines stay literal.
pub(crate) fn sh(s: &str) -> String {
    let bare = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_./:=@%+,-".contains(c));
    if bare {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::sh;

    #[test]
    fn plain_words_stay_bare_and_everything_else_is_one_quoted_word() {
        assert_eq!(
            sh("arn:aws:iam::111122223333:role/puller"),
            "arn:aws:iam::111122223333:role/puller"
        );
        assert_eq!(
            sh("https://oidc.example.com/id/A"),
            "https://oidc.example.com/id/A"
        );
        assert_eq!(sh("a=b,c@d%e+f"), "a=b,c@d%e+f");
        assert_eq!(sh(""), "''");
        assert_eq!(sh("x;touch${IFS}pwned"), "'x;touch${IFS}pwned'");
        assert_eq!(sh("repository/*"), "'repository/*'");
        assert_eq!(sh("it's"), r"'it'\''s'");
        assert_eq!(sh("a b\nc"), "'a b\nc'");
    }

    #[test]
    fn the_shell_reads_back_the_exact_string() {
        for s in [
            "x;touch${IFS}pwned",
            "it's",
            "`id`",
            "$(id)",
            "a b",
            "*",
            "'",
            "\\",
            "-n",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf '%s' {}", sh(s)))
                .output()
                .expect("sh runs");
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s, "{}", sh(s));
        }
    }
}
