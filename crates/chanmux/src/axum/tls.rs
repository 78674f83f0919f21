//! [`TlsConfig`]: `https://` and `wss://` straight from [`serve`](super::serve)
//! (feature `tls`).
//!
//! Most deployments terminate TLS at a proxy (docs/deploy.md in the
//! repository shows nginx and Caddy); this is for those that want the
//! server to do it itself, end to end. The handshake runs with rustls in
//! each connection's own task, never in the accept loop, under the same
//! handshake timeout as the HTTP request head, so a client that connects
//! and then stalls costs one task and one descriptor for a bounded time and
//! delays nobody else.
//!
//! Only HTTP/1.1 is offered in ALPN: the server speaks HTTP/1.1, and
//! WebSockets over HTTP/2 (RFC 8441) are not supported.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// The one application protocol offered in ALPN.
const HTTP_1_1: &[u8] = b"http/1.1";

/// A certificate and key for [`serve`](super::serve): set it with
/// [`ServeConfig::with_tls`](super::ServeConfig::with_tls) and every
/// connection is TLS (plain HTTP connections fail their handshake and are
/// closed).
///
/// ```no_run
/// use chanmux::axum::{ServeConfig, TlsConfig};
///
/// # fn doc_main() -> Result<(), chanmux::axum::TlsError> {
/// let tls = TlsConfig::from_pem_files("/etc/chanmux/fullchain.pem", "/etc/chanmux/key.pem")?;
/// let config = ServeConfig::default().with_tls(tls);
/// # Ok(())
/// # }
/// ```
///
/// Cheap to clone: the rustls configuration is shared.
#[derive(Clone)]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub struct TlsConfig {
    config: Arc<ServerConfig>,
}

impl TlsConfig {
    /// Reads a PEM certificate chain (the server's certificate first, then
    /// its intermediates: a `fullchain.pem`) and its PEM private key
    /// (PKCS#8, PKCS#1 or SEC1), with rustls' safe defaults (TLS 1.2 and
    /// 1.3) and the ring crypto provider.
    ///
    /// Files are read once: to pick up a renewed certificate, restart (or
    /// build a new config).
    ///
    /// # Errors
    ///
    /// A [`TlsError`] naming the file and what is wrong with it: unreadable,
    /// not PEM, no certificate in it, no private key in it, a key that does
    /// not match the certificate, or a key or certificate rustls refuses.
    pub fn from_pem_files(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
    ) -> Result<TlsConfig, TlsError> {
        let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
        let certs = read_certificates(cert_path)?;
        let key = read_private_key(key_path)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|source| TlsError::Rejected {
                cert: cert_path.to_owned(),
                key: key_path.to_owned(),
                source,
            })?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|source| match source {
                rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) => {
                    TlsError::KeyMismatch {
                        cert: cert_path.to_owned(),
                        key: key_path.to_owned(),
                    }
                }
                source => TlsError::Rejected {
                    cert: cert_path.to_owned(),
                    key: key_path.to_owned(),
                    source,
                },
            })?;
        Ok(TlsConfig::from_rustls(Arc::new(config)))
    }

    /// Uses a rustls configuration built by the caller (client
    /// certificates, a certificate resolver for several names, another
    /// crypto provider…). Its ALPN list is replaced with `http/1.1` alone,
    /// since that is the only protocol [`serve`](super::serve) speaks.
    pub fn from_rustls(config: Arc<ServerConfig>) -> TlsConfig {
        let mut config = Arc::unwrap_or_clone(config);
        config.alpn_protocols = vec![HTTP_1_1.to_vec()];
        TlsConfig {
            config: Arc::new(config),
        }
    }

    /// Runs the server side of the TLS handshake on `socket`. Not bounded
    /// in time: the caller puts it under the handshake timeout.
    pub(super) async fn accept(&self, socket: TcpStream) -> io::Result<TlsStream<TcpStream>> {
        TlsAcceptor::from(self.config.clone()).accept(socket).await
    }
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let alpn: Vec<_> = (self.config.alpn_protocols.iter())
            .map(|p| String::from_utf8_lossy(p))
            .collect();
        f.debug_struct("TlsConfig")
            .field("alpn", &alpn)
            .finish_non_exhaustive()
    }
}

/// Why [`TlsConfig::from_pem_files`] could not build a configuration. Each
/// variant names the file at fault; the fix is in that file (or its path).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
#[cfg_attr(docsrs, doc(cfg(feature = "tls")))]
pub enum TlsError {
    /// The file could not be read (missing, no permission, a directory…).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The file has a broken PEM section (a `BEGIN` line without its
    /// `END`, bad base64…).
    #[error("{} is not valid PEM: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        #[source]
        source: pem::Error,
    },
    /// The certificate file has no `CERTIFICATE` section (a key file given
    /// as the certificate, say).
    #[error("no certificate found in {} (expected a PEM CERTIFICATE section)", path.display())]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file has no `PRIVATE KEY`, `RSA PRIVATE KEY` or
    /// `EC PRIVATE KEY` section (a certificate given as the key, say).
    #[error("no private key found in {} (expected a PEM PRIVATE KEY section)", path.display())]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// The private key is not the one the (first) certificate was issued
    /// for: usually the key of an older or another certificate.
    #[error(
        "the private key in {} does not match the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the key or the certificate (an unsupported key type,
    /// a malformed certificate).
    #[error(
        "cannot use the certificate in {} with the key in {}: {source}",
        cert.display(),
        key.display()
    )]
    Rejected {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        #[source]
        source: rustls::Error,
    },
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
    })
}

fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = read(path)?;
    // Sections of other kinds (a key kept in the same file) are skipped.
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::Pem {
            path: path.to_owned(),
            source,
        })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let pem = read(path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey {
            path: path.to_owned(),
        },
        source => TlsError::Pem {
            path: path.to_owned(),
            source,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A certificate for `localhost` and its key, as PEM.
    fn certificate() -> (String, String) {
        let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        (made.cert.pem(), made.signing_key.serialize_pem())
    }

    /// Writes `files` (name, contents) into `dir` and returns their paths.
    fn write(dir: &tempfile::TempDir, files: &[(&str, &str)]) -> Vec<PathBuf> {
        files
            .iter()
            .map(|(name, contents)| {
                let path = dir.path().join(name);
                std::fs::write(&path, contents).unwrap();
                path
            })
            .collect()
    }

    #[test]
    fn a_matching_certificate_and_key_load_with_http_1_1_alone_in_alpn() {
        let (cert, key) = certificate();
        let dir = tempfile::tempdir().unwrap();
        let paths = write(&dir, &[("cert.pem", &cert), ("key.pem", &key)]);
        let config = TlsConfig::from_pem_files(&paths[0], &paths[1]).unwrap();
        assert_eq!(config.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        assert_eq!(
            format!("{config:?}"),
            r#"TlsConfig { alpn: ["http/1.1"], .. }"#
        );
    }

    #[test]
    fn from_rustls_replaces_the_alpn_list() {
        let (cert, key) = certificate();
        let certs = CertificateDer::pem_slice_iter(cert.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
        let mut config =
            ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(certs, key)
                .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        let config = TlsConfig::from_rustls(Arc::new(config));
        assert_eq!(config.config.alpn_protocols, vec![b"http/1.1".to_vec()]);
    }

    #[test]
    fn each_bad_file_is_named_with_what_is_wrong() {
        let (cert, key) = certificate();
        let (_, other_key) = certificate();
        let dir = tempfile::tempdir().unwrap();
        let paths = write(
            &dir,
            &[
                ("cert.pem", &cert),
                ("key.pem", &key),
                ("other-key.pem", &other_key),
                ("broken.pem", "-----BEGIN CERTIFICATE-----\nAAAA\n"),
            ],
        );
        let [cert, key, other_key, broken] = &paths[..] else {
            unreachable!("four files")
        };
        let missing = cert.with_file_name("missing.pem");

        let error = TlsConfig::from_pem_files(&missing, key).unwrap_err();
        assert!(matches!(&error, TlsError::Read { path, .. } if *path == missing));
        assert!(
            error
                .to_string()
                .starts_with(&format!("cannot read {}", missing.display())),
            "{error}"
        );

        let error = TlsConfig::from_pem_files(key, key).unwrap_err();
        assert!(matches!(&error, TlsError::NoCertificate { path } if path == key));
        assert_eq!(
            error.to_string(),
            format!(
                "no certificate found in {} (expected a PEM CERTIFICATE section)",
                key.display()
            )
        );

        let error = TlsConfig::from_pem_files(cert, cert).unwrap_err();
        assert!(matches!(&error, TlsError::NoPrivateKey { path } if path == cert));

        let error = TlsConfig::from_pem_files(broken, key).unwrap_err();
        assert!(matches!(&error, TlsError::Pem { path, .. } if path == broken));

        let error = TlsConfig::from_pem_files(cert, other_key).unwrap_err();
        assert!(matches!(&error, TlsError::KeyMismatch { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!(
                "the private key in {} does not match the certificate in {}",
                other_key.display(),
                cert.display()
            )
        );
    }
}
