//! `bridge`: the operator CLI of sentry-vwo-bridge.
//!
//! Exit codes: 0 success; 1 the check, delivery or demo found a problem; 2 bad usage or input.

mod check;
mod dlq;
mod local;
mod rotate;
mod secrets_io;
mod send;
mod try_it;
mod urls;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

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
        /// Local secrets, created with random values on first run (git-ignored).
        #[arg(long, default_value = ".dev/secrets.json")]
        secrets: PathBuf,
    },
    /// Send a VWO webhook, a signed Sentry alert and another webhook to `bridge local`, and explain.
    Try {
        /// Where `bridge local` listens.
        #[arg(long, default_value = "http://127.0.0.1:9000")]
        url: String,
        /// The secrets file `bridge local` uses.
        #[arg(long, default_value = ".dev/secrets.json")]
        secrets: PathBuf,
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
    /// Put a new secret in Parameter Store, keeping the old one under `<name>/previous`.
    Rotate {
        /// The parameter, e.g. /sentry-vwo-bridge/vwo-webhook-secret.
        #[arg(long)]
        param: String,
        /// Read the new value from this file.
        #[arg(long, conflicts_with = "generate")]
        value_file: Option<PathBuf>,
        /// Generate a random 64-hex-digit value.
        #[arg(long)]
        generate: bool,
        /// Do not keep the old value under `<name>/previous`.
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
    /// The local run's secrets file (for `--local-secret`).
    #[arg(long, default_value = ".dev/secrets.json")]
    local_secrets_file: PathBuf,
}

#[derive(Clone, Copy, ValueEnum)]
enum As {
    Sentry,
    Vwo,
}

fn usage_error(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(2)
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Local { port, secrets } => {
            let started = local::serve(port, &secrets, |addr| {
                println!("Kill switch (Sentry → VWO):      http://{addr}/sentry-to-vwo?feature=checkout-new-flow&environment=production");
                println!("Change tracking (VWO → Sentry):  http://{addr}/vwo-to-sentry?environment=production");
                println!("Stand-ins: VWO with flags checkout-new-flow (on) and search-v2 (off), Sentry, DynamoDB (moto).");
                println!("Secrets: {} (random, git-ignored). Nothing leaves this machine.", secrets.display());
                println!("Next, in another terminal:  cargo run -p bridge -- try --url http://{addr}");
            })
            .await;
            match started {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => usage_error(e),
            }
        }
        Command::Try { url, secrets } => {
            let mut say = |line: &str| println!("{line}");
            match try_it::run(&url, &secrets, Path::new("."), &mut say).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Url { target } => {
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
            };
            match url {
                Ok(url) => {
                    println!("{url}");
                    ExitCode::SUCCESS
                }
                Err(e) => usage_error(e),
            }
        }
        Command::Sign {
            payload,
            secret,
            local,
        } => {
            let body = match std::fs::read(&payload) {
                Ok(b) => b,
                Err(e) => return usage_error(format!("{}: {e}", payload.display())),
            };
            match secrets_io::secret(
                secret.secret_file.as_deref(),
                secret.secret_param.as_deref(),
                secret
                    .local_secret
                    .as_deref()
                    .map(|name| (name, local.local_secrets_file.as_path())),
            )
            .await
            {
                Ok(s) => {
                    println!(
                        "{}",
                        bridge_shared::signature::sign_hex(s.as_bytes(), &body)
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => usage_error(e),
            }
        }
        Command::Send {
            url,
            payload,
            sender,
            resource,
            yes,
            secret,
            local,
        } => {
            let body = match std::fs::read(&payload) {
                Ok(b) => b,
                Err(e) => return usage_error(format!("{}: {e}", payload.display())),
            };
            let resource = resource
                .or_else(|| send::resource_from_file_name(&payload).map(str::to_owned))
                .unwrap_or_else(|| "metric_alert".to_owned());
            if matches!(sender, As::Sentry) && !yes {
                if let Some(risk) = send::override_risk(&url, &body, &resource) {
                    return usage_error(risk);
                }
            }
            let secret = match secrets_io::secret(
                secret.secret_file.as_deref(),
                secret.secret_param.as_deref(),
                secret
                    .local_secret
                    .as_deref()
                    .map(|name| (name, local.local_secrets_file.as_path())),
            )
            .await
            {
                Ok(s) => s,
                Err(e) => return usage_error(e),
            };
            let sender = match sender {
                As::Sentry => send::Sender::Sentry,
                As::Vwo => send::Sender::Vwo,
            };
            match send::send(&url, &body, sender, &resource, &secret).await {
                Ok(d) => {
                    println!("HTTP {}", d.status);
                    if let Some(reason) = &d.hook_error {
                        println!("Sentry-Hook-Error: {reason}");
                    }
                    println!("{}", d.body);
                    if (200..300).contains(&d.status) {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Dlq { url, redrive_to } => match redrive_to {
            None => match dlq::list(&url).await {
                Ok(lines) if lines.is_empty() => {
                    println!("no dead-lettered kills");
                    ExitCode::SUCCESS
                }
                Ok(lines) => {
                    for line in lines {
                        println!("{line}");
                    }
                    ExitCode::FAILURE
                }
                Err(e) => usage_error(e),
            },
            Some(to) => match dlq::redrive(&url, &to).await {
                Ok(moved) => {
                    println!("{moved} kill(s) moved back to the toggle queue");
                    ExitCode::SUCCESS
                }
                Err(e) => usage_error(e),
            },
        },
        Command::Check {
            prefix,
            vwo_api_base_url,
            account,
        } => {
            let parameters = check::default_parameters(&prefix);
            let token_param = parameters[1].0.clone();
            match check::run(
                &parameters,
                &token_param,
                vwo_api_base_url.as_deref(),
                &account,
            )
            .await
            {
                Ok(findings) => {
                    for f in &findings {
                        println!("{} {}", if f.ok { "ok  " } else { "FAIL" }, f.what);
                        if let Some(fix) = &f.fix {
                            println!("     fix: {fix}");
                        }
                    }
                    if findings.iter().all(|f| f.ok) {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    }
                }
                Err(e) => usage_error(e),
            }
        }
        Command::Rotate {
            param,
            value_file,
            generate,
            no_previous,
            show_secret,
        } => {
            let value = match (value_file, generate) {
                (Some(path), false) => secrets_io::from_file(&path),
                (None, true) => secrets_io::random_hex(),
                _ => return usage_error("give --value-file FILE or --generate"),
            };
            let value = match value {
                Ok(v) => v,
                Err(e) => return usage_error(e),
            };
            match rotate::rotate(&param, &value, !no_previous).await {
                Ok(rotation) => {
                    println!("Stored a new value in {param}.");
                    if rotation.kept_previous {
                        println!("Kept the old value in {param}/previous.");
                    }
                    if show_secret {
                        println!("New value: {}", rotation.new_value);
                    }
                    for step in rotate::next_steps(&param, rotation.kept_previous) {
                        println!("Next: {step}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
