//! Certificate credentials: instead of a secret, the app proves itself
//! with a short-lived JWT signed by the certificate's private key (RFC
//! 7523, "private_key_jwt"), which Microsoft Entra checks against the
//! certificate uploaded to the app registration.
//!
//! The JWT is signed RS256 with the header's `x5t` (SHA-1 thumbprint, the
//! form every Microsoft library accepts) and `x5t#S256` (SHA-256, the
//! newer form) naming the certificate. Signing uses aws-lc-rs, the crypto
//! library rustls already brings in for HTTPS, so no C library beyond it
//! and no OpenSSL headers are needed.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lc_rs::digest::{self, SHA1_FOR_LEGACY_USE_ONLY, SHA256};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use secrecy::SecretString;

use super::error::SourceError;

/// How long an assertion is valid. Entra accepts up to 10 minutes.
const ASSERTION_LIFETIME: Duration = Duration::from_secs(600);

/// The `client_assertion_type` form value.
pub(crate) const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A certificate and its private key, ready to sign assertions.
pub struct CertificateCredential {
    key: RsaKeyPair,
    sha1_thumbprint: String,
    sha256_thumbprint: String,
    path: PathBuf,
}

impl fmt::Debug for CertificateCredential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CertificateCredential")
            .field("path", &self.path)
            .field("x5t", &self.sha1_thumbprint)
            .finish_non_exhaustive()
    }
}

impl CertificateCredential {
    /// Reads a PEM file holding the certificate (first, if there is a
    /// chain) and its unencrypted RSA private key (PKCS#8 or PKCS#1).
    pub fn from_pem_file(path: &Path) -> Result<CertificateCredential, SourceError> {
        let pem = std::fs::read(path)
            .map_err(|e| certificate_error(path, format!("cannot read it: {e}")))?;
        Self::from_pem(&pem, path)
    }

    /// As [`CertificateCredential::from_pem_file`], from the file's
    /// contents; `path` only names the file in errors.
    pub fn from_pem(pem: &[u8], path: &Path) -> Result<CertificateCredential, SourceError> {
        let certificate = CertificateDer::pem_slice_iter(pem)
            .next()
            .ok_or_else(|| certificate_error(path, "holds no CERTIFICATE block".into()))?
            .map_err(|e| certificate_error(path, format!("bad CERTIFICATE block: {e}")))?;
        let key = PrivateKeyDer::from_pem_slice(pem).map_err(|_| {
            certificate_error(
                path,
                "holds no unencrypted private key (expected a PRIVATE KEY or RSA PRIVATE KEY block; \
                 decrypt an ENCRYPTED PRIVATE KEY with `openssl pkey`)"
                    .into(),
            )
        })?;
        let key =
            match &key {
                PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
                PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
                _ => return Err(certificate_error(
                    path,
                    "the private key is not an RSA key (Microsoft Entra takes RSA certificates)"
                        .into(),
                )),
            }
            .map_err(|e| {
                certificate_error(
                    path,
                    format!("the private key is not a usable RSA key: {e}"),
                )
            })?;
        Ok(CertificateCredential {
            key,
            sha1_thumbprint: thumbprint(&SHA1_FOR_LEGACY_USE_ONLY, &certificate),
            sha256_thumbprint: thumbprint(&SHA256, &certificate),
            path: path.to_owned(),
        })
    }

    /// A signed assertion for `client_id` addressed to the token endpoint
    /// `audience`, valid from `now` for ten minutes.
    pub fn assertion(
        &self,
        client_id: &str,
        audience: &str,
        now: SystemTime,
    ) -> Result<SecretString, SourceError> {
        let issued = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        let header = serde_json::json!({
            "alg": "RS256",
            "typ": "JWT",
            "x5t": self.sha1_thumbprint,
            "x5t#S256": self.sha256_thumbprint,
        });
        let claims = serde_json::json!({
            "aud": audience,
            "iss": client_id,
            "sub": client_id,
            "jti": random_uuid().ok_or_else(|| certificate_error(&self.path, "the system random number generator failed".into()))?,
            "nbf": issued,
            "iat": issued,
            "exp": issued + ASSERTION_LIFETIME.as_secs(),
        });
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                signing_input.as_bytes(),
                &mut signature,
            )
            .map_err(|_| {
                certificate_error(&self.path, "signing the client assertion failed".into())
            })?;
        Ok(SecretString::from(format!(
            "{signing_input}.{}",
            URL_SAFE_NO_PAD.encode(signature)
        )))
    }
}

fn certificate_error(path: &Path, message: String) -> SourceError {
    SourceError::Certificate {
        path: path.to_owned(),
        message,
    }
}

fn thumbprint(algorithm: &'static digest::Algorithm, certificate: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(algorithm, certificate))
}

/// A version 4 UUID for the assertion's `jti`, so each is used once.
fn random_uuid() -> Option<String> {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).ok()?;
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::signature::{KeyPair, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};
    use secrecy::ExposeSecret;

    use super::*;

    /// A throwaway self-signed certificate made for these tests only
    /// (`openssl req -x509 -newkey rsa:2048 -nodes`); its SHA-1 thumbprint is
    /// 3F:14:14:34:4B:A3:D0:E4:58:1C:58:2C:56:EC:6D:30:36:EE:00:A8.
    pub(super) const TEST_CERTIFICATE_PEM: &str =
        include_str!("../../tests/data/test-only-certificate.pem");

    fn decode(part: &str) -> serde_json::Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn assertion_is_a_signed_jwt_naming_the_certificate() {
        let credential =
            CertificateCredential::from_pem(TEST_CERTIFICATE_PEM.as_bytes(), Path::new("c.pem"))
                .unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let jwt = credential
            .assertion("client-1", "https://login.example/t/oauth2/v2.0/token", now)
            .unwrap();
        let parts: Vec<&str> = jwt.expose_secret().split('.').collect();
        assert_eq!(parts.len(), 3);
        let header = decode(parts[0]);
        assert_eq!(header["alg"], "RS256");
        assert_eq!(header["x5t"], "PxQUNEuj0ORYHFgsVuxtMDbuAKg");
        let claims = decode(parts[1]);
        assert_eq!(claims["aud"], "https://login.example/t/oauth2/v2.0/token");
        assert_eq!(
            (claims["iss"].as_str(), claims["sub"].as_str()),
            (Some("client-1"), Some("client-1"))
        );
        assert_eq!(claims["exp"].as_u64(), Some(1_800_000_600));
        assert_eq!(claims["jti"].as_str().map(str::len), Some(36));

        let public_key = UnparsedPublicKey::new(
            &RSA_PKCS1_2048_8192_SHA256,
            credential.key.public_key().as_ref().to_vec(),
        );
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        public_key
            .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
            .expect("signature verifies");
    }

    #[test]
    fn a_file_without_a_key_says_so() {
        let certificate_only: String = TEST_CERTIFICATE_PEM
            .split_inclusive('\n')
            .take_while(|l| !l.contains("PRIVATE KEY"))
            .collect();
        let err = CertificateCredential::from_pem(certificate_only.as_bytes(), Path::new("c.pem"))
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("certificate file c.pem: holds no unencrypted private key"),
            "{err}"
        );
        let err = CertificateCredential::from_pem(b"nothing here", Path::new("c.pem")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "certificate file c.pem: holds no CERTIFICATE block"
        );
    }
}
