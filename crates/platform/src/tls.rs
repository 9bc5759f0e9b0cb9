//! The one TLS configuration behind every HTTPS client of the bridge: the VWO and Sentry
//! clients, the settings-file reader and the AWS SDK's clients (through [`crate::aws`]).
//!
//! - **Roots compiled in** (`webpki-roots`, Mozilla's root program): nothing is read or parsed
//!   from `/etc/ssl` at cold start. Reading the system's PEM bundle and certificate directory
//!   was a third of the kill switch's init CPU, and it was done twice (reqwest and the SDK each
//!   loaded their own copy). VWO, Sentry and AWS endpoints all chain to roots in that program.
//! - **One crypto provider** (`ring`): no second TLS library is linked, which keeps the
//!   artifacts small.
//!
//! The configuration is built once per process and cloned into each client (a clone copies
//! references to the static roots, not the roots).

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::error::{Error, Result};

/// `User-Agent` of every request the bridge makes.
pub const USER_AGENT: &str = concat!("sentry-vwo-bridge/", env!("CARGO_PKG_VERSION"));

/// How long an idle connection is kept for the next request.
pub const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// The TLS client configuration every client shares: TLS 1.2 and 1.3, `ring`, and the
/// compiled-in Mozilla roots. Built on first use.
pub fn tls_config() -> Result<rustls::ClientConfig> {
    static CONFIG: OnceLock<std::result::Result<rustls::ClientConfig, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map(|builder| builder.with_root_certificates(roots).with_no_client_auth())
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| Error::Config(format!("cannot set up TLS: {e}")))
}

/// A `reqwest` client builder on the shared TLS configuration, with the bridge's user agent
/// and idle-connection timeout. Callers add their own timeouts.
pub fn client_builder() -> Result<reqwest::ClientBuilder> {
    Ok(reqwest::Client::builder()
        .tls_backend_preconfigured(tls_config()?)
        .user_agent(USER_AGENT)
        .pool_idle_timeout(POOL_IDLE_TIMEOUT))
}

/// Builds a client from a [`client_builder`] the caller has configured.
pub fn build(builder: reqwest::ClientBuilder) -> Result<reqwest::Client> {
    builder
        .build()
        .map_err(|e| Error::Config(format!("cannot build HTTP client: {e}")))
}

/// A client from [`client_builder`] with no timeouts of its own (each request sets one).
pub fn client() -> Result<reqwest::Client> {
    build(client_builder()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusts(subject_text: &str) -> bool {
        webpki_roots::TLS_SERVER_ROOTS.iter().any(|anchor| {
            anchor
                .subject
                .as_ref()
                .windows(subject_text.len())
                .any(|w| w == subject_text.as_bytes())
        })
    }

    #[test]
    fn the_roots_aws_endpoints_chain_to_are_compiled_in() {
        // Amazon Trust Services' roots (https://www.amazontrust.com/repository/): every AWS
        // service endpoint's certificate chains to one of them.
        for root in [
            "Amazon Root CA 1",
            "Amazon Root CA 2",
            "Amazon Root CA 3",
            "Amazon Root CA 4",
        ] {
            assert!(trusts(root), "{root} missing");
        }
    }

    #[tokio::test]
    async fn a_client_on_the_shared_configuration_builds_and_speaks_plain_http_too() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut socket, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = socket.read(&mut buf).await.unwrap();
            let request = String::from_utf8_lossy(&buf[..n]).to_ascii_lowercase();
            assert!(request.contains(&format!("user-agent: {}", USER_AGENT.to_ascii_lowercase())));
            socket
                .write_all(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n")
                .await
                .unwrap();
        });
        let status = client()
            .unwrap()
            .get(format!("http://{addr}/"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 204);
    }
}
