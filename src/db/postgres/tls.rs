//! PostgreSQL connection strings as providers hand them out (Neon, RDS,
//! Supabase): `sslmode` with libpq's meaning, `sslrootcert`, and
//! `channel_binding`. tokio-postgres parses the URL but knows only
//! `disable|prefer|require` and has no certificate policy of its own, so the
//! TLS part is decided here.
//!
//! libpq semantics: `prefer` and `require` encrypt without verifying the
//! server certificate (an active attacker is stopped by
//! `channel_binding=require`, which Neon's URLs carry); `verify-ca` checks the
//! chain; `verify-full` checks the chain and the host name.

use std::{str::FromStr, sync::Arc};

use rustls::{
    DigitallySignedStruct, SignatureScheme,
    client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature},
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use tokio_postgres::config::{ChannelBinding, SslMode};

/// How the server certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verify {
    Nothing,
    Chain,
    ChainAndHost,
}

/// The parsed connection settings and the TLS connector they call for.
#[derive(Clone)]
pub struct PgConnectSettings {
    pub config: tokio_postgres::Config,
    pub tls: tokio_postgres_rustls::MakeRustlsConnect,
}

/// Parses a `postgres://` URL with libpq's TLS parameters.
pub fn parse(url: &str) -> Result<PgConnectSettings, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut sslmode = "prefer".to_owned();
    let mut rootcert: Option<String> = None;
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_encoding::percent_decode_str(value)
            .decode_utf8_lossy()
            .into_owned();
        match key {
            "sslmode" => sslmode = value,
            "sslrootcert" => rootcert = Some(value),
            _ => kept.push(pair),
        }
    }
    let stripped = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    let mut config = tokio_postgres::Config::from_str(&stripped)
        .map_err(|e| format!("DATABASE_URL is not a valid PostgreSQL URL: {e}"))?;
    let (mode, verify) = match sslmode.as_str() {
        "disable" => (SslMode::Disable, Verify::Nothing),
        "allow" | "prefer" => (SslMode::Prefer, Verify::Nothing),
        "require" => (SslMode::Require, Verify::Nothing),
        "verify-ca" => (SslMode::Require, Verify::Chain),
        "verify-full" => (SslMode::Require, Verify::ChainAndHost),
        other => {
            return Err(format!(
                "DATABASE_URL has sslmode={other}; use disable, prefer, require, verify-ca or verify-full."
            ));
        }
    };
    config.ssl_mode(mode);
    if config.get_channel_binding() == ChannelBinding::Require && mode == SslMode::Disable {
        return Err("DATABASE_URL asks for channel_binding=require, which needs TLS, but sslmode=disable turns TLS off; remove one of the two.".to_owned());
    }
    let tls = connector(verify, rootcert.as_deref())?;
    Ok(PgConnectSettings { config, tls })
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn roots(rootcert: Option<&str>) -> Result<rustls::RootCertStore, String> {
    let Some(path) = rootcert.filter(|p| *p != "system") else {
        return Ok(rustls::RootCertStore::from_iter(
            webpki_roots::TLS_SERVER_ROOTS.iter().cloned(),
        ));
    };
    let mut store = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("sslrootcert {path:?} cannot be read: {e}"))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("sslrootcert {path:?} is not PEM: {e}"))?;
        store
            .add(cert)
            .map_err(|e| format!("sslrootcert {path:?} holds an unusable certificate: {e}"))?;
    }
    Ok(store)
}

fn connector(
    verify: Verify,
    rootcert: Option<&str>,
) -> Result<tokio_postgres_rustls::MakeRustlsConnect, String> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?;
    let chain = match verify {
        Verify::ChainAndHost => {
            let config = builder
                .with_root_certificates(roots(rootcert)?)
                .with_no_client_auth();
            return Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config));
        }
        Verify::Nothing => None,
        Verify::Chain => Some(
            rustls::client::WebPkiServerVerifier::builder_with_provider(
                Arc::new(roots(rootcert)?),
                provider(),
            )
            .build()
            .map_err(|e| format!("TLS setup failed: {e}"))?,
        ),
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Lenient {
            chain,
            provider: provider(),
        }))
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// The two libpq modes rustls has no verifier for. `sslmode=prefer|require`
/// (`chain: None`): encrypt and accept any certificate (libpq's meaning).
/// `sslmode=verify-ca` (`chain: Some`): the chain must lead to a trusted
/// root; the host name is not compared. Either way the handshake must be
/// signed by the certificate's key, so channel binding stays meaningful.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<rustls::client::WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp, now) {
            Err(rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName))
            | Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.provider.signature_verification_algorithms;
        verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libpq_parameters_are_understood() {
        let s = parse("postgresql://u:p@host/db?sslmode=require&channel_binding=require").unwrap();
        assert_eq!(s.config.get_ssl_mode(), SslMode::Require);
        assert_eq!(s.config.get_channel_binding(), ChannelBinding::Require);
        assert!(parse("postgres://u@host/db?sslmode=verify-full").is_ok());
        assert!(parse("postgres://u@host/db?sslmode=verify-ca").is_ok());
        assert_eq!(
            parse("postgres://u@host/db").unwrap().config.get_ssl_mode(),
            SslMode::Prefer
        );
        assert!(parse("postgres://u@host/db?sslmode=bogus").is_err());
        let err = parse("postgres://u@host/db?sslmode=disable&channel_binding=require")
            .err()
            .unwrap();
        assert!(err.contains("channel_binding=require"), "{err}");
        assert!(
            parse("postgres://u@host/db?sslmode=verify-full&sslrootcert=/nonexistent.pem").is_err()
        );
    }
}
