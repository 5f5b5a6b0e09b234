//! TLS on a listener (SSL and SASL_SSL), with rustls and ring's crypto:
//! TLS 1.2 and 1.3 only, the server's certificate chain and key from PEM
//! files, client certificates (mTLS) none, requested or required against
//! the CAs of a PEM file, the principal of a client certificate its
//! subject as Kafka names it (`User:CN=client,O=org`: RFC 2253 order).
//!
//! Reload without restart: every accept asks for the current
//! configuration; at most once a second that looks at the files'
//! modification times and, when one changed, builds a new configuration
//! from them. Files that do not load (a key written after its
//! certificate, a file half written) are logged once and tried again a
//! second later while the previous configuration serves. Connections keep
//! the configuration they began with.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;

/// Whether clients present certificates (Kafka's `ssl.client.auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuth {
    None,
    /// Asked for; a client without one connects as `User:ANONYMOUS`.
    Requested,
    Required,
}

impl ClientAuth {
    pub fn parse(value: &str) -> Option<ClientAuth> {
        match value {
            "none" => Some(ClientAuth::None),
            "requested" => Some(ClientAuth::Requested),
            "required" => Some(ClientAuth::Required),
            _ => None,
        }
    }
}

/// Where a listener's TLS material is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The server's certificate chain (PEM, leaf first).
    pub certificate: PathBuf,
    /// Its private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CAs that sign client certificates (PEM); needed unless
    /// `client_auth` is none.
    pub ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
}

/// How often the files are looked at for changes, at most.
const RELOAD_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A listener's TLS: its files and the configuration they make now.
#[derive(Debug)]
pub struct Tls {
    files: TlsFiles,
    state: Mutex<Loaded>,
}

#[derive(Debug)]
struct Loaded {
    config: Arc<rustls::ServerConfig>,
    /// The files' modification times when `config` was built.
    stamps: Vec<Option<SystemTime>>,
    /// The modification times of files that last failed to load.
    failed: Option<Vec<Option<SystemTime>>>,
    checked: Instant,
}

impl Tls {
    /// Loads the files (an error says which and why).
    pub fn load(files: TlsFiles) -> anyhow::Result<Tls> {
        let stamps = stamps(&files);
        let config = Arc::new(server_config(&files)?);
        Ok(Tls {
            files,
            state: Mutex::new(Loaded {
                config,
                stamps,
                failed: None,
                checked: Instant::now(),
            }),
        })
    }

    /// The configuration for a new connection, reloaded first if a file
    /// changed since it was built.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.checked.elapsed() >= RELOAD_CHECK_INTERVAL {
            state.checked = Instant::now();
            let now = stamps(&self.files);
            if now != state.stamps {
                match server_config(&self.files) {
                    Ok(config) => {
                        state.config = Arc::new(config);
                        state.stamps = now;
                        state.failed = None;
                        tracing::info!(certificate = %self.files.certificate.display(), "TLS certificate reloaded");
                    }
                    Err(e) => {
                        if state.failed.as_ref() != Some(&now) {
                            tracing::warn!(
                                error = format!("{e:#}"),
                                "TLS files changed but do not load; keeping the previous ones"
                            );
                            state.failed = Some(now);
                        }
                    }
                }
            }
        }
        Arc::clone(&state.config)
    }
}

impl Tls {
    /// The same files with client certificates required: the internal
    /// listener's TLS, where brokers prove who they are.
    pub fn requiring_client_certificates(&self) -> anyhow::Result<Tls> {
        Tls::load(TlsFiles {
            client_auth: ClientAuth::Required,
            ..self.files.clone()
        })
    }

    /// A client's configuration from the same files, read now (so a
    /// renewed certificate is used by the next connection): trusts the
    /// CAs of `ssl-ca` and presents the broker's certificate, as brokers
    /// calling each other do.
    pub fn client_config(&self) -> anyhow::Result<Arc<rustls::ClientConfig>> {
        let files = &self.files;
        let ca = files.ca.as_ref().ok_or_else(|| {
            anyhow::anyhow!("calling other brokers over TLS needs ssl-ca (the CAs that sign them)")
        })?;
        let roots = roots(ca)?;
        let (chain, key) = (certificates(&files.certificate)?, private_key(&files.key)?);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .map_err(|e| anyhow::anyhow!("{}: {e}", files.certificate.display()))?;
        Ok(Arc::new(config))
    }
}

/// The TLS handshake of a connection this broker opened to another at
/// `host` (the name or address its certificate must carry), within
/// [`TLS_HANDSHAKE_TIMEOUT`].
pub(crate) async fn connect(
    stream: glommio::net::TcpStream,
    tls: &Tls,
    host: &str,
) -> std::io::Result<super::Stream> {
    use std::io::{Error, ErrorKind};
    let config = tls
        .client_config()
        .map_err(|e| Error::other(format!("{e:#}")))?;
    let name = rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| Error::new(ErrorKind::InvalidInput, format!("{host}: {e}")))?;
    let connect = futures_rustls::TlsConnector::from(config).connect(name, stream);
    let timeout = std::pin::pin!(engine::rt::sleep(TLS_HANDSHAKE_TIMEOUT));
    match futures::future::select(std::pin::pin!(connect), timeout).await {
        futures::future::Either::Left((Ok(stream), _)) => {
            Ok(super::Stream::TlsClient(Box::new(stream)))
        }
        futures::future::Either::Left((Err(e), _)) => Err(e),
        futures::future::Either::Right(_) => Err(Error::new(
            ErrorKind::TimedOut,
            format!("TLS handshake with {host}: no answer in {TLS_HANDSHAKE_TIMEOUT:?}"),
        )),
    }
}

fn stamps(files: &TlsFiles) -> Vec<Option<SystemTime>> {
    [
        Some(&files.certificate),
        Some(&files.key),
        files.ca.as_ref(),
    ]
    .into_iter()
    .flatten()
    .map(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok())
    .collect()
}

fn read(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

fn certificates(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let pem = read(path)?;
    let certificates = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    if certificates.is_empty() {
        anyhow::bail!("{}: no PEM certificate", path.display());
    }
    Ok(certificates)
}

fn private_key(path: &Path) -> anyhow::Result<PrivateKeyDer<'static>> {
    PrivateKeyDer::from_pem_slice(&read(path)?)
        .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
}

/// The CAs of a PEM file, as trust roots.
fn roots(ca: &Path) -> anyhow::Result<rustls::RootCertStore> {
    let mut roots = rustls::RootCertStore::empty();
    for certificate in certificates(ca)? {
        roots
            .add(certificate)
            .map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?;
    }
    Ok(roots)
}

fn server_config(files: &TlsFiles) -> anyhow::Result<rustls::ServerConfig> {
    let (chain, key) = (certificates(&files.certificate)?, private_key(&files.key)?);
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let builder = match files.client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Requested | ClientAuth::Required => {
            let ca = files.ca.as_ref().ok_or_else(|| {
                anyhow::anyhow!("client certificates need ssl-ca (the CAs that sign them)")
            })?;
            let verifier =
                WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider.clone());
            let verifier = if files.client_auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(verifier.build()?)
        }
    };
    let config = builder
        .with_single_cert(chain, key)
        .map_err(|e| anyhow::anyhow!("{}: {e}", files.certificate.display()))?;
    Ok(config)
}

/// How long a client has to finish its TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The TLS handshake of a new connection; `None` (logged) if it failed or
/// took too long. The principal is its client certificate's subject.
pub(crate) async fn accept(
    stream: glommio::net::TcpStream,
    tls: &Tls,
    peer: &str,
) -> Option<(super::Stream, String)> {
    let accept = futures_rustls::TlsAcceptor::from(tls.current()).accept(stream);
    let timeout = std::pin::pin!(engine::rt::sleep(TLS_HANDSHAKE_TIMEOUT));
    match futures::future::select(std::pin::pin!(accept), timeout).await {
        futures::future::Either::Left((Ok(stream), _)) => {
            let principal = principal(stream.get_ref().1.peer_certificates());
            tracing::debug!(%peer, %principal, "TLS connection");
            Some((super::Stream::Tls(Box::new(stream)), principal))
        }
        // Closed before a handshake: a port check (a load balancer's).
        futures::future::Either::Left((Err(e), _))
            if e.kind() == std::io::ErrorKind::UnexpectedEof =>
        {
            tracing::debug!(%peer, error = %e, "closed during the TLS handshake");
            None
        }
        futures::future::Either::Left((Err(e), _)) => {
            crate::handlers::sasl::log_failure("TLS handshake failed", peer, &e.to_string());
            None
        }
        futures::future::Either::Right(_) => {
            crate::handlers::sasl::log_failure("TLS handshake failed", peer, "timed out");
            None
        }
    }
}

/// Kafka's principal of a client certificate: `User:` and its subject in
/// RFC 2253 form (the last relative name first, `,` between them), as
/// `ssl.principal.mapping.rules=DEFAULT` gives it; `User:ANONYMOUS`
/// without one.
pub fn principal(certificates: Option<&[CertificateDer<'_>]>) -> String {
    let Some(leaf) = certificates.and_then(<[_]>::first) else {
        return crate::frame::ANONYMOUS.into();
    };
    match x509_parser::parse_x509_certificate(leaf) {
        Ok((_, certificate)) => format!("User:{}", rfc2253(certificate.subject())),
        Err(_) => crate::frame::ANONYMOUS.into(),
    }
}

fn rfc2253(name: &x509_parser::x509::X509Name<'_>) -> String {
    let registry = x509_parser::objects::oid_registry();
    let mut rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            rdn.iter()
                .map(|attribute| {
                    let oid = attribute.attr_type();
                    let key = match x509_parser::objects::oid2sn(oid, registry) {
                        Ok("commonName") => "CN".to_string(),
                        Ok("organizationName") => "O".to_string(),
                        Ok("organizationalUnitName") => "OU".to_string(),
                        Ok("localityName") => "L".to_string(),
                        Ok("stateOrProvinceName") => "ST".to_string(),
                        Ok("countryName") => "C".to_string(),
                        Ok("streetAddress") => "STREET".to_string(),
                        Ok("domainComponent") => "DC".to_string(),
                        Ok("userId") => "UID".to_string(),
                        _ => oid.to_id_string(),
                    };
                    let value = attribute.as_str().unwrap_or("");
                    format!("{key}={}", escape_rfc2253(value))
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.reverse();
    rdns.join(",")
}

/// RFC 2253's escapes of an attribute value.
fn escape_rfc2253(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && matches!(c, '#' | ' '))
            || (i + 1 == value.chars().count() && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificates_principal_is_its_subject_in_rfc_2253_order() {
        let mut params = rcgen::CertificateParams::new(vec!["client".into()]).unwrap();
        let mut name = rcgen::DistinguishedName::new();
        name.push(rcgen::DnType::CountryName, "US");
        name.push(rcgen::DnType::OrganizationName, "Trading, Inc");
        name.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = name;
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let der = certificate.der().clone();
        assert_eq!(
            principal(Some(&[der])),
            "User:CN=alice,O=Trading\\, Inc,C=US"
        );
        assert_eq!(principal(None), "User:ANONYMOUS");
    }
}
