//! The flags change tracking knows in an environment, for the flag drop-down: VWO's settings file
//! leaves out a flag that is off there, and a flag never on since the catalog first read the
//! environment would not be offered at all. Change tracking lists every flag of the workspace
//! (its `flag_listing`, off flags marked so) and keeps them in the environment's snapshot in the
//! state table: read from there, no VWO token is spent.

use aws_sdk_dynamodb::Client;
use bridge_vwo::projects::Environment;
use bridge_vwo::settings_file::snapshot::Snapshot;
use bridge_vwo::settings_file::stored;

use super::Flag;

/// Where change tracking keeps its snapshots: the state table.
#[derive(Clone, Debug)]
pub struct Tracked {
    client: Client,
    table: String,
}

impl Tracked {
    /// Change tracking's snapshots in `table`, through `client`.
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        Tracked {
            client,
            table: table.into(),
        }
    }

    /// The flags change tracking has as off in `environment` that `listed` (the settings file's)
    /// lacks, marked off
    /// since `now_ms`; none when change tracking has no snapshot of it (or it cannot be read:
    /// the drop-down is served without them, and the log says why).
    pub async fn off_flags(
        &self,
        environment: &Environment,
        listed: &[Flag],
        now_ms: u64,
    ) -> Vec<Flag> {
        let Some(snapshot) = self.snapshot(environment).await else {
            return Vec::new();
        };
        snapshot
            .flags
            .iter()
            .filter(|(id, record)| record.status.is_none() && !listed.iter().any(|f| f.id == **id))
            .map(|(id, record)| Flag::off(id, &record.key, now_ms))
            .collect()
    }

    /// Change tracking's snapshot of `environment`, under whichever identifier its webhook URL
    /// names it by (id, name, key), checked to be that environment's (its SDK key or id).
    async fn snapshot(&self, environment: &Environment) -> Option<Snapshot> {
        let mut names = vec![
            environment.id.clone(),
            environment.name.clone(),
            environment.key(),
            environment.name.to_lowercase(),
        ];
        names.dedup();
        for name in names {
            match stored::read(&self.client, &self.table, &name).await {
                Ok(Some(snapshot)) if is_of(&snapshot, environment) => return Some(snapshot),
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "could not read change tracking's flags; the drop-down shows the settings file's");
                    return None;
                }
            }
        }
        None
    }
}

/// Whether `snapshot` is of `environment`: its SDK key or its VWO id says so.
fn is_of(snapshot: &Snapshot, environment: &Environment) -> bool {
    let same_key = snapshot.sdk_key.is_some() && snapshot.sdk_key == environment.sdk_key;
    same_key || snapshot.environment_id.as_deref() == Some(environment.id.as_str())
}
