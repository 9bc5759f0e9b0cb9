//! Watching for leaked secrets: every log line of the test process is captured (at DEBUG, all
//! crates), and every secret a test uses is registered; [`assert_clean`] fails if any registered
//! secret appears in the captured logs or in a given response text.

use std::io::Write;
use std::sync::{Mutex, Once};

static SECRETS: Mutex<Vec<String>> = Mutex::new(Vec::new());
static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());
/// How far the logs have been checked: each check scans only what came since (plus an overlap,
/// for a secret split across the boundary), so checking after every request stays cheap.
static CHECKED: Mutex<usize> = Mutex::new(0);

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
    for secret in &secrets {
        assert!(
            !response.contains(secret.as_str()),
            "a secret leaked into a response: {response}"
        );
    }
    let overlap = secrets.iter().map(String::len).max().unwrap_or(0);
    let mut checked = CHECKED.lock().unwrap_or_else(|p| p.into_inner());
    let logs = LOGS.lock().unwrap_or_else(|p| p.into_inner());
    let start = checked.saturating_sub(overlap).min(logs.len());
    let fresh = String::from_utf8_lossy(&logs[start..]);
    for secret in &secrets {
        assert!(
            !fresh.contains(secret.as_str()),
            "a secret leaked into the logs"
        );
    }
    *checked = logs.len();
}
