//! The application of `bridge try`'s story (step 3): it evaluates the flag with VWO's SDK, fails
//! when it is on, and its Sentry SDK sends the error with the evaluation. Two of them: the Python
//! integration's example (`integrations/python/example_app.py`, VWO's and Sentry's Python SDKs
//! from `target/pytools`), or a page in headless Chromium (`--app browser`: the Node package's
//! browser export with VWO's browser build and `@sentry/browser`, built as the README says, in a
//! web application under `target/node-apps/try-browser`).

use std::path::Path;
use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;

use crate::failure::Failure;

/// `@sentry/browser` of the story's web application.
const BROWSER_SENTRY: &str = "11.17.0";

/// Which application the story runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum AppKind {
    /// A Python service: VWO's and Sentry's Python SDKs with `integrations/python`.
    #[default]
    Python,
    /// A page in headless Chromium: VWO's and Sentry's browser SDKs with `integrations/node`.
    Browser,
}

impl AppKind {
    /// The application, for the story's step 3.
    pub fn describe(self) -> &'static str {
        match self {
            AppKind::Python => "VWO's and Sentry's Python SDKs with integrations/python",
            AppKind::Browser => {
                "a page in headless Chromium: VWO's and Sentry's browser SDKs with integrations/node"
            }
        }
    }
}

/// What the application printed: whether the flag was on, and the error it hit.
pub struct AppRun {
    /// The flag's evaluation.
    pub enabled: bool,
    /// The error's message, when the flag was on.
    pub error: Option<String>,
}

/// Runs the `kind` application once against `bridge local`'s VWO and Sentry (`endpoints`, its
/// `/_local/endpoints` answer), the error marked with `run`, evaluating `flag`.
pub async fn run(
    kind: AppKind,
    endpoints: &Value,
    root: &Path,
    run: &str,
    flag: &str,
) -> Result<AppRun, Failure> {
    let text = |k: &str| endpoints[k].as_str().unwrap_or_default().to_owned();
    let mut command = match kind {
        AppKind::Python => python(root)?,
        AppKind::Browser => browser(root)?,
    };
    command
        .env("VWO_GATEWAY_URL", text("vwoGatewayUrl"))
        .env("VWO_SDK_KEY", text("vwoSdkKey"))
        .env("VWO_ACCOUNT_ID", text("vwoAccountId"))
        .env("SENTRY_DSN", text("sentryDsn"))
        .env("FLAG", flag)
        .env("RUN", run)
        .kill_on_drop(true);
    let output = tokio::time::timeout(Duration::from_secs(90), command.output())
        .await
        .map_err(|_| Failure::Failed("the application did not finish in 90 s".into()))?
        .map_err(|e| Failure::Failed(format!("could not run the application: {e}")))?;
    let printed: Value = String::from_utf8_lossy(&output.stdout)
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .ok_or_else(|| {
            Failure::Failed(format!(
                "the application printed no result: {}",
                String::from_utf8_lossy(&output.stderr).trim()
            ))
        })?;
    Ok(AppRun {
        enabled: printed["enabled"] == true,
        error: printed["error"].as_str().map(str::to_owned),
    })
}

/// The Python example, from the Python tools in `target/pytools`.
fn python(root: &Path) -> Result<Command, Failure> {
    let tools = testkit::pytools::get().map_err(Failure::Failed)?;
    let dir = root.join("integrations/python");
    let mut command = Command::new(&tools.python);
    command.arg(dir.join("example_app.py")).current_dir(&dir);
    Ok(command)
}

/// The browser page's runner (`integrations/node/browser-test/try-app.js`) inside the story's web
/// application, installed on first use; Chromium is the system's (`CHROMIUM`, else `chromium`).
fn browser(root: &Path) -> Result<Command, Failure> {
    let missing = |why: String| Failure::Usage(format!("`--app browser` needs {why}"));
    let chromium =
        testkit::nodetools::chromium().map_err(|why| missing(format!("Chromium: {why}")))?;
    let (node, dir) = match testkit::nodetools::browser_app("try-browser", BROWSER_SENTRY)
        .map_err(Failure::Failed)?
    {
        testkit::nodetools::NodeTools::Ready { node, dir } => (node, dir),
        testkit::nodetools::NodeTools::Missing(why) => return Err(missing(why)),
    };
    let integration = root.join("integrations/node");
    let runner = dir.join("browser-test");
    testkit::nodetools::copy_folder(&integration.join("browser-test"), &runner)
        .map_err(Failure::Failed)?;
    let mut command = Command::new(node);
    command
        .arg(runner.join("try-app.js"))
        .current_dir(&dir)
        .env_remove("NODE_PATH")
        .env("CHROMIUM", chromium)
        .env("README_PATH", integration.join("README.md"));
    Ok(command)
}
