//! Building and running the real function binaries, with their log lines captured, and running
//! other commands the tests need.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// The workspace's root folder.
pub fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("testkit lives inside the workspace")
        .to_path_buf()
}

/// The binary a test runs: `built` (what Cargo built for this test, `env!("CARGO_BIN_EXE_<name>")`),
/// or, with `BRIDGE_E2E_BIN_DIR` set (e.g. `target/lambda`), the artifact Lambda runs:
/// `<dir>/<name>/bootstrap`, as `cargo lambda build` lays it out; see [`FunctionProcess::spawn`]
/// for running it under an emulator.
pub fn artifact(name: &str, built: &str) -> PathBuf {
    match std::env::var("BRIDGE_E2E_BIN_DIR") {
        Ok(dir) => {
            let dir = PathBuf::from(dir);
            let dir = if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            };
            dir.join(name).join("bootstrap")
        }
        Err(_) => PathBuf::from(built),
    }
}

/// Path of the release build of binary `name` (the host's target), built with `cargo build --release`.
pub fn release_binary(name: &str) -> PathBuf {
    let root = workspace_root();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--quiet", "--release", "-p", name, "--bin", name])
        .status()
        .expect("cargo runs");
    assert!(status.success(), "cargo build --release of {name} failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    target.join("release").join(name)
}

/// A running function binary. Its stdout and stderr lines are kept; it is killed on drop.
pub struct FunctionProcess {
    child: Child,
    logs: Arc<Mutex<Vec<String>>>,
    spawned_at: std::time::Instant,
}

impl FunctionProcess {
    /// Starts `binary` with exactly `env` (plus `PATH`), capturing what it prints.
    ///
    /// With `BRIDGE_E2E_RUNNER` set (e.g. `qemu-aarch64 -L /usr/aarch64-linux-gnu`), the binary
    /// runs under that command: CI runs the end-to-end tests once against the arm64 artifacts.
    pub fn spawn(binary: &PathBuf, env: &[(String, String)]) -> FunctionProcess {
        let runner = std::env::var("BRIDGE_E2E_RUNNER").unwrap_or_default();
        let mut words = runner.split_whitespace();
        let mut command = match words.next() {
            Some(program) => {
                let mut c = Command::new(program);
                c.args(words).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let spawned_at = std::time::Instant::now();
        let mut child = command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("function binary starts");
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    logs.lock().unwrap_or_else(|p| p.into_inner()).push(line);
                }
            });
        }
        FunctionProcess {
            child,
            logs,
            spawned_at,
        }
    }

    /// When the process was spawned (just before `fork`/`exec`).
    pub fn spawned_at(&self) -> std::time::Instant {
        self.spawned_at
    }

    /// Every line printed so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The lines printed so far, once `done` holds for them (or after 10 s, whatever they are).
    ///
    /// A function may write its log line after the Runtime API has its answer, and a reader
    /// thread copies the pipe: a test that asserts on a line right after an invocation waits
    /// here for it rather than racing the pipe.
    pub fn logs_until(&self, done: impl Fn(&[String]) -> bool) -> Vec<String> {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let lines = self.logs();
            if done(&lines) || std::time::Instant::now() >= deadline {
                return lines;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// CPU time all of the process's threads have run so far (see [`cpu_time`]).
    pub fn cpu_time(&self) -> Option<std::time::Duration> {
        cpu_time(self.child.id())
    }

    /// Peak resident memory of the process so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }

    /// Whether the process has exited.
    pub fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }
}

impl Drop for FunctionProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// CPU time all threads of process `pid` have run so far: the sum of the first field of
/// `/proc/<pid>/task/*/schedstat` (nanoseconds on the CPU). Linux only; `None` elsewhere or once
/// the process is gone.
pub fn cpu_time(pid: u32) -> Option<std::time::Duration> {
    let mut total = 0u64;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).ok()? {
        let path = task.ok()?.path().join("schedstat");
        // A thread that ended since read_dir has no file any more: it no longer counts.
        if let Ok(text) = std::fs::read_to_string(path) {
            total += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
    }
    Some(std::time::Duration::from_nanos(total))
}

/// What a finished command wrote: its standard output, then its standard error.
pub fn output_text(output: &std::process::Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Runs `command` to its end; panics, showing its standard error, when it cannot start or fails.
/// `what` names it in the message.
pub fn run_ok(command: &mut Command, what: &str) -> std::process::Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{what} did not start: {e}"));
    assert!(
        output.status.success(),
        "{what} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_has_run_on_the_cpu() {
        let before = super::cpu_time(std::process::id()).unwrap();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(x);
        assert!(super::cpu_time(std::process::id()).unwrap() > before);
    }
}
