//! Throwaway Node applications that install the Node integration exactly as its README tells a
//! user: `npm install` of the application's own SDKs (pinned versions) and of the integration's
//! folder (npm's `file:` link) or of its packed tarball, under `target/node-apps/<name>`, with
//! no `NODE_PATH`. Reinstalled when what the application depends on changes (as
//! [`crate::pytools`] does for Python).
//!
//! Node 20.14 or newer and npm come from the system (`NODE`/`NPM` name others). Without them, the
//! answer is [`NodeTools::Missing`] with the install command, for the caller to report.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::process::workspace_root;

/// The oldest Node the suite runs on: the runner's `--test-force-exit` needs 20.14.
pub const MIN_NODE: (u32, u32) = (20, 14);

/// VWO's Node SDK as the applications install it.
pub const VWO_NODE_SDK: &str = "1.35.0";

/// VWO's React SDK, for the React application.
pub const VWO_REACT_SDK: &str = "1.0.0";

/// React and React DOM, for the React application.
pub const REACT: &str = "19.3.1";

/// The bundler the browser applications are built with (its `browser` export conditions).
pub const ESBUILD: &str = "0.28.2";

/// What drives Chromium in the browser suite (the system's `chromium`: it downloads nothing).
pub const PLAYWRIGHT_CORE: &str = "1.65.2";

/// How the application installs the integration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Install {
    /// `npm install path/to/integrations/node`: npm's default, a `file:` symlink.
    Linked,
    /// `npm pack` in the folder, then `npm install` of the tarball: a copy in `node_modules`.
    Packed,
}

/// A throwaway application with the integration installed, or why there is none.
#[derive(Debug, Clone)]
pub enum NodeTools {
    /// Ready: run `node` in `dir`.
    Ready {
        /// The Node interpreter.
        node: PathBuf,
        /// The application's folder (its `package.json` and `node_modules`).
        dir: PathBuf,
    },
    /// Node or npm is not installed (or too old): the sentence says how to install it.
    Missing(String),
}

/// The folder of the Node integration (`integrations/node`).
pub fn integration_dir() -> PathBuf {
    workspace_root().join("integrations/node")
}

/// An application named `name` depending on `@sentry/node` `sentry_version` and VWO's SDK, with
/// the integration installed as `install`; an install that fails is an error.
pub fn app(name: &str, sentry_version: &str, install: Install) -> Result<NodeTools, String> {
    let dependencies = serde_json::json!({
        "@sentry/node": sentry_version,
        "vwo-fme-node-sdk": VWO_NODE_SDK,
    });
    app_with(name, dependencies, install)
}

/// A web application named `name`: `@sentry/browser` and `@sentry/react` `sentry_version`,
/// VWO's SDK (its browser build) and React SDK, React, the bundler and Chromium's driver, with
/// the integration linked as its README says.
pub fn browser_app(name: &str, sentry_version: &str) -> Result<NodeTools, String> {
    let dependencies = serde_json::json!({
        "@sentry/browser": sentry_version,
        "@sentry/react": sentry_version,
        "vwo-fme-node-sdk": VWO_NODE_SDK,
        "vwo-fme-react-sdk": VWO_REACT_SDK,
        "react": REACT,
        "react-dom": REACT,
        "esbuild": ESBUILD,
        "playwright-core": PLAYWRIGHT_CORE,
    });
    app_with(name, dependencies, Install::Linked)
}

/// An application named `name` with `dependencies` (a JSON object of pinned versions) and the
/// integration installed as `install`.
fn app_with(
    name: &str,
    mut dependencies: serde_json::Value,
    install: Install,
) -> Result<NodeTools, String> {
    let node = std::env::var_os("NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|| "node".into());
    let npm = std::env::var_os("NPM")
        .map(PathBuf::from)
        .unwrap_or_else(|| "npm".into());
    if let Some(missing) = missing_tools(&node, &npm) {
        return Ok(NodeTools::Missing(missing));
    }
    let dir = crate::pytools::target_dir().join("node-apps").join(name);
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let spec = match install {
        Install::Linked => format!("file:{}", integration_dir().display()),
        Install::Packed => format!("file:{}", pack(&npm, &dir)?.display()),
    };
    dependencies["sentry-vwo-flags"] = spec.into();
    let manifest = serde_json::json!({
        "name": name,
        "private": true,
        "dependencies": dependencies,
    });
    let manifest = format!("{manifest:#}\n");
    let stamp = format!("{manifest}{}", integration_sources()?);
    install_app(&npm, &dir, &manifest, &stamp)?;
    Ok(NodeTools::Ready { node, dir })
}

/// The browser to drive: `CHROMIUM`, else Debian's `chromium` on the `PATH`; or why there is
/// none, saying how to get it.
pub fn chromium() -> Result<PathBuf, String> {
    let hint = "install Debian's (apt-get install chromium) or set CHROMIUM to a Chromium's path";
    if let Some(path) = std::env::var_os("CHROMIUM").map(PathBuf::from) {
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("CHROMIUM={} is not a file: {hint}", path.display()))
        };
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|dir| dir.join("chromium"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| format!("no chromium on the PATH: {hint}"))
}

/// Copies the folder `from` into `to` (replacing what `to` held), recursively: a suite or a page
/// of `integrations/node` into an application.
pub fn copy_folder(from: &Path, to: &Path) -> Result<(), String> {
    let _ = std::fs::remove_dir_all(to);
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let path = entry
            .map_err(|e| format!("{}: {e}", from.display()))?
            .path();
        let target = to.join(path.file_name().unwrap_or_default());
        if path.is_dir() {
            copy_folder(&path, &target)?;
        } else {
            std::fs::copy(&path, &target).map_err(|e| format!("{}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// Why Node or npm cannot run the suites, if so.
fn missing_tools(node: &Path, npm: &Path) -> Option<String> {
    let hint = "install Node 20.14 or newer with npm (Debian/Ubuntu: apt-get install nodejs npm, \
                from a release that ships Node 20 or newer)";
    let version = match Command::new(node).arg("--version").output() {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout).trim().to_owned(),
        _ => return Some(format!("Node was not found: {hint}")),
    };
    let mut parts = version
        .trim_start_matches('v')
        .split('.')
        .map(|p| p.parse::<u32>().unwrap_or(0));
    let found = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if found < MIN_NODE {
        return Some(format!("Node {version} is too old: {hint}"));
    }
    let npm_runs = Command::new(npm)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    (!npm_runs).then(|| format!("npm was not found: {hint}"))
}

/// The integration's files an install depends on, for the stamp.
fn integration_sources() -> Result<String, String> {
    let mut text = String::new();
    for name in ["package.json", "index.js", "browser.mjs"] {
        let path = integration_dir().join(name);
        text += &std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(text)
}

/// `npm pack` of the integration into `dir/pack`; the tarball's path.
fn pack(npm: &Path, dir: &Path) -> Result<PathBuf, String> {
    let into = dir.join("pack");
    std::fs::create_dir_all(&into).map_err(|e| format!("{}: {e}", into.display()))?;
    let out = npm_in(
        npm,
        &integration_dir(),
        &["pack", "--pack-destination"],
        Some(&into),
    )?;
    let name = String::from_utf8_lossy(&out)
        .lines()
        .last()
        .unwrap_or("")
        .trim()
        .to_owned();
    Ok(into.join(name))
}

/// Installs `manifest` in `dir` afresh, unless `dir` already holds an install of `stamp`.
fn install_app(npm: &Path, dir: &Path, manifest: &str, stamp: &str) -> Result<(), String> {
    let stamp_file = dir.join("installed.stamp");
    if dir.join("node_modules").is_dir()
        && std::fs::read_to_string(&stamp_file).is_ok_and(|text| text == stamp)
    {
        return Ok(());
    }
    for stale in ["node_modules", "package-lock.json"] {
        let path = dir.join(stale);
        let _ = std::fs::remove_dir_all(&path).or_else(|_| std::fs::remove_file(&path));
    }
    std::fs::write(dir.join("package.json"), manifest)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    eprintln!("Installing the Node test application {} …", dir.display());
    npm_in(npm, dir, &["install"], None)?;
    std::fs::write(&stamp_file, stamp).map_err(|e| format!("{}: {e}", stamp_file.display()))
}

/// Runs `npm args [extra]` in `dir`; its standard output.
fn npm_in(npm: &Path, dir: &Path, args: &[&str], extra: Option<&Path>) -> Result<Vec<u8>, String> {
    let out = Command::new(npm)
        .args(args)
        .args(extra)
        .args(["--no-audit", "--no-fund", "--loglevel=error"])
        .env_remove("NODE_PATH")
        .current_dir(dir)
        .output()
        .map_err(|e| format!("could not run npm: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "npm {} failed in {}: {}",
            args.join(" "),
            dir.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(out.stdout)
}
