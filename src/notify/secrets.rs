//! Reading a channel's secrets (SMTP password, webhook URL and signing
//! key) from the environment or a file, at delivery time. Errors name the
//! variable or file, never the value.

use std::path::Path;

use secrecy::SecretString;

/// The secret in environment variable `env` or in `file`; `None` when
/// neither is configured.
pub(crate) fn read_secret(
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, String> {
    if let Some(name) = env {
        return match std::env::var(name) {
            Ok(value) if !value.is_empty() => Ok(Some(value.into())),
            Ok(_) => Err(format!("environment variable {name} is empty")),
            Err(std::env::VarError::NotPresent) => {
                Err(format!("environment variable {name} is not set"))
            }
            Err(std::env::VarError::NotUnicode(_)) => {
                Err(format!("environment variable {name} is not valid UTF-8"))
            }
        };
    }
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let value = text.trim_end_matches(['\r', '\n']);
        if value.is_empty() {
            return Err(format!("{} is empty", path.display()));
        }
        return Ok(Some(value.to_owned().into()));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn reads_a_file_without_its_trailing_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        std::fs::write(&path, "s3cret\n").unwrap();
        assert_eq!(
            read_secret(None, Some(&path))
                .unwrap()
                .unwrap()
                .expose_secret(),
            "s3cret"
        );
    }

    #[test]
    fn a_missing_variable_is_named_and_nothing_configured_is_none() {
        let err = read_secret(Some("GROUPWARDEN_TEST_SURELY_UNSET_VARIABLE"), None).unwrap_err();
        assert_eq!(
            err,
            "environment variable GROUPWARDEN_TEST_SURELY_UNSET_VARIABLE is not set"
        );
        assert!(read_secret(None, None).unwrap().is_none());
    }
}
