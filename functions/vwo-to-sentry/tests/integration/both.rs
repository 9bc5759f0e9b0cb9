//! Both functions as handlers in this process, on one state table in moto, sharing one VWO
//! token: the set-up of the tests where the kill switch and change tracking meet.

use std::collections::HashMap;
use std::sync::Arc;

use testkit::sentry::FakeSentry;
use testkit::vwo::FakeVwo;

use crate::moto;

/// The VWO API token both use (start the VWO stand-in with it).
pub(crate) const TOKEN: &str = "both-token";
/// The Sentry integration's client secret (sign alerts with it).
pub(crate) const CLIENT_SECRET: &str = "both-client-secret";
/// VWO's webhook secret (`x-vwo-auth`).
pub(crate) const WEBHOOK_SECRET: &str = "both-webhook-secret";
/// The secret Sentry's generic provider checks (start the Sentry stand-in with it).
pub(crate) const SIGNING_SECRET: &str = "both-signing-secret";

/// The two functions.
pub(crate) struct Both {
    /// The kill switch.
    pub(crate) kill: sentry_to_vwo::App,
    /// Change tracking (shared with spawned webhook deliveries).
    pub(crate) tracking: Arc<vwo_to_sentry::App>,
}

/// Both functions, warmed up, with secrets under `/test/both/{name}` and the table
/// `both-{name}`, talking to `vwo` and `sentry`; `extra` adds or overrides variables.
pub(crate) async fn both_functions(
    name: &str,
    vwo: &FakeVwo,
    sentry: &FakeSentry,
    extra: &[(&str, &str)],
) -> Both {
    let moto = moto();
    let prefix = format!("/test/both/{name}");
    for (param, value) in [
        ("sentry-client-secret", CLIENT_SECRET),
        ("vwo-api-token", TOKEN),
        ("vwo-webhook-secret", WEBHOOK_SECRET),
        ("sentry-signing-secret", SIGNING_SECRET),
    ] {
        moto.put_secure_string(&format!("{prefix}/{param}"), value)
            .await;
    }
    let table = format!("both-{name}");
    moto.create_table(&table).await;
    let mut vars: HashMap<String, String> = [
        ("STATE_TABLE", table),
        ("VWO_API_BASE_URL", vwo.base_url()),
        ("VWO_SETTINGS_BASE_URL", vwo.settings_base_url()),
        ("VWO_API_TOKEN_PARAM", format!("{prefix}/vwo-api-token")),
        (
            "SENTRY_CLIENT_SECRET_PARAM",
            format!("{prefix}/sentry-client-secret"),
        ),
        (
            "VWO_WEBHOOK_SECRET_PARAM",
            format!("{prefix}/vwo-webhook-secret"),
        ),
        (
            "SENTRY_SIGNING_SECRET_PARAM",
            format!("{prefix}/sentry-signing-secret"),
        ),
        ("SENTRY_WEBHOOK_URL", sentry.hook_url()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    for (k, v) in extra {
        vars.insert((*k).to_owned(), (*v).to_owned());
    }
    let read = move |n: &str| vars.get(n).cloned();
    let aws = bridge_platform::aws::aws_config().await;
    let kill = sentry_to_vwo::App::new(
        sentry_to_vwo::config::Config::from_vars(&read).unwrap(),
        testkit::ssm(&aws),
        &aws,
    )
    .unwrap();
    let tracking = Arc::new(
        vwo_to_sentry::App::new(
            vwo_to_sentry::config::Config::from_vars(&read).unwrap(),
            testkit::ssm(&aws),
            &aws,
        )
        .unwrap(),
    );
    tokio::join!(kill.warm_up(), tracking.warm_up());
    Both { kill, tracking }
}
