//! Evaluation tracking with the real packages: the Node and Python suites of `integrations/`
//! run VWO's SDKs against the VWO stand-in's settings file and Sentry's SDKs against the Sentry
//! stand-in, which checks every envelope and keeps the events. Each suite asserts what its events
//! carry; this test also asserts, from the stand-ins' side, that both SDKs really were used.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failure is a panic

use std::process::Output;
use std::time::Duration;

use tokio::process::Command;

use serde_json::Value;
use testkit::nodetools::{self, Install, NodeTools};
use testkit::process::workspace_root;
use testkit::sentry::FakeSentry;
use testkit::vwo::{FakeVwo, ACCOUNT_ID};

/// The stand-ins, with the flags the suites evaluate: `search-v2` on, `checkout-new-flow` off,
/// and `flag-0000` … `flag-0119` on (for the 100-flag cap).
struct StandIns {
    vwo: FakeVwo,
    sentry: FakeSentry,
}

impl StandIns {
    async fn start() -> StandIns {
        let vwo = FakeVwo::start("evaluation-tracking-token").await;
        vwo.add_flag("search-v2", true);
        vwo.add_flag("checkout-new-flow", false);
        vwo.add_many_flags(120);
        let sentry = FakeSentry::start("unused-signing-secret").await;
        StandIns { vwo, sentry }
    }

    /// What the suites read to find the stand-ins.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("VWO_GATEWAY_URL", self.vwo.settings_base_url()),
            ("VWO_SDK_KEY", self.vwo.sdk_key("production")),
            ("VWO_ACCOUNT_ID", ACCOUNT_ID.to_string()),
            ("SENTRY_DSN", self.sentry.dsn()),
            ("SENTRY_STANDIN_URL", format!("http://{}", self.sentry.addr)),
        ]
    }

    /// Both SDKs of one language were really used: VWO's read the settings file with the
    /// environment's SDK key, and Sentry's sent events carrying flags, none refused.
    fn assert_used(&self, vwo_sdk: &str, sentry_sdk: &str) {
        let reads = self.vwo.settings_reads();
        assert!(
            reads.iter().any(|r| {
                r.query_param("sn").as_deref() == Some(vwo_sdk)
                    && r.query_param("i").as_deref()
                        == Some(self.vwo.sdk_key("production").as_str())
            }),
            "{vwo_sdk} never read the settings file: {reads:?}"
        );
        let events: Vec<Value> = self
            .sentry
            .events()
            .into_iter()
            .filter(|e| {
                e["sdk"]["name"]
                    .as_str()
                    .is_some_and(|n| n.starts_with(sentry_sdk))
            })
            .collect();
        assert!(
            events.iter().any(|e| e["contexts"]["flags"]["values"]
                .as_array()
                .is_some_and(|v| !v.is_empty())),
            "no event from {sentry_sdk} carried flags: {events:?}"
        );
        assert_eq!(self.sentry.rejections(), Vec::<String>::new());
    }
}

/// A suite that takes longer than this is stuck (each runs in seconds).
const SUITE_TIMEOUT: Duration = Duration::from_secs(180);

/// Runs a suite to its end, killing it if it is stuck.
async fn run(mut command: Command) -> Output {
    command.kill_on_drop(true);
    tokio::time::timeout(SUITE_TIMEOUT, command.output())
        .await
        .expect("the suite finishes")
        .expect("the suite starts")
}

fn text(output: &Output) -> String {
    testkit::process::output_text(output)
}

#[tokio::test(flavor = "multi_thread")]
async fn the_python_integration_records_evaluations_with_the_real_sdks() {
    let tools = testkit::pytools::get().unwrap_or_else(|message| panic!("{message}"));
    let stand_ins = StandIns::start().await;
    let folder = workspace_root().join("integrations/python");
    let command = pytest(&tools.python, &folder.join("tests"), &folder, &stand_ins);
    assert_suite(&run(command).await, "7 passed", "the shared tools");
    stand_ins.assert_used("vwo-fme-python-sdk", "sentry.python");
}

/// `python -m pytest` of the suite `tests`, run from `cwd` with the stand-ins' addresses (add
/// arguments and variables).
fn pytest(
    python: &std::path::Path,
    tests: &std::path::Path,
    cwd: &std::path::Path,
    stand_ins: &StandIns,
) -> Command {
    let mut command = Command::new(python);
    command
        .args(["-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs"])
        .arg(tests)
        .current_dir(cwd)
        .envs(stand_ins.env());
    command
}

/// The suite (`what` says which) ended well, with `passed` and nothing skipped.
fn assert_suite(output: &Output, passed: &str, what: &str) {
    let report = text(output);
    assert!(output.status.success(), "{what}: {report}");
    assert!(report.contains(passed), "{what}: {report}");
    assert!(!report.contains("skipped"), "{what}: {report}");
}

/// VWO's Python SDK under each of its names, each version pinned: (distribution, the module the
/// application imports `init` from). Both distributions ship the modules `vwo` and `wingify`.
const VWO_PYTHON_SDKS: [(&str, &str); 2] = [
    ("vwo-fme-python-sdk==1.65.0", "vwo"),
    ("wingify-fme-python-sdk==1.65.0", "wingify"),
];

/// The suite once per VWO package name, each in a throwaway application of its own where pip
/// installs only that package, Sentry's SDK and the integration, as the README says; the tests
/// run from outside `integrations/python`, so the installed integration is what is imported. The
/// OpenFeature route needs VWO's provider, which depends on the old name: it runs in the test
/// above.
#[tokio::test(flavor = "multi_thread")]
async fn the_python_integration_works_with_either_vwo_package_installed_alone() {
    let tools = testkit::pytools::get().unwrap_or_else(|message| panic!("{message}"));
    let stand_ins = StandIns::start().await;
    for (package, module) in VWO_PYTHON_SDKS {
        let app = testkit::pytools::target_dir().join(format!("python-app-{module}"));
        let _ = std::fs::remove_dir_all(&app);
        let venv = |args: &[&str]| {
            let mut command = std::process::Command::new(&tools.python);
            command.args(["-m", "venv"]).args(args).arg(&app);
            command
        };
        testkit::process::run_ok(&mut venv(&[]), "python -m venv");
        let python = app.join("bin/python");
        let mut pip = std::process::Command::new(&python);
        pip.args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .args(["sentry-sdk==2.75.0", "pytest==9.2.0", package])
        .arg(workspace_root().join("integrations/python"));
        testkit::process::run_ok(&mut pip, "pip install");
        // Only the one distribution: the other name is not installed.
        let other = VWO_PYTHON_SDKS.iter().find(|(_, m)| *m != module).unwrap();
        let other = other.0.split("==").next().unwrap();
        let show = std::process::Command::new(&python)
            .args(["-m", "pip", "show", "--quiet", other])
            .output()
            .unwrap();
        assert!(
            !show.status.success(),
            "{other} was installed beside {package}"
        );
        let tests = app.join("tests");
        nodetools::copy_folder(&workspace_root().join("integrations/python/tests"), &tests)
            .unwrap();
        let mut command = pytest(&python, &tests, &app, &stand_ins);
        command
            .args(["-k", "not openfeature"])
            .env("VWO_SDK_MODULE", module);
        assert_suite(&run(command).await, "6 passed", package);
    }
    stand_ins.assert_used("vwo-fme-python-sdk", "sentry.python");
}

/// Copies the suite folder `suite` of `integrations/node` into the application `dir` and runs it
/// there with `node --test` (no `NODE_PATH`, the stand-ins' addresses and `env` in the
/// environment); every one of its `passed` tests must pass, none skipped.
async fn run_suite_in(
    node: &std::path::Path,
    dir: &std::path::Path,
    suite: &str,
    stand_ins: &StandIns,
    env: &[(&str, std::ffi::OsString)],
    passed: usize,
) {
    let tests = dir.join(suite);
    nodetools::copy_folder(&nodetools::integration_dir().join(suite), &tests).unwrap();
    let mut command = Command::new(node);
    command
        // VWO's SDK polls its settings with a timer that keeps the process alive (a server's
        // life): the runner ends the process once every test has finished.
        .args(["--test", "--test-force-exit", "--test-reporter=tap"])
        .arg(&tests)
        .current_dir(dir)
        .env_remove("NODE_PATH")
        .env(
            "README_PATH",
            nodetools::integration_dir().join("README.md"),
        )
        .envs(stand_ins.env())
        .envs(env.iter().map(|(k, v)| (k, v)));
    let output = run(command).await;
    let report = text(&output);
    assert!(output.status.success(), "{report}");
    let pass = format!("# pass {passed}");
    for line in [pass.as_str(), "# fail 0", "# skipped 0", "# cancelled 0"] {
        assert!(
            report.lines().any(|l| l.trim() == line),
            "{line}:\n{report}"
        );
    }
}

/// The Node suite (`integrations/node/test`), run inside a throwaway application that installed
/// the integration as its README says, with the application's own `@sentry/node`.
async fn node_suite_in_an_app(name: &str, sentry_version: &str, install: Install) {
    let (node, dir) = match nodetools::app(name, sentry_version, install)
        .unwrap_or_else(|message| panic!("{message}"))
    {
        NodeTools::Ready { node, dir } => (node, dir),
        NodeTools::Missing(why) if std::env::var_os("CI").is_none() => {
            eprintln!("SKIPPED the Node integration suite: {why}");
            return;
        }
        NodeTools::Missing(why) => panic!("CI must run the Node integration suite: {why}"),
    };
    let stand_ins = StandIns::start().await;
    run_suite_in(&node, &dir, "test", &stand_ins, &[], 13).await;
    stand_ins.assert_used("vwo-fme-node-sdk", "sentry.javascript.node");
}

#[tokio::test(flavor = "multi_thread")]
async fn node_linked_as_the_readme_says_with_the_oldest_supported_sentry() {
    node_suite_in_an_app("linked-sentry-9.31", "9.31.0", Install::Linked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_linked_as_the_readme_says_with_the_current_sentry() {
    node_suite_in_an_app("linked-sentry-11", "11.12.0", Install::Linked).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn node_packed_with_the_current_sentry() {
    node_suite_in_an_app("packed-sentry-11", "11.12.0", Install::Packed).await;
}

/// The browser suite (`integrations/node/browser-test`): pages of a throwaway web application
/// that linked the integration as its README says, in headless Chromium, with the application's
/// own `@sentry/browser` and `@sentry/react` at `sentry_version`.
async fn browser_suite_in_an_app(name: &str, sentry_version: &str) {
    let skipped = |why: String| {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must run the browser suite: {why}"
        );
        eprintln!("SKIPPED the browser suite: {why}");
    };
    let chromium = match nodetools::chromium() {
        Ok(path) => path,
        Err(why) => return skipped(why),
    };
    let (node, dir) = match nodetools::browser_app(name, sentry_version)
        .unwrap_or_else(|message| panic!("{message}"))
    {
        NodeTools::Ready { node, dir } => (node, dir),
        NodeTools::Missing(why) => return skipped(why),
    };
    let stand_ins = StandIns::start().await;
    let browser = [("CHROMIUM", chromium.into_os_string())];
    run_suite_in(&node, &dir, "browser-test", &stand_ins, &browser, 4).await;
    stand_ins.assert_used("vwo-fme-javascript-sdk", "sentry.javascript.browser");
    stand_ins.assert_used("vwo-fme-javascript-sdk", "sentry.javascript.react");
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_and_react_with_the_oldest_supported_sentry() {
    browser_suite_in_an_app("browser-sentry-9.31", "9.31.0").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn browser_and_react_with_the_current_sentry() {
    browser_suite_in_an_app("browser-sentry-11", "11.17.0").await;
}

/// Every file under `dir`, relative to it.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path.clone());
            }
            found.push(path.strip_prefix(dir).unwrap().display().to_string());
        }
    }
    found.sort();
    found
}

#[test]
fn installing_the_python_integration_as_its_readme_says_leaves_its_folder_unchanged() {
    let tools = testkit::pytools::get().unwrap_or_else(|message| panic!("{message}"));
    // A copy of the folder stands for the checkout's (a failing install must not dirty it).
    let scratch = testkit::pytools::target_dir().join("python-install-check");
    let _ = std::fs::remove_dir_all(&scratch);
    let folder = scratch.join("python");
    std::fs::create_dir_all(&folder).unwrap();
    let source = workspace_root().join("integrations/python");
    for name in ["pyproject.toml", "sentry_vwo_flags.py", "README.md"] {
        std::fs::copy(source.join(name), folder.join(name)).unwrap();
    }
    let before = files_under(&folder);
    let into = scratch.join("site-packages");
    testkit::process::run_ok(
        testkit::pytools::pip_install(tools)
            .arg("--no-deps")
            .arg("--target")
            .arg(&into)
            .arg(&folder),
        "pip install",
    );
    assert!(into.join("sentry_vwo_flags.py").is_file());
    assert_eq!(
        files_under(&folder),
        before,
        "pip install left files in the folder"
    );
}
