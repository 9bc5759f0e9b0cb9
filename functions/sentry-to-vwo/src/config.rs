//! The kill switch's configuration, read once at cold start.

use std::collections::BTreeSet;
use std::time::Duration;

use bridge_platform::config::{self, Vars};
use bridge_platform::{Error, Result};
use bridge_vwo::config::Common;
use bridge_vwo::settings_file::fetch::SettingsSource;
use url::Url;

use crate::alert::guard::guard_rails::PatternList;

/// `resource.action` pairs that toggle when `TOGGLE_ON` is not set.
pub const DEFAULT_TOGGLE_ON: &str =
    "metric_alert.critical,metric_alert.warning,event_alert.triggered";

/// Every `resource.action` that may appear in `TOGGLE_ON`.
pub const TOGGLEABLE: &[&str] = &[
    "metric_alert.critical",
    "metric_alert.warning",
    "event_alert.triggered",
    "issue.created",
    "error.created",
];

/// Environment variables this function reads besides [`bridge_vwo::config::COMMON_ENV_VARS`]
/// (checked against template.yaml by a test).
pub const ENV_VARS: &[&str] = &[
    "SENTRY_CLIENT_SECRET_PARAM",
    "TOGGLE_ON",
    "RESTORE_ON_RESOLVE",
    "MAX_WEBHOOK_AGE_SECS",
    "MAX_BODY_BYTES",
    "TOGGLE_QUEUE_URL",
    "STATE_TABLE",
    "FAST_PATH_MS",
    "SENTRY_APP_ID",
    "DRY_RUN",
    "KILLABLE_FLAGS",
    "ENABLE_ALLOWED_IN",
    "MAX_RESTORES_PER_DAY",
    "SUSPECT_WINDOW_MINUTES",
    "SUSPECTS",
    "SUSPECT_EVIDENCE",
    "SUSPECT_MIN_SHARE",
    "SUSPECT_MIN_EVENTS",
    "FLAG_LIST_PAGES_PER_HOUR",
    "SENTRY_API_URL",
    "SENTRY_ORG",
    "SENTRY_API_TOKEN_PARAM",
    "SENTRY_WEBHOOK_URL",
    "VWO_SETTINGS_BASE_URL",
    "VWO_SETTINGS_TIMEOUT_MS",
    "VWO_SETTINGS_MAX_BYTES",
];

/// Environment variables the queue worker reads besides [`bridge_vwo::config::COMMON_ENV_VARS`]
/// and, for the alerts whose decision waits on the queue, the kill switch's [`ENV_VARS`].
pub const WORKER_ENV_VARS: &[&str] = &[
    "TOGGLE_QUEUE_URL",
    "TOGGLE_DLQ_URL",
    "STATE_TABLE",
    "RETRY_HORIZON_SECS",
    "RETRY_FIRST_BACKOFF_MS",
];

/// Default cap on request bodies: 2 MiB. Sentry's issue, event and error webhooks embed the
/// whole event, and events reach about 1 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 2 * 1024 * 1024;

/// Everything the kill switch needs to know besides its secrets.
#[derive(Clone, Debug)]
pub struct Config {
    /// SSM name of the Sentry integration's client secret.
    pub client_secret_param: String,
    /// The VWO client, token parameter and secret TTL, read as every function reads them.
    pub common: Common,
    /// `resource.action` pairs that toggle a flag.
    pub toggle_on: BTreeSet<String>,
    /// Whether `metric_alert.resolved` restores the flag.
    pub restore_on_resolve: bool,
    /// Oldest `Sentry-Hook-Timestamp` accepted.
    pub max_webhook_age: Duration,
    /// Largest body accepted.
    pub max_body_bytes: usize,
    /// The durable toggle queue; without it the function toggles directly, retrying until
    /// the invocation's deadline.
    pub toggle_queue_url: Option<String>,
    /// The state table (replay records, per-flag order, the shared rate gate).
    pub state_table: Option<String>,
    /// Time for the fast path: Sentry stops listening after 1 s.
    pub fast_path: Duration,
    /// This integration's id in Sentry: its actions are told apart from other integrations'.
    pub sentry_app_id: Option<String>,
    /// Dry run for every alert: verify, decide, check that VWO has the flag, switch nothing.
    pub dry_run: bool,
    /// `KILLABLE_FLAGS`: the `environment:flag` patterns that may be switched; `None` (unset or
    /// empty): any flag.
    pub killable_flags: Option<PatternList>,
    /// `ENABLE_ALLOWED_IN`: environments where a flag may be turned on (none when empty).
    pub enable_allowed_in: PatternList,
    /// Automatic restores per flag in any rolling 24 hours (with the state table).
    pub max_restores_per_day: u32,
    /// `SUSPECT_WINDOW_MINUTES`: how long before an issue's event a flag's change makes it a
    /// suspect (`feature=@suspect`; 1 to 1440, default 60).
    pub suspect_window: Duration,
    /// `SUSPECTS=all`: when an alert's event names several suspects, switch each (at most
    /// [`MAX_SUSPECTS`], most recent change first) instead of none (`one`, the default).
    pub suspects_all: bool,
    /// Where the environments' settings files are read, for the alert rule's drop-downs.
    pub settings: SettingsSource,
    /// What a `@suspect` decision rests on: the start and its events.
    pub evidence: Evidence,
    /// `FLAG_LIST_PAGES_PER_HOUR`: the token's share the workspace's flag list may take (VWO
    /// allows 3,600 requests an hour; default 360, a tenth).
    pub flag_list_pages_per_hour: u32,
}

/// What a `@suspect` decision rests on besides the changes change tracking kept.
#[derive(Clone, Debug)]
pub struct Evidence {
    /// `SUSPECT_EVIDENCE`: `issue` (the default: the events, read with Sentry's API)
    /// or `event` (the alert's event alone, an operator's opt-in).
    pub alert_event_alone: bool,
    /// `SUSPECT_MIN_SHARE`: the share of the latest events in the alert's environment
    /// that must carry the flag on (0 to 1, default 0.9).
    pub min_share: f64,
    /// `SUSPECT_MIN_EVENTS`: the fewest events the issue must have (default 1).
    pub min_events: u64,
    /// Sentry's API, when a token is given (`SENTRY_API_TOKEN_PARAM`).
    pub api: Option<SentryApiConfig>,
}

/// Where the kill switch reads Sentry's API, and with which token.
#[derive(Clone, Debug)]
pub struct SentryApiConfig {
    /// `SENTRY_API_URL` (`https://sentry.io`, `https://de.sentry.io`, a self-hosted Sentry);
    /// default: the scheme and host of `SENTRY_WEBHOOK_URL`.
    pub base: Url,
    /// `SENTRY_ORG`, the organisation's slug; default: `SENTRY_WEBHOOK_URL`'s.
    pub org: String,
    /// `SENTRY_API_TOKEN_PARAM`: the SSM name of the internal integration's token.
    pub token_param: String,
}

/// How long one read of Sentry's API may take.
pub const SENTRY_API_TIMEOUT: Duration = Duration::from_secs(2);

/// `SUSPECT_EVIDENCE`, `SUSPECT_MIN_SHARE`, `SUSPECT_MIN_EVENTS` and Sentry's API.
fn evidence(vars: &dyn Vars) -> Result<Evidence> {
    let alert_event_alone = match vars.var("SUSPECT_EVIDENCE").as_deref().map(str::trim) {
        None | Some("issue") => false,
        Some("event") => true,
        Some(other) => {
            return Err(Error::Config(format!(
                "SUSPECT_EVIDENCE={other:?} is not issue or event"
            )))
        }
    };
    let min_share: f64 = config::parsed_or(vars, "SUSPECT_MIN_SHARE", 0.9)?;
    if !(0.0..=1.0).contains(&min_share) {
        return Err(Error::Config(format!(
            "SUSPECT_MIN_SHARE={min_share} is not between 0 and 1"
        )));
    }
    Ok(Evidence {
        alert_event_alone,
        min_share,
        min_events: config::parsed_or(vars, "SUSPECT_MIN_EVENTS", 1)?,
        api: sentry_api(vars)?,
    })
}

/// Sentry's API settings, when `SENTRY_API_TOKEN_PARAM` is set; the URL and organisation default
/// from `SENTRY_WEBHOOK_URL` (`https://<host>/api/0/organizations/<org>/flags/hooks/…`).
fn sentry_api(vars: &dyn Vars) -> Result<Option<SentryApiConfig>> {
    let (url, org) = (vars.var("SENTRY_API_URL"), vars.var("SENTRY_ORG"));
    let hook = vars.var("SENTRY_WEBHOOK_URL");
    if vars.var("SENTRY_API_TOKEN_PARAM").is_none() {
        return Ok(None);
    }
    let hook = hook
        .map(|raw| config::http_url("SENTRY_WEBHOOK_URL", &raw))
        .transpose()?;
    let token_param = config::parameter_name(vars, "SENTRY_API_TOKEN_PARAM")?;
    let base = match url {
        Some(raw) => config::http_url("SENTRY_API_URL", &raw)?,
        None => hook.as_ref().map(origin).ok_or_else(|| {
            Error::Config(
                "SENTRY_API_TOKEN_PARAM needs SENTRY_API_URL (e.g. https://sentry.io)".into(),
            )
        })?,
    };
    let org = match org {
        Some(org) => org.trim().to_owned(),
        None => hook.as_ref().and_then(organisation).ok_or_else(|| {
            Error::Config(
                "SENTRY_API_TOKEN_PARAM needs SENTRY_ORG (the organisation's slug)".into(),
            )
        })?,
    };
    bridge_vwo::api::validate_identifier("SENTRY_ORG", &org)
        .map_err(|e| Error::Config(e.to_string()))?;
    Ok(Some(SentryApiConfig {
        base,
        org,
        token_param,
    }))
}

/// `https://host[:port]/` of `url`.
fn origin(url: &Url) -> Url {
    let mut base = url.clone();
    base.set_path("/");
    base.set_query(None);
    base
}

/// The organisation's slug in a Sentry URL's path (`…/organizations/<org>/…`).
fn organisation(url: &Url) -> Option<String> {
    let mut segments = url.path_segments()?;
    segments.find(|s| *s == "organizations")?;
    segments.next().filter(|s| !s.is_empty()).map(str::to_owned)
}

/// The queue worker's configuration.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// The VWO client, token parameter and secret TTL, read as every function reads them.
    pub common: Common,
    /// The toggle queue (for delays).
    pub toggle_queue_url: String,
    /// Where jobs go after the horizon or when VWO refuses them.
    pub dead_letter_url: String,
    /// The state table.
    pub state_table: String,
    /// How long a job is retried, counted from when Sentry's alert was accepted.
    pub horizon: Duration,
    /// First wait after a failure that named none (doubles per attempt, at most 15 min).
    pub first_backoff: Duration,
    /// The kill switch's configuration, for the alerts whose decision waits on the queue
    /// (`@suspect`, [`crate::alert::deferred`]): read from the same variables when
    /// `SENTRY_CLIENT_SECRET_PARAM` is set (the template sets the kill switch's on the worker).
    pub alerts: Option<Config>,
}

impl WorkerConfig {
    /// Reads the worker's configuration from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(&config::ProcessEnv)
    }

    /// Reads the worker's configuration from `vars`.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self> {
        Ok(WorkerConfig {
            common: Common::from_vars(vars)?,
            toggle_queue_url: config::required(vars, "TOGGLE_QUEUE_URL")?,
            dead_letter_url: config::required(vars, "TOGGLE_DLQ_URL")?,
            state_table: config::required(vars, "STATE_TABLE")?,
            horizon: config::seconds_or(vars, "RETRY_HORIZON_SECS", 86_400)?,
            first_backoff: config::millis_or(vars, "RETRY_FIRST_BACKOFF_MS", 10_000)?,
            alerts: match vars.var("SENTRY_CLIENT_SECRET_PARAM") {
                Some(_) => Some(Config::from_vars(vars)?),
                None => None,
            },
        })
    }
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Self> {
        Self::from_vars(&config::ProcessEnv)
    }

    /// Reads the configuration from `vars`; the error names the first bad variable.
    pub fn from_vars(vars: &dyn Vars) -> Result<Self> {
        let client_secret_param = config::parameter_name(vars, "SENTRY_CLIENT_SECRET_PARAM")?;
        let common = Common::from_vars(vars)?;
        let toggle_on = parse_toggle_on(
            &vars
                .var("TOGGLE_ON")
                .unwrap_or_else(|| DEFAULT_TOGGLE_ON.into()),
        )?;
        Ok(Config {
            client_secret_param,
            common,
            toggle_on,
            restore_on_resolve: config::flag_or(vars, "RESTORE_ON_RESOLVE", false)?,
            max_webhook_age: config::seconds_or(vars, "MAX_WEBHOOK_AGE_SECS", 300)?,
            max_body_bytes: config::max_body_bytes(vars, DEFAULT_MAX_BODY_BYTES)?,
            toggle_queue_url: vars.var("TOGGLE_QUEUE_URL"),
            state_table: vars.var("STATE_TABLE"),
            fast_path: config::millis_or(vars, "FAST_PATH_MS", 600)?,
            sentry_app_id: vars.var("SENTRY_APP_ID"),
            dry_run: config::flag_or(vars, "DRY_RUN", false)?,
            killable_flags: vars
                .var("KILLABLE_FLAGS")
                .filter(|v| !v.trim().is_empty())
                .map(|v| PatternList::parse("KILLABLE_FLAGS", &v, true))
                .transpose()?,
            enable_allowed_in: PatternList::parse(
                "ENABLE_ALLOWED_IN",
                &vars.var("ENABLE_ALLOWED_IN").unwrap_or_default(),
                false,
            )?,
            max_restores_per_day: config::parsed_or(vars, "MAX_RESTORES_PER_DAY", 3)?,
            suspect_window: suspect_window(vars)?,
            suspects_all: suspects_all(vars.var("SUSPECTS").as_deref())
                .map_err(|e| Error::Config(format!("SUSPECTS: {e}")))?,
            settings: SettingsSource::from_vars(vars)?,
            evidence: evidence(vars)?,
            flag_list_pages_per_hour: flag_list_share(vars)?,
        })
    }
}

/// The most suspects one alert switches with `SUSPECTS=all` (Sentry shows at most 3).
pub const MAX_SUSPECTS: usize = 3;

/// `SUSPECTS` (or a URL's `suspects`): `one` (default: several suspects switch none) or `all`;
/// the error says what is wrong.
pub fn suspects_all(raw: Option<&str>) -> std::result::Result<bool, String> {
    match raw.map(str::trim).filter(|v| !v.is_empty()) {
        None | Some("one") => Ok(false),
        Some("all") => Ok(true),
        Some(other) => Err(format!("suspects: {other:?} is not one or all")),
    }
}

/// `FLAG_LIST_PAGES_PER_HOUR`: 1 to 3,600 (the token's whole hour).
fn flag_list_share(vars: &dyn Vars) -> Result<u32> {
    let pages: u32 = config::parsed_or(vars, "FLAG_LIST_PAGES_PER_HOUR", 360)?;
    if !(1..=3600).contains(&pages) {
        return Err(Error::Config(format!(
            "FLAG_LIST_PAGES_PER_HOUR: {pages} is not between 1 and 3600 (VWO allows 3,600 requests an hour per token)"
        )));
    }
    Ok(pages)
}

/// `SUSPECT_WINDOW_MINUTES`, within what change tracking keeps (a day).
fn suspect_window(vars: &dyn Vars) -> Result<Duration> {
    let minutes: u64 = config::parsed_or(vars, "SUSPECT_WINDOW_MINUTES", 60)?;
    if !(1..=1440).contains(&minutes) {
        return Err(Error::Config(format!(
            "SUSPECT_WINDOW_MINUTES: {minutes} is not between 1 and 1440 (change tracking keeps a day)"
        )));
    }
    Ok(Duration::from_secs(minutes * 60))
}

fn parse_toggle_on(raw: &str) -> Result<BTreeSet<String>> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            if TOGGLEABLE.contains(&item) {
                Ok(item.to_owned())
            } else {
                Err(Error::Config(format!(
                    "TOGGLE_ON: {item:?} is not one of {}",
                    TOGGLEABLE.join(", ")
                )))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: Vec<(&'static str, &'static str)>) -> impl Fn(&str) -> Option<String> {
        move |n| {
            pairs
                .iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| v.to_string())
        }
    }

    const REQUIRED: [(&str, &str); 2] = [
        ("SENTRY_CLIENT_SECRET_PARAM", "/bridge/sentry-client-secret"),
        ("VWO_API_TOKEN_PARAM", "/bridge/vwo-api-token"),
    ];

    #[test]
    fn defaults_match_the_documented_table() {
        let c = Config::from_vars(&vars(REQUIRED.to_vec())).unwrap();
        assert_eq!(c.common.vwo.base_url.as_str(), "https://app.vwo.com/api/v2");
        assert_eq!(c.common.vwo.default_account, "current");
        assert_eq!(
            c.toggle_on.iter().map(String::as_str).collect::<Vec<_>>(),
            [
                "event_alert.triggered",
                "metric_alert.critical",
                "metric_alert.warning"
            ]
        );
        assert!(!c.restore_on_resolve);
        assert_eq!(c.max_webhook_age, Duration::from_secs(300));
        assert_eq!(c.common.secret_ttl, Duration::from_secs(300));
        assert_eq!(c.common.vwo.budget, Duration::from_secs(8));
        assert_eq!(c.common.vwo.min_interval, Duration::from_secs(1));
        assert_eq!(c.max_body_bytes, 2 * 1024 * 1024);
        assert_eq!(c.fast_path, Duration::from_millis(600));
        assert_eq!((c.toggle_queue_url, c.state_table), (None, None));
    }

    #[test]
    fn a_numeric_vwo_account_id_is_kept_as_the_default_account() {
        let mut v = REQUIRED.to_vec();
        v.push(("VWO_ACCOUNT_ID", "123"));
        let c = Config::from_vars(&vars(v)).unwrap();
        assert_eq!(c.common.vwo.default_account, "123");
    }

    #[test]
    fn worker_env_vars_lists_exactly_what_the_worker_reads() {
        let mut v = REQUIRED.to_vec();
        v.extend([
            ("TOGGLE_QUEUE_URL", "http://q"),
            ("TOGGLE_DLQ_URL", "http://dlq"),
            ("STATE_TABLE", "t"),
        ]);
        let asked = testkit::names_read(vars(v), |v| {
            let c = WorkerConfig::from_vars(v).unwrap();
            assert_eq!(c.horizon, Duration::from_secs(86_400));
        });
        // With the kill switch's variables (SENTRY_CLIENT_SECRET_PARAM among them), the worker
        // reads them all: it decides the alerts that wait on the queue.
        assert_eq!(
            asked,
            testkit::names(&[
                WORKER_ENV_VARS,
                ENV_VARS,
                bridge_vwo::config::COMMON_ENV_VARS
            ])
        );
    }

    #[test]
    fn bad_values_fail_with_the_variable_named() {
        for (name, value) in [
            ("TOGGLE_ON", "issue.resolved"),
            ("RESTORE_ON_RESOLVE", "maybe"),
            ("MAX_WEBHOOK_AGE_SECS", "-1"),
            ("VWO_API_BASE_URL", "ftp://x"),
            ("VWO_ACCOUNT_ID", ".."),
        ] {
            let mut v = REQUIRED.to_vec();
            v.push((name, value));
            let err = Config::from_vars(&vars(v)).unwrap_err().to_string();
            assert!(err.contains(name), "{err}");
        }
        let err = Config::from_vars(&vars(vec![])).unwrap_err().to_string();
        assert!(
            err.contains("SENTRY_CLIENT_SECRET_PARAM must be set"),
            "{err}"
        );
    }

    #[test]
    fn env_vars_lists_exactly_what_the_configuration_reads() {
        let asked = testkit::names_read(vars(REQUIRED.to_vec()), |v| {
            Config::from_vars(v).unwrap();
        });
        assert_eq!(
            asked,
            testkit::names(&[ENV_VARS, bridge_vwo::config::COMMON_ENV_VARS])
        );
    }
}
