//! Stage 3, read: the environment as VWO's SDKs see it — its SDK settings file, plus a lookup for
//! each flag that left the file — and, while it is incomplete, the next pages of the workspace's
//! flag list ([`bridge_vwo::flag_list`]), which adds the flags that are off.

pub mod vwo_lookup;

use bridge_platform::Result;
use bridge_vwo::flag_list;
use bridge_vwo::settings_file;
use bridge_vwo::settings_file::snapshot::{FlagRecord, Snapshot};
use compact_str::CompactString;

use super::Delivery;
use crate::config::COMMIT_MARGIN;

/// Reads the environment as VWO's SDKs see it: one settings file, plus one REST lookup for each
/// flag that left the file since `previous` (switched off, or deleted). Flags known to be off
/// stay; the workspace's flag list ([`bridge_vwo::flag_list`]) adds the others.
pub async fn environment(
    delivery: &Delivery<'_>,
    known_sdk_key: Option<&str>,
    previous: &Snapshot,
) -> Result<Snapshot> {
    let (app, target, deadline) = (delivery.app, &delivery.target, delivery.deadline);
    let config = &app.config;
    let token = app.token();
    let account = config.common.vwo.default_account.as_str();
    let account_id = *app
        .account_id
        .get_or_try_init(|| vwo_lookup::account_id(&app.vwo, token, account))
        .await?;
    let known = vwo_lookup::Known {
        sdk_key_override: target.sdk_key_override.as_deref(),
        sdk_key: known_sdk_key,
        environment_id: previous.environment_id.as_deref(),
    };
    let (sdk_key, environment_id) =
        vwo_lookup::environment(&app.vwo, token, account, &target.environment, known).await?;
    deadline.require(config.settings.timeout, "read the settings file")?;
    let body = app.settings.fetch(&sdk_key, account_id).await?;
    let mut in_file = settings_file::parse(&body, account_id)?.snapshot(&sdk_key, previous);
    in_file.environment_id = environment_id;
    drop(body);
    let vanished: Vec<CompactString> = previous.vanished(&in_file).cloned().collect();
    let mut current = in_file;
    for id in &vanished {
        deadline.require(
            config.common.vwo.budget,
            "look up a flag that left the settings file",
        )?;
        if vwo_lookup::flag_exists(&app.vwo, token, account, id).await? {
            if let Some(before) = previous.flags.get(id) {
                current
                    .flags
                    .insert(id.clone(), FlagRecord::off(before.key.clone()));
            }
        }
    }
    // Flags already known to be off (absent, still in VWO) stay as they were.
    for (id, record) in &previous.flags {
        if record.status.is_none() && !current.flags.contains_key(id) {
            current.flags.insert(id.clone(), record.clone());
        }
    }
    Ok(current)
}

/// Reads the next pages of the workspace's flag list into `current`, if it is incomplete,
/// within this delivery's share and before its deadline (less the commit).
pub async fn rest_of_list(
    delivery: &Delivery<'_>,
    current: &mut Snapshot,
) -> Option<flag_list::Progress> {
    current.listing?;
    let (app, deadline) = (delivery.app, delivery.deadline);
    let config = &app.config;
    let budget = flag_list::Budget {
        pages: config.listing_pages,
        until: deadline.at.and_then(|at| at.checked_sub(COMMIT_MARGIN)),
        per_page: config.common.vwo.budget,
    };
    let account = config.common.vwo.default_account.as_str();
    let progress = flag_list::resume(&app.vwo, app.token(), account, current, budget).await;
    tracing::info!(
        pages = progress.pages,
        added = progress.added,
        listed = current.listing,
        complete = current.listing.is_none(),
        "flag list read"
    );
    Some(progress)
}
