//! The HTTP client every Cellar component uses (the CLI, the Drive backend, tests).
//!
//! reqwest is built with rustls but without a crypto provider, so aws-lc (a C build) is never
//! compiled; rustls' ring provider (already used by yup-oauth2) is installed as the process
//! default here, once, before any client is built.

/// Installs the ring provider as rustls' process default; later calls do nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A reqwest client with the crypto provider installed.
pub fn client() -> reqwest::Client {
    install_crypto_provider();
    reqwest::Client::new()
}
