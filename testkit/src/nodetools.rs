//! The Node packages the evaluation-tracking tests need — VWO's and Sentry's Node SDKs, pinned in
//! `integrations/node/package-lock.json` — installed under `target/node-integrations` on first
//! use with `npm ci`, and again when the lock file changes (as [`crate::pytools`] does for Python).
//!
//! Node 20.14 or newer and npm come from the system (`NODE`/`NPM` name others). Without them, the
//! answer is [`NodeTools::Missing`] with the install command, for the caller to report.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::workspace_root;

/// The oldest Node the suite runs on: the pinned packages need 18 (`@sentry/node` 10:
/// `engines.node >= 18`), the runner's `--test-force-exit` 20.14.
pub const MIN_NODE: (u32, u32) = (20, 14);

/// Node with the integration's packages, or why not.
#[derive(Debug, Clone)]
pub enum NodeTools {
    /// Ready: run `node` with `NODE_PATH` = `node_path`.
    Ready {
        /// The Node interpreter.
        node: PathBuf,
        /// The installed `node_modules`, for `NODE_PATH`.
        node_path: PathBuf,
    },
    /// Node or npm is not installed (or too old): the sentence says how to install it.
    Missing(String),
}

/// The folder of the Node integration (`integrations/node`).
pub fn integration_dir() -> PathBuf {
    workspace_root().join("integrations/node")
}

/// Provisions the packages once per lock file; an install that fails is an error.
pub fn get() -> Result<NodeTools, String> {
    let node = std::env::var_os("NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| "node".into());
    let npm = std::env::var_os("NPM")
        .map(PathBuf::from)
        .unwrap_or_else(|| "npm".into());
    let hint = "install Node 20.14 or newer with npm (Debian/Ubuntu: apt-get install nodejs npm, \
                from a release that ships Node 20 or newer)";
    let version = match Command::new(&node).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => return Ok(NodeTools::Missing(format!("Node was not found: {hint}"))),
    };
    let mut parts = version
        .trim_start_matches('v')
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < MIN_NODE {
        return Ok(NodeTools::Missing(format!(
            "Node {version} is too old: {hint}"
        )));
    }
    if !Command::new(&npm)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(NodeTools::Missing(format!("npm was not found: {hint}")));
    }
    let dir = crate::pytools::target_dir().join("node-integrations");
    install(&npm, &integration_dir(), &dir)?;
    Ok(NodeTools::Ready {
        node,
        node_path: dir.join("node_modules"),
    })
}

/// `npm ci` of `source`'s package files in `dir`, unless `dir` already holds that lock file.
fn install(npm: &Path, source: &Path, dir: &Path) -> Result<(), String> {
    let read = |name: &str| {
        std::fs::read_to_string(source.join(name))
            .map_err(|e| format!("{}: {e}", source.join(name).display()))
    };
    let (manifest, lock) = (read("package.json")?, read("package-lock.json")?);
    let stamp = dir.join("installed-lock.json");
    if dir.join("node_modules").is_dir()
        && std::fs::read_to_string(&stamp).is_ok_and(|text| text == lock)
    {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text)
            .map_err(|e| format!("{}: {e}", dir.join(name).display()))
    };
    write("package.json", &manifest)?;
    write("package-lock.json", &lock)?;
    eprintln!(
        "Installing the Node integration's packages in {} — first run only…",
        dir.display()
    );
    let out = Command::new(npm)
        .args(["ci", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .output()
        .map_err(|e| format!("could not run npm: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "npm ci failed in {}: {}",
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    write("installed-lock.json", &lock)
}
