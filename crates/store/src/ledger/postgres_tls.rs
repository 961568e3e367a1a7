//! TLS to the PostgreSQL ledger, chosen by the database URL as libpq chooses
//! it: `sslmode=disable | prefer | require | verify-ca | verify-full` and
//! `sslrootcert=PATH` (PEM). The `postgres` crate itself knows only
//! disable/prefer/require and leaves verification to the connector, so this
//! module takes both parameters out of the URL and builds the connector
//! (rustls with the ring provider: no system OpenSSL to install).
//!
//! | sslmode       | encrypted            | certificate checked                        |
//! |---------------|----------------------|--------------------------------------------|
//! | `disable`     | never                | —                                          |
//! | `prefer` (default) | if the server offers it | no (as libpq)                    |
//! | `require`     | always, or no session | no; chain against `sslrootcert` if given (as libpq) |
//! | `verify-ca`   | always               | chain against `sslrootcert`                 |
//! | `verify-full` | always               | chain against `sslrootcert` and host name   |

use super::LedgerError;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use tokio_postgres_rustls::MakeRustlsConnect;

/// Most certificates read from one `sslrootcert` file.
const MAX_ROOT_CERTIFICATES: usize = 1_000;

/// How sessions to the database are protected (libpq's `sslmode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    fn parse(value: &str) -> Result<TlsMode, String> {
        Ok(match value {
            "disable" => TlsMode::Disable,
            "prefer" => TlsMode::Prefer,
            "require" => TlsMode::Require,
            "verify-ca" => TlsMode::VerifyCa,
            "verify-full" => TlsMode::VerifyFull,
            "allow" => return Err("`sslmode=allow` is not supported; use `prefer` or `disable`".into()),
            other => {
                return Err(format!(
                    "`sslmode={}` is not a TLS mode; use disable, prefer, require, verify-ca or verify-full",
                    other.escape_debug()
                ))
            }
        })
    }

    /// What the `postgres` crate is told: whether TLS is attempted and
    /// whether it is mandatory. Verification is the connector's business.
    pub fn wire_mode(self) -> &'static str {
        match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require | TlsMode::VerifyCa | TlsMode::VerifyFull => "require",
        }
    }
}

impl fmt::Display for TlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TlsMode::Disable => "disable",
            TlsMode::Prefer => "prefer",
            TlsMode::Require => "require",
            TlsMode::VerifyCa => "verify-ca",
            TlsMode::VerifyFull => "verify-full",
        })
    }
}

/// The TLS part of a database URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: TlsMode,
    pub root_cert: Option<PathBuf>,
}

impl TlsSettings {
    /// Takes `sslmode` and `sslrootcert` out of the URL's query parameters
    /// (`params`, already split on `&`); returns the settings and the
    /// parameters left for the `postgres` crate. `decode` undoes URL escapes.
    pub fn take_from(params: Vec<&str>, decode: impl Fn(&str) -> String) -> Result<(TlsSettings, Vec<String>), String> {
        let mut mode = TlsMode::Prefer;
        let mut root_cert = None;
        let mut kept = Vec::new();
        for param in params {
            if let Some(value) = param.strip_prefix("sslmode=") {
                mode = TlsMode::parse(&decode(value))?;
            } else if let Some(value) = param.strip_prefix("sslrootcert=") {
                let value = decode(value);
                if value == "system" {
                    return Err("`sslrootcert=system` is not supported; name a PEM file of trusted roots".into());
                }
                root_cert = Some(PathBuf::from(value));
            } else {
                kept.push(param.to_owned());
            }
        }
        if matches!(mode, TlsMode::VerifyCa | TlsMode::VerifyFull) && root_cert.is_none() {
            return Err(format!(
                "`sslmode={mode}` checks the server's certificate against trusted roots: \
                 add `sslrootcert=/path/to/root.crt` (PEM) to the URL"
            ));
        }
        if mode == TlsMode::Disable && root_cert.is_some() {
            return Err("`sslrootcert` is given but `sslmode=disable` turns TLS off; drop one of them".into());
        }
        kept.push(format!("sslmode={}", mode.wire_mode()));
        Ok((TlsSettings { mode, root_cert }, kept))
    }

    /// The connector for these settings; `None` for `disable`.
    pub fn connector(&self) -> Result<Option<MakeRustlsConnect>, LedgerError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        if self.mode == TlsMode::Disable {
            return Ok(None);
        }
        let chain = match &self.root_cert {
            None => None,
            Some(path) => {
                let roots = Arc::new(self.read_roots(path)?);
                let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                    .build()
                    .map_err(|e| self.refuse(format!("cannot use the roots in {}: {e}", path.display())))?;
                Some(webpki)
            }
        };
        assert!(
            chain.is_some() || !matches!(self.mode, TlsMode::VerifyCa | TlsMode::VerifyFull),
            "take_from requires sslrootcert for verify-ca and verify-full"
        );
        let verifier =
            Arc::new(ServerCheck { provider: provider.clone(), chain, check_name: self.mode == TlsMode::VerifyFull });
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| self.refuse(format!("cannot set up TLS: {e}")))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(Some(MakeRustlsConnect::new(config)))
    }

    fn read_roots(&self, path: &std::path::Path) -> Result<RootCertStore, LedgerError> {
        let certificates = CertificateDer::pem_file_iter(path)
            .map_err(|e| self.refuse(format!("cannot read sslrootcert {}: {e}", path.display())))?;
        let mut roots = RootCertStore::empty();
        for (i, certificate) in certificates.enumerate() {
            if i == MAX_ROOT_CERTIFICATES {
                return Err(self.refuse(format!(
                    "sslrootcert {} holds more than {MAX_ROOT_CERTIFICATES} certificates",
                    path.display()
                )));
            }
            let certificate = certificate
                .map_err(|e| self.refuse(format!("sslrootcert {} is not valid PEM: {e}", path.display())))?;
            roots.add(certificate).map_err(|e| {
                self.refuse(format!("sslrootcert {} holds an unusable certificate: {e}", path.display()))
            })?;
        }
        if roots.is_empty() {
            return Err(self.refuse(format!("sslrootcert {} holds no PEM certificate", path.display())));
        }
        Ok(roots)
    }

    fn refuse(&self, detail: String) -> LedgerError {
        LedgerError::Tls { detail }
    }
}

/// What is checked of the server: the handshake's signatures always; with
/// roots, also the certificate chain (`verify-ca`) and host name
/// (`verify-full`). Without roots (`prefer`/`require`) the session is
/// encrypted but whose certificate it is goes unchecked, as with libpq: use
/// `verify-full` against an active attacker.
#[derive(Debug)]
struct ServerCheck {
    provider: Arc<CryptoProvider>,
    chain: Option<Arc<WebPkiServerVerifier>>,
    check_name: bool,
}

impl ServerCertVerifier for ServerCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else { return Ok(ServerCertVerified::assertion()) };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) if !self.check_name => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(params: &[&str]) -> Result<(TlsSettings, Vec<String>), String> {
        TlsSettings::take_from(params.to_vec(), |s| s.to_owned())
    }

    #[test]
    fn default_is_prefer_and_other_params_are_kept() {
        let (settings, kept) = take(&["connect_timeout=5"]).unwrap();
        assert_eq!(settings, TlsSettings { mode: TlsMode::Prefer, root_cert: None });
        assert_eq!(kept, ["connect_timeout=5", "sslmode=prefer"]);
    }

    #[test]
    fn verifying_modes_are_sent_as_require_and_need_roots() {
        let (settings, kept) = take(&["sslmode=verify-full", "sslrootcert=/r.pem"]).unwrap();
        assert_eq!(settings.mode, TlsMode::VerifyFull);
        assert_eq!(kept, ["sslmode=require"]);
        let error = take(&["sslmode=verify-ca"]).unwrap_err();
        assert!(error.contains("sslrootcert"), "{error}");
    }

    #[test]
    fn unknown_and_unsupported_modes_are_refused_by_name() {
        assert!(take(&["sslmode=bogus"]).unwrap_err().contains("not a TLS mode"));
        assert!(take(&["sslmode=allow"]).unwrap_err().contains("not supported"));
        assert!(take(&["sslmode=disable", "sslrootcert=/r.pem"]).unwrap_err().contains("drop one"));
        assert!(take(&["sslrootcert=system"]).unwrap_err().contains("not supported"));
    }

    #[test]
    fn a_missing_root_file_is_a_tls_error_naming_it() {
        let settings = TlsSettings { mode: TlsMode::VerifyFull, root_cert: Some("/nonexistent/root.pem".into()) };
        let error = settings.connector().err().unwrap().to_string();
        assert!(error.contains("/nonexistent/root.pem"), "{error}");
    }
}
