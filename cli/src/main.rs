//! `bridge`: the operator CLI of sentry-vwo-bridge.
//!
//! Exit codes (one policy, decided in [`failure::Failure::exit_code`]): 0 success; 1 it ran and
//! something it talks to failed or was found wrong; 2 it could not start (usage, input, tools).

mod check;
mod dlq;
mod event;
mod failure;
mod local;
mod options;
mod rotate;
mod secrets_io;
mod send;
mod try_app;
mod try_it;
mod urls;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use failure::Failure;

/// Operator tools for sentry-vwo-bridge. No secret is printed unless a flag asks for it.
#[derive(Parser)]
#[command(name = "bridge", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run both functions on 127.0.0.1 with local stand-ins for VWO, Sentry and DynamoDB.
    Local {
        /// Port to listen on (0 picks a free one).
        #[arg(long, default_value_t = 9000)]
        port: u16,
        /// Local secrets, created with random values on first run (git-ignored)
        /// [default: .dev/secrets.json in the project]
        #[arg(long)]
        secrets: Option<PathBuf>,
        /// Also write the configuration for `cargo lambda watch --env-file FILE`, so functions it
        /// serves use this run's stand-ins (secrets put in the local Parameter Store).
        #[arg(long)]
        env_file: Option<PathBuf>,
    },
    /// Tell the whole story against `bridge local`: a flag switched on in VWO, the application
    /// failing with it (the real Python SDKs), Sentry naming it as the suspect, the alert, the kill.
    Try {
        /// Where `bridge local` listens.
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        url: String,
        /// The secrets file `bridge local` uses [default: .dev/secrets.json in the project]
        #[arg(long)]
        secrets: Option<PathBuf>,
        /// Send the alert as a dry run (`dryRun=true`): the kill switch says what it would do and
        /// switches nothing, so the story ends there.
        #[arg(long)]
        dry_run: bool,
        /// The application that fails with the flag: a Python service, or a page in headless
        /// Chromium (needs Node, npm and Debian's `chromium`).
        #[arg(long, value_enum, default_value_t)]
        app: try_app::AppKind,
    },
    /// Print what an alert rule's drop-down shows (environments, flags, rules), asking the kill
    /// switch as Sentry does, e.g. `bridge options flags --environment production`.
    Options {
        /// The drop-down.
        #[arg(value_enum)]
        list: OptionsList,
        /// The kill switch's function URL (stack output KillSwitchUrl; default: `bridge local`'s).
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        url: String,
        /// The chosen environment (for flags and rules): its id or name.
        #[arg(long)]
        environment: Option<String>,
        /// The chosen flag (for rules): its key.
        #[arg(long)]
        feature: Option<String>,
        /// What the user types in the drop-down.
        #[arg(long)]
        query: Option<String>,
        /// The client secret's SSM parameter [default: the local run's secret]
        #[arg(long)]
        secret_param: Option<String>,
        #[command(flatten)]
        local: LocalSecretsFile,
    },
    /// Print the webhook URL to paste into Sentry (kill switch) or VWO (change tracking).
    Url {
        #[command(subcommand)]
        target: UrlTarget,
    },
    /// Print the Sentry-Hook-Signature of a payload file.
    Sign {
        /// The payload (exact bytes are signed).
        #[arg(long)]
        payload: PathBuf,
        #[command(flatten)]
        secret: SecretSource,
        #[command(flatten)]
        local: LocalSecretsFile,
    },
    /// Send a payload file to a URL as Sentry (signed) or VWO (x-vwo-auth) would.
    Send {
        /// Function URL, with its query string.
        #[arg(long)]
        url: String,
        /// The payload file.
        #[arg(long)]
        payload: PathBuf,
        /// Who to act as.
        #[arg(long = "as", value_enum, default_value_t = As::Sentry)]
        sender: As,
        /// Sentry-Hook-Resource when acting as Sentry (default: from the payload's file name,
        /// e.g. `event_alert.triggered.json` → `event_alert`; else `metric_alert`).
        #[arg(long)]
        resource: Option<String>,
        /// Send even if the payload's alert-rule settings would act on another flag than the
        /// URL names (only asked for URLs off this machine).
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        secret: SecretSource,
        #[command(flatten)]
        local: LocalSecretsFile,
    },
    /// Print a Lambda Function URL event for a payload, signed now, for `cargo lambda invoke
    /// --data-file` (a signed event must be fresh: the kill switch refuses old timestamps).
    Event {
        /// The payload file (its exact bytes become the body).
        #[arg(long)]
        payload: PathBuf,
        /// Who to act as.
        #[arg(long = "as", value_enum, default_value_t = As::Sentry)]
        sender: As,
        /// The query string of the URL, e.g. `feature=checkout-new-flow&environment=production`.
        #[arg(long, default_value = "")]
        query: String,
        /// Sentry-Hook-Resource when acting as Sentry (default: from the payload's file name).
        #[arg(long)]
        resource: Option<String>,
        #[command(flatten)]
        secret: SecretSource,
        #[command(flatten)]
        local: LocalSecretsFile,
    },
    /// Check the SSM parameters and VWO access with the token; print the fix for each problem.
    Check {
        /// Prefix of the four parameters (the template's default).
        #[arg(long, default_value = "/sentry-vwo-bridge")]
        prefix: String,
        /// VWO API root.
        #[arg(long)]
        vwo_api_base_url: Option<String>,
        /// VWO workspace.
        #[arg(long, default_value = "current")]
        account: String,
        /// Also print the deployed kill switch's guard rails (KILLABLE_FLAGS, ENABLE_ALLOWED_IN,
        /// MAX_RESTORES_PER_DAY, DRY_RUN): its name or ARN, the stack's `KillSwitchFunctionName`.
        #[arg(long)]
        kill_switch_function: Option<String>,
    },
    /// List or redrive the kills the worker gave up on (the stack's `ToggleDeadLetterQueueUrl`).
    Dlq {
        /// The dead-letter queue's URL.
        #[arg(long)]
        url: String,
        /// Move them back to this queue (the stack's `ToggleQueueUrl`) to be tried again.
        #[arg(long)]
        redrive_to: Option<String>,
    },
    /// Put a new secret in Parameter Store (the VWO webhook secret keeps its old value under
    /// `<name>/previous`, which change tracking accepts until you delete it).
    Rotate {
        /// The parameter, e.g. /sentry-vwo-bridge/vwo-webhook-secret.
        #[arg(long)]
        param: String,
        /// Read the new value from this file (first line).
        #[arg(long, conflicts_with = "generate")]
        value_file: Option<PathBuf>,
        /// Generate a random 64-hex-digit value (only for the secrets we choose: the VWO webhook
        /// secret and the Sentry signing secret).
        #[arg(long)]
        generate: bool,
        /// VWO webhook secret only: do not keep the old value under `<name>/previous`.
        #[arg(long)]
        no_previous: bool,
        /// Print the new value (it is otherwise never printed).
        #[arg(long)]
        show_secret: bool,
    },
}

#[derive(Subcommand)]
enum UrlTarget {
    /// The kill switch URL for Sentry's internal integration.
    Sentry {
        /// The kill switch's function URL (stack output KillSwitchUrl).
        #[arg(long)]
        function_url: String,
        /// VWO flag key or id.
        #[arg(long)]
        feature: String,
        /// VWO environment key, id or SDK key.
        #[arg(long)]
        environment: String,
        /// Turn the flag on instead of off.
        #[arg(long)]
        enable: bool,
        /// VWO workspace id (default: the function's VWO_ACCOUNT_ID).
        #[arg(long)]
        account: Option<String>,
    },
    /// The change-tracking URL for one VWO environment's webhook.
    Vwo {
        /// Change tracking's function URL (stack output ChangeTrackingUrl).
        #[arg(long)]
        function_url: String,
        /// VWO environment key or id.
        #[arg(long)]
        environment: String,
    },
}

#[derive(clap::Args)]
#[group(required = true, multiple = false)]
struct SecretSource {
    /// Read the secret from this file (first line).
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// Read the secret from this SSM parameter.
    #[arg(long)]
    secret_param: Option<String>,
    /// Use a secret of the local run by name (`sentry_client_secret`, `vwo_webhook_secret`, ...).
    #[arg(long)]
    local_secret: Option<String>,
}

#[derive(clap::Args)]
struct LocalSecretsFile {
    /// The local run's secrets file, for `--local-secret` [default: .dev/secrets.json in the project]
    #[arg(long)]
    local_secrets_file: Option<PathBuf>,
}

#[derive(Clone, Copy, ValueEnum)]
enum OptionsList {
    Environments,
    Flags,
    Rules,
}

impl From<OptionsList> for sentry_to_vwo::rule_form::options::List {
    fn from(list: OptionsList) -> Self {
        use sentry_to_vwo::rule_form::options::List;
        match list {
            OptionsList::Environments => List::Environments,
            OptionsList::Flags => List::Flags,
            OptionsList::Rules => List::Rules,
        }
    }
}

#[derive(Clone, Copy, ValueEnum)]
enum As {
    Sentry,
    Vwo,
}

/// The project the command runs in: the nearest directory at or above the current one with the
/// bridge's `template.yaml` and `Cargo.toml`, so `.dev/` and `events/` are found from any
/// subdirectory (running from `cli/` creates no `cli/.dev/`). Outside a checkout: the current
/// directory.
fn project_root() -> PathBuf {
    let here = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    here.ancestors()
        .find(|dir| dir.join("template.yaml").is_file() && dir.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .unwrap_or(here)
}

/// `given`, or the local run's secrets file in the project.
fn local_secrets(given: Option<PathBuf>) -> PathBuf {
    given.unwrap_or_else(|| project_root().join(".dev").join("secrets.json"))
}

/// The secret `--secret-file`, `--secret-param` or `--local-secret` names.
async fn read_secret(source: SecretSource, local: LocalSecretsFile) -> Result<String, Failure> {
    let file = local_secrets(local.local_secrets_file);
    Ok(secrets_io::secret(
        source.secret_file.as_deref(),
        source.secret_param.as_deref(),
        source
            .local_secret
            .as_deref()
            .map(|name| (name, file.as_path())),
    )
    .await?)
}

/// A payload file's bytes.
fn read_payload(path: &Path) -> Result<Vec<u8>, Failure> {
    std::fs::read(path).map_err(|e| Failure::Usage(format!("cannot read {}: {e}", path.display())))
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Cli::parse()).await {
        Ok(code) => code,
        Err(failure) => {
            eprintln!("error: {failure}");
            failure.exit_code()
        }
    }
}

async fn run(cli: Cli) -> Result<ExitCode, Failure> {
    match cli.command {
        Command::Local {
            port,
            secrets,
            env_file,
        } => local_command(port, secrets, env_file).await,
        Command::Try {
            url,
            secrets,
            dry_run,
            app,
        } => try_command(url, secrets, try_it::Options { dry_run, app }).await,
        Command::Options {
            list,
            url,
            environment,
            feature,
            query,
            secret_param,
            local,
        } => {
            let asked = options::Asked {
                environment: environment.as_deref(),
                feature: feature.as_deref(),
                query: query.as_deref(),
            };
            options_command(list, url, asked, secret_param, local).await
        }
        Command::Url { target } => url_command(target).await,
        Command::Sign {
            payload,
            secret,
            local,
        } => sign_command(payload, secret, local).await,
        Command::Send {
            url,
            payload,
            sender,
            resource,
            yes,
            secret,
            local,
        } => {
            let posting = Posting {
                url,
                payload,
                resource,
            };
            send_command(posting, sender, yes, secret, local).await
        }
        Command::Event {
            payload,
            sender,
            query,
            resource,
            secret,
            local,
        } => event_command(payload, sender, query, resource, secret, local).await,
        Command::Dlq { url, redrive_to } => dlq_command(url, redrive_to).await,
        Command::Check {
            prefix,
            vwo_api_base_url,
            account,
            kill_switch_function,
        } => check_command(prefix, vwo_api_base_url, account, kill_switch_function).await,
        Command::Rotate {
            param,
            value_file,
            generate,
            no_previous,
            show_secret,
        } => rotate_command(param, value_file, generate, no_previous, show_secret).await,
    }
}

/// `bridge local`: the whole bridge and its stand-ins on this machine.
async fn local_command(
    port: u16,
    secrets: Option<PathBuf>,
    env_file: Option<PathBuf>,
) -> Result<ExitCode, Failure> {
    let secrets = local_secrets(secrets);
    let shown = secrets.clone();
    let env_shown = env_file.clone();
    local::serve(port, &secrets, env_file.as_deref(), |addr| {
println!("Kill switch (Sentry → VWO):      http://{addr}/sentry-to-vwo?feature=checkout-new-flow&environment=production");
println!("Change tracking (VWO → Sentry):  http://{addr}/vwo-to-sentry?environment=production");
println!("Stand-ins: VWO with flags checkout-new-flow (on) and search-v2 (off), Sentry, DynamoDB (moto).");
println!("Secrets: {} (random, git-ignored). Nothing leaves this machine.", shown.display());
println!("Next, in another terminal:  cargo run -p bridge -- try --url http://{addr}");
if let Some(path) = &env_shown {
    println!("For cargo lambda:  cargo lambda watch --env-file {}  (this run's stand-ins; see docs/cargo-lambda.md)", path.display());
}
    })
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// `bridge try`: the story, told against a running `bridge local`.
async fn try_command(
    url: String,
    secrets: Option<PathBuf>,
    options: try_it::Options,
) -> Result<ExitCode, Failure> {
    let mut say = |line: &str| println!("{line}");
    try_it::run(
        &url,
        &local_secrets(secrets),
        &project_root(),
        options,
        &mut say,
    )
    .await?;
    Ok(ExitCode::SUCCESS)
}

/// `bridge options`: a drop-down's choices, as Sentry's alert-rule form asks for them.
async fn options_command(
    list: OptionsList,
    url: String,
    asked: options::Asked<'_>,
    secret_param: Option<String>,
    local: LocalSecretsFile,
) -> Result<ExitCode, Failure> {
    let source = SecretSource {
        secret_file: None,
        local_secret: secret_param
            .is_none()
            .then(|| "sentry_client_secret".to_owned()),
        secret_param,
    };
    let secret = read_secret(source, local).await?;
    let choices = options::fetch(&url, list.into(), &asked, &secret).await?;
    print!("{}", options::render(&choices));
    Ok(ExitCode::SUCCESS)
}

/// `bridge url`: the URL to paste into Sentry or VWO.
async fn url_command(target: UrlTarget) -> Result<ExitCode, Failure> {
    let url = match target {
        UrlTarget::Sentry {
            function_url,
            feature,
            environment,
            enable,
            account,
        } => urls::sentry_webhook_url(
            &function_url,
            &feature,
            &environment,
            enable,
            account.as_deref(),
        ),
        UrlTarget::Vwo {
            function_url,
            environment,
        } => urls::vwo_webhook_url(&function_url, &environment),
    }?;
    println!("{url}");
    Ok(ExitCode::SUCCESS)
}

/// `bridge sign`: a payload's signature.
async fn sign_command(
    payload: PathBuf,
    secret: SecretSource,
    local: LocalSecretsFile,
) -> Result<ExitCode, Failure> {
    let body = read_payload(&payload)?;
    let secret = read_secret(secret, local).await?;
    println!(
        "{}",
        bridge_platform::signature::sign_hex(secret.as_bytes(), &body)
    );
    Ok(ExitCode::SUCCESS)
}

/// What `bridge send` posts where: the URL, the payload's file and its Sentry resource.
struct Posting {
    url: String,
    payload: PathBuf,
    resource: Option<String>,
}

/// `bridge send`: a signed payload posted as Sentry or VWO would.
async fn send_command(
    posting: Posting,
    sender: As,
    yes: bool,
    secret: SecretSource,
    local: LocalSecretsFile,
) -> Result<ExitCode, Failure> {
    let Posting {
        url,
        payload,
        resource,
    } = posting;
    url::Url::parse(&url)
        .map_err(|e| Failure::Usage(format!("--url {url:?} is not a URL ({e})")))?;
    let body = read_payload(&payload)?;
    let resource = resource
        .or_else(|| send::resource_from_file_name(&payload).map(str::to_owned))
        .unwrap_or_else(|| "metric_alert".to_owned());
    if matches!(sender, As::Sentry) && !yes {
        if let Some(risk) = send::override_risk(&url, &body, &resource) {
            return Err(Failure::Usage(risk));
        }
    }
    let secret = read_secret(secret, local).await?;
    let sender = match sender {
        As::Sentry => send::Sender::Sentry,
        As::Vwo => send::Sender::Vwo,
    };
    let delivery = send::send(&url, &body, sender, &resource, &secret).await?;
    println!("HTTP {}", delivery.status);
    if let Some(reason) = &delivery.hook_error {
        println!("Sentry-Hook-Error: {reason}");
    }
    println!("{}", delivery.body);
    if (200..300).contains(&delivery.status) {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// `bridge event`: a payload as a Function URL event.
async fn event_command(
    payload: PathBuf,
    sender: As,
    query: String,
    resource: Option<String>,
    secret: SecretSource,
    local: LocalSecretsFile,
) -> Result<ExitCode, Failure> {
    let body = read_payload(&payload)?;
    let resource = resource
        .or_else(|| send::resource_from_file_name(&payload).map(str::to_owned))
        .unwrap_or_else(|| "metric_alert".to_owned());
    let secret = read_secret(secret, local).await?;
    let sender = match sender {
        As::Sentry => send::Sender::Sentry,
        As::Vwo => send::Sender::Vwo,
    };
    let event = event::function_url_event(
        &body,
        sender,
        query.trim_start_matches('?'),
        &resource,
        &secret,
        bridge_platform::clock::unix_secs(),
    );
    println!("{event:#}");
    Ok(ExitCode::SUCCESS)
}

/// `bridge dlq`: the dead-lettered kills, listed or moved back.
async fn dlq_command(url: String, redrive_to: Option<String>) -> Result<ExitCode, Failure> {
    match redrive_to {
        None => {
            let lines = dlq::list(&url).await?;
            if lines.is_empty() {
                println!("no dead-lettered kills");
                return Ok(ExitCode::SUCCESS);
            }
            for line in lines {
                println!("{line}");
            }
            Ok(ExitCode::FAILURE)
        }
        Some(to) => {
            let moved = dlq::redrive(&url, &to).await?;
            println!("{moved} kill(s) moved back to the toggle queue");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// `bridge check`: the deployment's parameters, VWO token and guard rails checked.
async fn check_command(
    prefix: String,
    vwo_api_base_url: Option<String>,
    account: String,
    kill_switch_function: Option<String>,
) -> Result<ExitCode, Failure> {
    let parameters = check::default_parameters(&prefix);
    let token_param = parameters[1].0.clone();
    let mut findings = check::run(
        &parameters,
        &token_param,
        vwo_api_base_url.as_deref(),
        &account,
    )
    .await?;
    if let Some(function) = kill_switch_function {
        findings.extend(check::guard_rails(&function).await);
    }
    for f in &findings {
        println!("{} {}", if f.ok { "ok  " } else { "FAIL" }, f.what);
        if let Some(fix) = &f.fix {
            println!("     fix: {fix}");
        }
    }
    if findings.iter().all(|f| f.ok) {
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// `bridge rotate`: a secret rotated in Parameter Store.
async fn rotate_command(
    param: String,
    value_file: Option<PathBuf>,
    generate: bool,
    no_previous: bool,
    show_secret: bool,
) -> Result<ExitCode, Failure> {
    let kind = rotate::plan(&param, generate)?;
    let value = match (value_file, generate) {
        (Some(path), false) => secrets_io::from_file(&path)?,
        (None, true) => secrets_io::random_hex()?,
        _ => {
            return Err(Failure::Usage(
                "give --value-file FILE or --generate".into(),
            ))
        }
    };
    let rotation = rotate::rotate(&param, kind, &value, !no_previous).await?;
    println!("Stored a new value in {param}.");
    if rotation.kept_previous {
        println!("Kept the old value in {param}/previous.");
    }
    if show_secret {
        println!("New value: {}", rotation.new_value);
    }
    for step in rotate::next_steps(&param, kind, rotation.kept_previous) {
        println!("Next: {step}");
    }
    Ok(ExitCode::SUCCESS)
}
