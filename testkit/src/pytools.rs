//! The Python tools the tests and `bridge local` need — moto's server, SAM's translator and CLI,
//! cfn-lint, VWO's and Sentry's Python SDKs with pytest — in a virtual environment under
//! `target/pytools`, made on first use.
//!
//! A newcomer runs `cargo test --workspace` or `cargo run -p bridge -- local` with nothing but
//! Rust and Python 3 installed: the first run creates the environment from
//! `testkit/pytools-requirements.txt` (a progress line says so), later runs reuse it, and a change
//! to that file re-installs. `BRIDGE_PYTHON=/path/to/python` skips all this and uses a Python
//! that already has the tools (its directory must hold `sam` and `cfn-lint` too).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime};

/// What the environment must hold; a copy is kept in the environment to tell when it is stale.
pub const REQUIREMENTS: &str = include_str!("../pytools-requirements.txt");

/// A lock older than this was left by a killed process (an install takes a minute or two).
const STALE_LOCK: Duration = Duration::from_secs(15 * 60);

/// A Python interpreter with the tools, and the directory of their commands.
#[derive(Debug, Clone)]
pub struct PyTools {
    /// The interpreter (`target/pytools/bin/python`, or `BRIDGE_PYTHON`).
    pub python: PathBuf,
    /// Where `sam` and `cfn-lint` live: put it first on `PATH` for scripts that call them.
    pub bin: PathBuf,
}

impl PyTools {
    /// `PATH` with [`PyTools::bin`] in front.
    pub fn path_env(&self) -> std::ffi::OsString {
        let mut dirs = vec![self.bin.clone()];
        if let Some(path) = std::env::var_os("PATH") {
            dirs.extend(std::env::split_paths(&path));
        }
        std::env::join_paths(dirs).unwrap_or_default()
    }
}

/// `python -m pip install --quiet --disable-pip-version-check` with the tools' Python: add the
/// rest of the arguments.
pub fn pip_install(tools: &PyTools) -> Command {
    let mut command = Command::new(&tools.python);
    command.args([
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
    ]);
    command
}

/// The tools, provisioned once per process (and once per `target/` across processes).
///
/// The error is one sentence naming what is missing and how to get it.
pub fn get() -> Result<&'static PyTools, String> {
    static TOOLS: OnceLock<Result<PyTools, String>> = OnceLock::new();
    TOOLS
        .get_or_init(|| match std::env::var_os("BRIDGE_PYTHON") {
            Some(python) => Ok(existing(PathBuf::from(python))),
            None => provision(&target_dir().join("pytools"), &base_python()),
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `<workspace>/target`).
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::process::workspace_root().join("target"))
}

/// The Python that creates the environment: `PYTHON`, else `python3`.
fn base_python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn existing(python: PathBuf) -> PyTools {
    let bin = python
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    PyTools { python, bin }
}

/// Creates (or refreshes) the environment in `dir` with `base`, unless it is already current.
pub fn provision(dir: &Path, base: &str) -> Result<PyTools, String> {
    let tools = existing(dir.join("bin").join("python"));
    let stamp = dir.join("requirements.txt");
    let current = || {
        tools.python.exists()
            && std::fs::read_to_string(&stamp).is_ok_and(|text| text == REQUIREMENTS)
    };
    if current() {
        return Ok(tools);
    }
    let _lock = DirLock::acquire(&dir.with_extension("lock"))?;
    if current() {
        return Ok(tools); // another process made it while we waited
    }
    let started = Instant::now();
    eprintln!(
        "Preparing the Python tools (moto, cfn-lint, SAM CLI, VWO's and Sentry's SDKs) in {} — first run only, about a minute…",
        dir.display()
    );
    let hint = format!(
        "or set BRIDGE_PYTHON to a Python that has them ({})",
        requirement_names().join(", ")
    );
    if !tools.python.exists() {
        let created = Command::new(base).args(["-m", "venv"]).arg(dir).output();
        match created {
            Err(e) => {
                return Err(format!(
                    "Python 3 was not found ({base}: {e}): install Python 3.9 or newer \
                     (Debian/Ubuntu: apt-get install python3 python3-venv), {hint}"
                ))
            }
            Ok(out) if !out.status.success() => {
                let _ = std::fs::remove_dir_all(dir);
                return Err(format!(
                    "{base} could not create a virtual environment ({}): \
                     on Debian/Ubuntu install python3-venv, {hint}",
                    last_line(&out.stderr)
                ));
            }
            Ok(_) => {}
        }
    }
    let requirements = dir.join("requirements.wanted");
    std::fs::write(&requirements, REQUIREMENTS)
        .map_err(|e| format!("cannot write {}: {e}", requirements.display()))?;
    let installed = pip_install(&tools)
        .arg("-r")
        .arg(&requirements)
        .output()
        .map_err(|e| format!("{} could not run pip: {e}", tools.python.display()))?;
    if !installed.status.success() {
        return Err(format!(
            "pip could not install the Python tools into {} ({}): run again when the package \
             index is reachable, {hint}",
            dir.display(),
            last_line(&installed.stderr)
        ));
    }
    std::fs::write(&stamp, REQUIREMENTS)
        .map_err(|e| format!("cannot write {}: {e}", stamp.display()))?;
    eprintln!(
        "Python tools ready in {:.0} s.",
        started.elapsed().as_secs_f64()
    );
    Ok(tools)
}

/// The package names of [`REQUIREMENTS`], for messages.
fn requirement_names() -> Vec<&'static str> {
    REQUIREMENTS
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.split(['>', '<', '=', ',']).next().unwrap_or(l))
        .collect()
}

fn last_line(output: &[u8]) -> String {
    String::from_utf8_lossy(output)
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no message")
        .trim()
        .to_owned()
}

/// A lock between processes: a directory that only one `mkdir` can create.
struct DirLock(PathBuf);

impl DirLock {
    fn acquire(path: &Path) -> Result<DirLock, String> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let mut said = false;
        loop {
            match std::fs::create_dir(path) {
                Ok(()) => return Ok(DirLock(path.to_path_buf())),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|a| a > STALE_LOCK) {
                        let _ = std::fs::remove_dir(path);
                        continue;
                    }
                    if !said {
                        eprintln!("Waiting for another process preparing the Python tools…");
                        said = true;
                    }
                    std::thread::sleep(Duration::from_millis(250));
                }
                Err(e) => return Err(format!("cannot create {}: {e}", path.display())),
            }
        }
    }
}

impl Drop for DirLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_requirements_name_every_tool_the_tests_call() {
        assert_eq!(
            requirement_names(),
            [
                "moto[server]",
                "cfn-lint",
                "aws-sam-cli",
                "vwo-fme-python-sdk",
                "sentry-sdk",
                "pytest",
                "vwo-openfeature-provider-python"
            ]
        );
    }

    #[test]
    fn a_missing_python_is_one_sentence_with_the_install_command() {
        let dir = std::env::temp_dir().join(format!("pytools-missing-{}", std::process::id()));
        let error = provision(&dir, "/nonexistent/python3").unwrap_err();
        assert!(error.starts_with("Python 3 was not found"), "{error}");
        assert!(
            error.contains("apt-get install python3 python3-venv"),
            "{error}"
        );
        assert!(error.contains("BRIDGE_PYTHON"), "{error}");
        assert!(!dir.join("bin").exists());
    }

    #[test]
    fn a_current_environment_is_reused_without_running_python() {
        let dir = std::env::temp_dir().join(format!("pytools-current-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/python"), "").unwrap();
        std::fs::write(dir.join("requirements.txt"), REQUIREMENTS).unwrap();
        // A base Python that does not exist proves nothing was run.
        let tools = provision(&dir, "/nonexistent/python3").unwrap();
        assert_eq!(tools.python, dir.join("bin/python"));
        assert_eq!(tools.bin, dir.join("bin"));
        // A changed requirements file makes it stale: now the base Python is needed.
        std::fs::write(dir.join("requirements.txt"), "moto\n").unwrap();
        assert!(provision(&dir, "/nonexistent/python3").is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
