//! The login service's certificate, and the client's pinning of it.
//!
//! - **Server.** `--tls-cert`/`--tls-key` (PEM) when the operator gives them; otherwise a
//!   self-signed certificate made at first start under the keys directory (`login-cert.pem`,
//!   `login-key.pem`, both mode 0600), naming `localhost` and the server's addresses.
//! - **Client.** A self-signed certificate has no authority to check it against, so the client
//!   pins it: the SHA-256 of the certificate, remembered the first time (a known-hosts file) or
//!   given up front (`--server-cert`). A different certificate is refused. The handshake's
//!   signatures are still checked against the pinned certificate's key.

use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use sha2::{Digest, Sha256};

/// What went wrong with a certificate or key.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// A file is not the PEM it should be.
    #[error("{path}: {reason}")]
    Pem {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// Making the certificate failed.
    #[error("cannot make the login service's certificate: {0}")]
    Generate(String),
    /// rustls refused the configuration.
    #[error("TLS: {0}")]
    Config(String),
    /// Only one of `--tls-cert` and `--tls-key`.
    #[error(
        "give both --tls-cert and --tls-key, or neither (a certificate is then made under {0})"
    )]
    Half(String),
}

/// The SHA-256 of a certificate (DER): what the client pins.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(pub [u8; 32]);

impl Fingerprint {
    /// Of the DER bytes.
    pub fn of(der: &[u8]) -> Self {
        Self(Sha256::digest(der).into())
    }

    /// From its hex form.
    pub fn parse(hex_text: &str) -> Option<Self> {
        let bytes = hex::decode(hex_text.trim()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }
}

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Fingerprint({self})")
    }
}

/// The crypto this crate's TLS uses (ring).
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The certificate and key files made at first start under `keys_dir`.
pub fn default_paths(keys_dir: &Path) -> (PathBuf, PathBuf) {
    (
        keys_dir.join("login-cert.pem"),
        keys_dir.join("login-key.pem"),
    )
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> TlsError + '_ {
    move |source| TlsError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn write_private(path: &Path, text: &str) -> Result<(), TlsError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    file.write_all(text.as_bytes()).map_err(io(path))
}

/// Makes a self-signed certificate for `names` (host names and IP literals) at the two paths,
/// unless both already exist.
pub fn ensure_self_signed(cert: &Path, key: &Path, names: &[String]) -> Result<bool, TlsError> {
    if cert.exists() && key.exists() {
        return Ok(false);
    }
    let pair = rcgen::KeyPair::generate().map_err(|e| TlsError::Generate(e.to_string()))?;
    let mut params = rcgen::CertificateParams::new(names.to_vec())
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "bloxquarium login service");
    // Valid for 10 years from yesterday: clients pin it, so no expiry check catches a rotation.
    let now = std::time::SystemTime::now();
    params.not_before = (now - std::time::Duration::from_secs(86_400)).into();
    params.not_after = (now + std::time::Duration::from_secs(10 * 365 * 86_400)).into();
    let made = params
        .self_signed(&pair)
        .map_err(|e| TlsError::Generate(e.to_string()))?;
    // A half-made pair (one file left from a crash) is replaced whole.
    let _ = std::fs::remove_file(cert);
    let _ = std::fs::remove_file(key);
    write_private(key, &pair.serialize_pem())?;
    write_private(cert, &made.pem())?;
    Ok(true)
}

/// Reads the certificate chain of a PEM file.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(io(path))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Pem {
            path: path.display().to_string(),
            reason: "no CERTIFICATE in it".into(),
        });
    }
    Ok(certs)
}

/// A server configuration from the PEM files, and the leaf certificate's fingerprint.
pub fn server_config(
    cert: &Path,
    key: &Path,
) -> Result<(Arc<rustls::ServerConfig>, Fingerprint), TlsError> {
    let certs = read_certs(cert)?;
    let key_bytes = std::fs::read(key).map_err(io(key))?;
    let private = PrivateKeyDer::from_pem_slice(&key_bytes).map_err(|e| TlsError::Pem {
        path: key.display().to_string(),
        reason: e.to_string(),
    })?;
    let fingerprint = Fingerprint::of(&certs[0]);
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, private)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    Ok((Arc::new(config), fingerprint))
}

/// The client's check of the server's certificate: it must be the pinned one; with no pin, the
/// first one seen is accepted and remembered in [`PinVerifier::seen`].
#[derive(Debug)]
pub struct PinVerifier {
    pinned: Option<Fingerprint>,
    seen: Mutex<Option<Fingerprint>>,
    provider: Arc<CryptoProvider>,
}

impl PinVerifier {
    /// Pins `pinned`, or trusts on first use.
    pub fn new(pinned: Option<Fingerprint>) -> Self {
        Self {
            pinned,
            seen: Mutex::new(None),
            provider: provider(),
        }
    }

    /// The certificate the server presented.
    pub fn seen(&self) -> Option<Fingerprint> {
        self.seen.lock().ok().and_then(|s| *s)
    }
}

impl ServerCertVerifier for PinVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = Fingerprint::of(end_entity);
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(got);
        }
        match self.pinned {
            Some(pin) if pin != got => Err(rustls::Error::General(format!(
                "certificate {got} is not the pinned {pin}"
            ))),
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A client configuration that checks the server with `verifier`.
pub fn client_config(verifier: Arc<PinVerifier>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let config = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The client's known-hosts file: one `HOST:PORT FINGERPRINT` line per login service.
#[derive(Debug, Clone)]
pub struct KnownHosts {
    path: PathBuf,
}

impl KnownHosts {
    /// The file at `path` (it need not exist yet).
    pub fn at(path: PathBuf) -> Self {
        Self { path }
    }

    /// Its path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The fingerprint pinned for `host`.
    pub fn get(&self, host: &str) -> Option<Fingerprint> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        text.lines().find_map(|line| {
            let (h, f) = line.split_once(' ')?;
            (h == host).then(|| Fingerprint::parse(f)).flatten()
        })
    }

    /// Pins `fingerprint` for `host` (replacing a line for it).
    pub fn put(&self, host: &str, fingerprint: Fingerprint) -> Result<(), TlsError> {
        let old = std::fs::read_to_string(&self.path).unwrap_or_default();
        let mut lines: Vec<String> = old
            .lines()
            .filter(|l| l.split_once(' ').is_none_or(|(h, _)| h != host))
            .map(str::to_string)
            .collect();
        lines.push(format!("{host} {fingerprint}"));
        crate::process::write_private_atomically(&self.path, (lines.join("\n") + "\n").as_bytes())
            .map_err(io(&self.path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_made_certificate_loads_and_is_kept_private() {
        let dir = std::env::temp_dir().join(format!("bq-tls-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (cert, key) = default_paths(&dir);
        assert!(ensure_self_signed(&cert, &key, &["localhost".into(), "10.0.0.1".into()]).unwrap());
        assert!(!ensure_self_signed(&cert, &key, &["localhost".into()]).unwrap());
        use std::os::unix::fs::PermissionsExt;
        for f in [&cert, &key] {
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", f.display());
        }
        let (_, fp) = server_config(&cert, &key).unwrap();
        assert_eq!(fp, Fingerprint::of(&read_certs(&cert).unwrap()[0]));
        assert_eq!(Fingerprint::parse(&fp.to_string()), Some(fp));
        let e = server_config(&key, &cert).unwrap_err();
        assert!(e.to_string().contains("login-key.pem"), "{e}");

        let known = KnownHosts::at(dir.join("client").join("known_hosts"));
        assert_eq!(known.get("h:1"), None);
        known.put("h:1", fp).unwrap();
        known.put("h:2", Fingerprint([7; 32])).unwrap();
        known.put("h:1", Fingerprint([9; 32])).unwrap();
        assert_eq!(known.get("h:1"), Some(Fingerprint([9; 32])));
        assert_eq!(known.get("h:2"), Some(Fingerprint([7; 32])));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
