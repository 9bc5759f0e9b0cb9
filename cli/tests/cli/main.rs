//! Every `bridge` command, run as a user would: the real binary, moto for SSM, local stand-ins.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

mod commands;
mod local;
mod operations;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use testkit::process::workspace_root;
use testkit::vwo::FakeVwo;

pub(crate) fn bridge<S: AsRef<std::ffi::OsStr>>(args: &[S], env: &[(String, String)]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args(args)
        .current_dir(workspace_root())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .output()
        .expect("bridge runs")
}

pub(crate) fn text(o: &Output) -> String {
    testkit::process::output_text(o)
}

pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("bridge-cli-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) struct Local {
    pub(crate) child: Child,
    pub(crate) base: String,
    pub(crate) secrets: PathBuf,
}

impl Drop for Local {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn start_local(dir: &Path) -> Local {
    start_local_with(dir, &[])
}

pub(crate) fn start_local_with(dir: &Path, extra: &[&str]) -> Local {
    let secrets = dir.join("secrets.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_bridge"))
        .args([
            "local",
            "--port",
            "0",
            "--secrets",
            secrets.to_str().unwrap(),
        ])
        .args(extra)
        .current_dir(workspace_root())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let first = lines.next().expect("bridge local prints its URLs").unwrap();
    let url = first.split_whitespace().last().unwrap();
    let base = url.split("/sentry-to-vwo").next().unwrap().to_owned();
    std::thread::spawn(move || for _ in lines {});
    Local {
        child,
        base,
        secrets,
    }
}

pub(crate) async fn get_json(url: &str) -> serde_json::Value {
    testkit::http_client()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

pub(crate) fn moto_env() -> Vec<(String, String)> {
    testkit::moto::shared().aws_env()
}
