//! Watching for leaked secrets: every log line of the test process is captured (at DEBUG, all
//! crates), and every secret a test uses is registered; [`assert_clean`] fails if any registered
//! secret appears in the captured logs or in a given response text.

use std::io::Write;
use std::sync::{Mutex, Once};

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct Capture;

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs the capturing subscriber (once per process) and registers `secrets`.
pub fn watch(secrets: &[&str]) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .json()
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(|| Capture)
            .try_init();
    });
    SECRETS.lock().unwrap_or_else(|p| p.into_inner()).extend(
        secrets
            .iter()
            .filter(|s| s.len() >= 6)
            .map(|s| s.to_string()),
    );
}

/// How many bytes of logs have been captured so far.
pub fn captured_bytes() -> usize {
    LOGS.lock().unwrap_or_else(|p| p.into_inner()).len()
}

/// Panics if any registered secret appears in `response` or in the logs captured so far.
pub fn assert_clean(response: &str) {
    let secrets = SECRETS.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let logs =
        String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
    for secret in &secrets {
        assert!(
            !response.contains(secret.as_str()),
            "a secret leaked into a response: {response}"
        );
        assert!(
            !logs.contains(secret.as_str()),
            "a secret leaked into the logs"
        );
    }
}
