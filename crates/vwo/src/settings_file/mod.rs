//! The environment's SDK settings file: the one document that decides every flag in an
//! environment, read as VWO's own server-side SDKs read it after a webhook.
//!
//! Facts (see `docs/protocols.md` §3b): `GET {host}/server-side/v2-pull?i=<SDK key>&a=<account
//! id>` (VWO Node SDK `lib/constants/index.ts` `WEBHOOK_SETTINGS_ENDPOINT`,
//! `lib/utils/NetworkUtil.ts` `getSettingsPath`), no API token. The body has `accountId`,
//! `version`, `campaigns[]` and optionally `features[]`; either list may be `{}` when empty
//! (`lib/models/schemas/SettingsSchemaValidation.ts`, `SettingsService.normalizeSettings`).
//! A feature has `id`, `key`, `status` and `rules[]` of `{ruleKey, type, campaignId,
//! variationId?}`; a rule's details are the campaign with that id.

use std::borrow::Cow;
use std::fmt;

pub mod fetch;
pub mod listing;
pub mod rules;
pub mod snapshot;
pub mod stored;

mod campaigns;
mod canonical;
mod json_text;

pub use fetch::{SettingsClient, SettingsSource, DEFAULT_SETTINGS_BASE_URL, WEBHOOK_SETTINGS_PATH};

use bridge_platform::Result;
use fetch::failed;
use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use xxhash_rust::xxh3::xxh3_64;

use compact_str::CompactString;
use rules::RuleDigests;
use rustc_hash::FxHashMap;
use std::sync::Arc;

use campaigns::{id_of, Campaign, CampaignId, Campaigns};
use canonical::Key;
use json_text::{object_span, offset};
use snapshot::{FlagRecord, Snapshot};

/// Feature fields that do not change what the flag serves, left out of fingerprints.
const NOT_BEHAVIOUR: &[&str] = &["metrics", "name", "impactCampaign"];

/// Parses a settings file body in one pass, refusing anything that is not one for
/// `account_id`. The pass builds no tree of values and copies nothing: each feature and
/// campaign is kept as its text, borrowed from `bytes`, with a digest of that text; of a
/// feature, only its id, key, status and its rules' campaign ids are read.
pub fn parse(bytes: &[u8], account_id: u64) -> Result<Settings<'_>> {
    // Validated once as a whole (the standard library's check runs at memory speed on ASCII),
    // so that serde_json does not validate each member's raw text again.
    let text = std::str::from_utf8(bytes)
        .map_err(|e| failed(Some(200), format!("body is not a settings file ({e})")))?;
    let mut settings = Settings {
        text,
        ..Settings::default()
    };
    // Sized up front from the body's length (VWO's sample shape takes ~1,300 bytes a flag with
    // its two campaigns): growing these lists copies them and touches fresh pages at every
    // doubling (a tenth of a 10,000-flag delivery), while capacity never written costs nothing.
    let flags = text.len() / 1024 + 1;
    settings.features.reserve(flags);
    settings.campaigns.reserve(flags * 2);
    settings.rule_campaigns.reserve(flags * 2);
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let seen = DocumentSeed(&mut settings)
        .deserialize(&mut deserializer)
        .and_then(|seen| deserializer.end().map(|()| seen))
        .map_err(|e| failed(Some(200), format!("body is not a settings file ({e})")))?;
    for (required, present) in [
        ("accountId", seen.account.is_some()),
        ("version", seen.version),
        ("campaigns", seen.campaigns),
    ] {
        if !present {
            return Err(failed(Some(200), format!("body has no {required}")));
        }
    }
    if seen.account.flatten() != Some(account_id) {
        return Err(failed(Some(200), "body is the settings of another account"));
    }
    Ok(settings)
}

/// A settings file after one pass: every feature and campaign as its text.
#[derive(Debug, Default)]
pub struct Settings<'a> {
    /// The whole file.
    text: &'a str,
    features: Vec<Feature<'a>>,
    campaigns: Campaigns<'a>,
    /// Every feature's rules' campaign ids, in order (`None`: a rule without one); a feature
    /// holds its range.
    rule_campaigns: Vec<Option<CampaignId<'a>>>,
}

#[derive(Debug)]
struct Feature<'a> {
    id: Cow<'a, str>,
    key: Cow<'a, str>,
    status: Cow<'a, str>,
    /// The feature object's text.
    span: &'a str,
    /// Where the campaign ids of the feature's rules are in [`Settings::rule_campaigns`].
    campaigns: std::ops::Range<usize>,
    /// Digest of the feature's own text (see [`raw`] for the flag's).
    raw: u64,
}

/// Visitor methods that read a scalar and do nothing with it: a value of a shape the visitor
/// does not use is read all the same, and is not an error.
macro_rules! ignore_scalars {
    () => {
        fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> std::result::Result<(), E> {
            Ok(())
        }
        fn visit_str<E: de::Error>(self, _: &str) -> std::result::Result<(), E> {
            Ok(())
        }
    };
}

/// A feature's `rules`, read for their campaign ids (see [`rule_campaigns`]); any other value
/// is read and adds nothing.
struct RuleList<'s, 'a>(&'s mut Vec<Option<CampaignId<'a>>>);
impl<'de> Visitor<'de> for RuleList<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of rules")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while seq.next_element_seed(Rule(&mut *self.0))?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
    ignore_scalars!();
}
impl<'de> DeserializeSeed<'de> for RuleList<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}
struct Rule<'s, 'a>(&'s mut Vec<Option<CampaignId<'a>>>);
impl<'de> DeserializeSeed<'de> for Rule<'_, 'de> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> std::result::Result<(), D::Error> {
        d.deserialize_any(self)
    }
}
impl<'de> Visitor<'de> for Rule<'_, 'de> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a rule")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let mut campaign = None;
        while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
            if name == "campaignId" {
                let raw: &'de RawValue = map.next_value()?;
                campaign = CampaignId::read(raw.get());
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        self.0.push(campaign);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(())
    }
    ignore_scalars!();
}

/// Appends to `out` the `campaignId` of each rule in `rules` (a feature's `rules` text), in one
/// pass: `None` for a rule object without a usable one; anything but a list of objects adds
/// nothing for what is not an object.
fn rule_campaigns<'a>(rules: &'a str, out: &mut Vec<Option<CampaignId<'a>>>) {
    let mut deserializer = serde_json::Deserializer::from_str(rules);
    // The text was read once already (it is valid JSON): an error here only ends the list.
    let _ = RuleList(out).deserialize(&mut deserializer);
}

impl<'a> Settings<'a> {
    /// How many flags the file has.
    pub fn len(&self) -> usize {
        self.features.len()
    }

    /// Whether the file has no flags.
    pub fn is_empty(&self) -> bool {
        self.features.is_empty()
    }

    /// The environment's snapshot as the file shows it, read with `sdk_key` (the flag list
    /// standing where `previous`'s did): every flag in it by
    /// id, with its fingerprint — the hash of what decides the flag here (status, type,
    /// variables, and each rule in order with its campaign's traffic, variations, weights,
    /// variables and segments) in canonical encoding, 16 hex digits of XXH3-64. A flag whose
    /// raw text is what `previous` saw keeps its fingerprint; only the others are encoded
    /// canonically (key order and layout do not matter) — so a delivery costs one pass over the
    /// file plus the flags whose text changed.
    pub fn snapshot(&self, sdk_key: &str, previous: &Snapshot) -> Snapshot {
        let mut out = Vec::new();
        let mut campaign_fingerprints = FxHashMap::default();
        let mut joined = Vec::new();
        // The file's flags, and its campaigns, are looked up in the order they were last seen:
        // most often each is the one after the previous one found.
        let (mut campaign_at, mut flag_at) = (0, 0);
        let mut rules = Vec::new();
        let flags = self
            .features
            .iter()
            .map(|feature| {
                rules.clear();
                rules.extend(
                    self.rule_campaigns[feature.campaigns.clone()]
                        .iter()
                        .map(|id| {
                            id.as_ref()
                                .and_then(|id| self.campaigns.get(id, &mut campaign_at))
                        }),
                );
                let raw = raw(feature, &rules, &mut joined);
                let known = previous
                    .find_in_order(feature.id.as_ref(), &mut flag_at)
                    .filter(|before| before.raw == raw && !before.fingerprint.is_empty());
                let (fingerprint, rule_digests) = match known {
                    Some(before) => (before.fingerprint.clone(), before.rules.clone()),
                    None => fingerprint(feature, &rules, &mut out, &mut campaign_fingerprints),
                };
                let record = FlagRecord {
                    key: CompactString::from(feature.key.as_ref()),
                    status: Some(CompactString::from(feature.status.as_ref())),
                    fingerprint,
                    raw,
                    rules: rule_digests,
                };
                (CompactString::from(feature.id.as_ref()), record)
            })
            .collect();
        Snapshot {
            format: snapshot::FORMAT,
            sdk_key: Some(sdk_key.to_owned()),
            environment_id: previous.environment_id.clone(),
            flags,
            listing: previous.listing,
        }
    }
}

/// A feature's rules' campaigns, in order, each with its place in the file (`None`: a rule
/// whose campaign the file does not have).
type RuleCampaigns<'s, 'a> = [Option<(u32, &'s Campaign<'a>)>];

/// Digest of a flag's raw text: its feature's and its rules' campaigns', in order (the campaigns
/// may come after the features in the file, so this is joined once all are read).
fn raw(feature: &Feature<'_>, rules: &RuleCampaigns<'_, '_>, joined: &mut Vec<u8>) -> u64 {
    joined.clear();
    joined.extend_from_slice(&feature.raw.to_le_bytes());
    for campaign in rules {
        let raw = campaign.map(|(_, c)| c.raw).unwrap_or_default();
        joined.extend_from_slice(&raw.to_le_bytes());
    }
    xxh3_64(joined)
}

/// Hash of what decides the flag here: its own fields but [`NOT_BEHAVIOUR`], and each rule's
/// campaign in order, all in canonical encoding (a campaign's once per delivery, by its place);
/// with the digests that tell which rule a change touched ([`RuleDigests`]).
fn fingerprint(
    feature: &Feature<'_>,
    rules: &RuleCampaigns<'_, '_>,
    out: &mut Vec<u8>,
    campaign_fingerprints: &mut FxHashMap<u32, u64>,
) -> (CompactString, Option<Arc<RuleDigests>>) {
    out.clear();
    canonical::object_text(out, feature.span, NOT_BEHAVIOUR);
    let mut campaigns = Vec::with_capacity(rules.len());
    for campaign in rules {
        let digest = match campaign {
            Some((at, campaign)) => *campaign_fingerprints.entry(*at).or_insert_with(|| {
                let mut encoded = Vec::new();
                canonical::object_text(&mut encoded, campaign.span, &[]);
                xxh3_64(&encoded)
            }),
            None => 0,
        };
        out.extend_from_slice(&digest.to_le_bytes());
        campaigns.push(digest);
    }
    let digests = RuleDigests::of(feature.span, NOT_BEHAVIOUR, &campaigns);
    (
        compact_str::format_compact!("{:016x}", xxh3_64(out)),
        Some(Arc::new(digests)),
    )
}

/// How a feature's `rules` were read.
enum Rules<'a> {
    /// Not seen.
    None,
    /// Kept as text, to read after the object (they were its first member).
    Text(&'a RawValue),
    /// Read in place, after the value that ends at this offset, and no member since.
    ReadAfter(usize),
    /// Read in place, and other members came after them.
    Read,
}

/// The top-level members the pass reads.
const TOP_LEVEL: [&str; 4] = ["accountId", "version", "campaigns", "features"];

/// Which of the required top-level fields the pass saw.
struct Seen {
    /// `accountId` when present (`Some(None)`: present but not a number).
    account: Option<Option<u64>>,
    version: bool,
    campaigns: bool,
}

struct DocumentSeed<'s, 'a>(&'s mut Settings<'a>);

impl<'de> DeserializeSeed<'de> for DocumentSeed<'_, 'de> {
    type Value = Seen;

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<Seen, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for DocumentSeed<'_, 'de> {
    type Value = Seen;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<Seen, A::Error> {
        let mut seen = Seen {
            account: None,
            version: false,
            campaigns: false,
        };
        // A member named twice is refused, as serde's derived readers refuse it (a JSON object's
        // repeated name has no agreed meaning; serde_json's `Value` would keep the last).
        let mut named = [false; 4];
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if let Some(at) = TOP_LEVEL.iter().position(|name| *name == key.as_ref()) {
                if std::mem::replace(&mut named[at], true) {
                    return Err(de::Error::duplicate_field(TOP_LEVEL[at]));
                }
            }
            let kind = match key.as_ref() {
                "accountId" => {
                    let raw: &RawValue = map.next_value()?;
                    let account = match raw.get().starts_with('"') {
                        true => json_text::string(raw.get()).and_then(|s| s.trim().parse().ok()),
                        false => raw.get().parse().ok(),
                    };
                    seen.account = Some(account);
                    continue;
                }
                "version" => {
                    map.next_value::<IgnoredAny>()?;
                    seen.version = true;
                    continue;
                }
                "campaigns" => {
                    seen.campaigns = true;
                    Kind::Campaign
                }
                "features" => Kind::Feature,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                    continue;
                }
            };
            map.next_value_seed(ListSeed(ElementSeed {
                kind,
                settings: self.0,
            }))?;
        }
        Ok(seen)
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Campaign,
    Feature,
}

impl Kind {
    fn field(self) -> &'static str {
        match self {
            Kind::Campaign => "campaigns",
            Kind::Feature => "features",
        }
    }
}

/// `campaigns` or `features`: an array, or `{}` (or `null`) when empty; each element read with
/// the [`ElementSeed`] it holds.
struct ListSeed<'s, 'a>(ElementSeed<'s, 'a>);

impl<'de> DeserializeSeed<'de> for ListSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for ListSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "{} as a list", self.0.kind.field())
    }

    fn visit_unit<E: de::Error>(self) -> std::result::Result<(), E> {
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        match map.next_key::<IgnoredAny>()? {
            None => Ok(()),
            Some(_) => Err(de::Error::custom(format!(
                "{} is not a list",
                self.0.kind.field()
            ))),
        }
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> std::result::Result<(), A::Error> {
        while seq
            .next_element_seed(ElementSeed {
                kind: self.0.kind,
                settings: &mut *self.0.settings,
            })?
            .is_some()
        {}
        Ok(())
    }
}

/// One feature or campaign: its text is kept and digested, the few members needed read;
/// anything but an object is an error for a feature and ignored for a campaign.
struct ElementSeed<'s, 'a> {
    kind: Kind,
    settings: &'s mut Settings<'a>,
}

impl<'de> DeserializeSeed<'de> for ElementSeed<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(
        self,
        deserializer: D,
    ) -> std::result::Result<(), D::Error> {
        match self.kind {
            Kind::Feature => deserializer.deserialize_map(self),
            Kind::Campaign => {
                // A campaign is kept whole: read as one raw value (serde_json's fastest pass,
                // and the span exactly), then only its id is looked for, reading no further.
                let raw = <&'de RawValue>::deserialize(deserializer)?;
                if let Some(id) = campaign_id(raw.get()) {
                    let span = raw.get();
                    let raw = xxh3_64(span.as_bytes());
                    self.settings.campaigns.push(Campaign { id, span, raw });
                }
                Ok(())
            }
        }
    }
}

/// The `id` of a campaign object's text, read up to the id and no further; `None` for
/// anything else (a campaign that is not an object, or has no usable id, is ignored).
fn campaign_id(text: &str) -> Option<CampaignId<'_>> {
    json_text::member(text, "id").and_then(CampaignId::read)
}

impl<'de> Visitor<'de> for ElementSeed<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> std::result::Result<(), A::Error> {
        let text = self.settings.text;
        let rule_campaigns = &mut self.settings.rule_campaigns;
        let start = rule_campaigns.len();
        let (mut id, mut key, mut status, mut rules) = (None, None, None, Rules::None);
        // Where the first member's value starts and the last one's ends: the object's text is
        // found from them (see `object_span`).
        let (mut first, mut last) = (None, 0);
        while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
            if name == "rules" && first.is_some() {
                // Read in place for its campaign ids (no second pass over its text); where it
                // ends is only needed if it is the last member, and found then.
                rule_campaigns.truncate(start);
                map.next_value_seed(RuleList(&mut *rule_campaigns))?;
                rules = Rules::ReadAfter(last);
                continue;
            }
            let value: &'de RawValue = map.next_value()?;
            let at = offset(text, value.get());
            first.get_or_insert(at);
            last = at + value.get().len();
            match name.as_ref() {
                "id" => id = id_of(value.get()),
                "key" => key = json_text::string(value.get()).filter(|k| !k.is_empty()),
                "status" => status = json_text::string(value.get()),
                // The first member: its text is kept, and read once the object's start is known.
                "rules" => rules = Rules::Text(value),
                _ => {}
            }
            if let Rules::ReadAfter(_) = rules {
                rules = Rules::Read;
            }
        }
        match rules {
            Rules::Text(value) => {
                rule_campaigns.truncate(start);
                self::rule_campaigns(value.get(), rule_campaigns);
            }
            // The rules were the last member (or members): the object's text ends with them.
            Rules::ReadAfter(after) => last = json_text::members_end(text, after).unwrap_or(0),
            Rules::None | Rules::Read => {}
        }
        let span = first.and_then(|first| object_span(text, first, last));
        let (Some(id), Some(key), Some(status), Some(span)) = (id, key, status, span) else {
            return Err(de::Error::custom("a feature lacks its id, key or status"));
        };
        let campaigns = start..self.settings.rule_campaigns.len();
        self.settings.features.push(Feature {
            id,
            key,
            status,
            span,
            campaigns,
            raw: xxh3_64(span.as_bytes()),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};
    use testkit::settings_files::{self, document, sample_in_vwo_order};
    #[test]
    fn rules_give_their_campaign_ids_in_order_and_odd_shapes_give_none() {
        fn ids(rules: &str) -> Vec<Option<CampaignId<'_>>> {
            let mut out = Vec::new();
            rule_campaigns(rules, &mut out);
            out
        }
        let n = |i| Some(CampaignId::Number(i));
        assert_eq!(
            ids(
                r#"[{"ruleKey":"a","campaignId":7},{"campaignId":"8","type":"x"},{"ruleKey":"c"}]"#
            ),
            [n(7), n(8), None]
        );
        assert_eq!(ids(r#"[1, "x", {"campaignId": 9}, []]"#), [n(9)]);
        assert!(ids(r#"{"campaignId": 1}"#).is_empty());
        assert!(ids(r#""rules""#).is_empty());
        // The campaign's own id is found without reading the rest of it.
        assert_eq!(
            campaign_id(r#"{"id": 12, "variations": [{"id": 1}]}"#),
            n(12)
        );
        assert_eq!(
            campaign_id(r#"{"key": "k", "id": "c-1"}"#),
            Some(CampaignId::Text("c-1".into()))
        );
        assert_eq!(campaign_id(r#"{"key": "k"}"#), None);
        assert_eq!(campaign_id("[1]"), None);
    }

    fn flags(document: &Value) -> Result<snapshot::Flags> {
        let body = serde_json::to_vec(document).unwrap();
        Ok(parse(&body, 12345)?
            .snapshot("sdk", &Snapshot::default())
            .flags)
    }

    /// VWO's published sample `src/settings/RolloutAndTestingSettings.json`
    /// (`wingify/vwo-fme-sdk-e2e-test-settings-n-cases`), reduced to one variation each.
    fn sample(traffic: u64, weight: u64) -> Value {
        document(
            12345,
            vec![
                json!({"key": "feature1", "name": "Feature1", "id": 1, "status": "ON",
                "type": "FEATURE_FLAG", "impactCampaign": {},
                "metrics": [{"id": 1, "type": "REVENUE_TRACKING", "identifier": "custom1", "mca": -1}],
                "rules": [{"variationId": 1, "type": "FLAG_ROLLOUT", "campaignId": 1, "ruleKey": "rolloutRule1"},
                          {"campaignId": 2, "type": "FLAG_TESTING", "ruleKey": "testingRule1"}]}),
            ],
            vec![
                json!({"key": "feature1_rolloutRule1", "name": "feature1_rolloutRule1", "id": 1,
                    "segments": {}, "isForcedVariationEnabled": false, "type": "FLAG_ROLLOUT",
                    "status": "RUNNING", "variations": [{"id": 1, "segments": {}, "weight": 100, "name": "Rollout-rule-1"}]}),
                json!({"key": "feature1_testingRule1", "name": "feature1_testingRule1", "id": 2,
                    "percentTraffic": traffic, "segments": {}, "type": "FLAG_TESTING", "status": "RUNNING",
                    "variations": [{"id": 1, "weight": weight, "name": "Default"},
                                   {"id": 2, "weight": 100 - weight, "name": "Variation-1"}]}),
            ],
        )
    }

    #[test]
    fn published_samples_parse_and_empty_lists_may_be_objects() {
        let flags = flags(&sample(100, 50)).unwrap();
        assert_eq!(flags.len(), 1);
        assert_eq!(flags["1"].key, "feature1");
        assert_eq!(flags["1"].status.as_deref(), Some("ON"));
        // `SettingsWithNoFeatureAndCampign.json`: `"features": {}, "campaigns": {}`.
        let empty = parse(
            br#"{"version":1,"accountId":12345,"sdkKey":"x","features":{},"campaigns":{}}"#,
            12345,
        )
        .unwrap();
        assert!(empty.is_empty());
    }

    #[test]
    fn traffic_weights_and_rule_order_change_the_fingerprint_metrics_do_not() {
        let base = flags(&sample(100, 50)).unwrap()["1"].fingerprint.clone();
        assert_ne!(base, flags(&sample(50, 50)).unwrap()["1"].fingerprint);
        assert_ne!(base, flags(&sample(100, 20)).unwrap()["1"].fingerprint);
        let mut reordered = sample(100, 50);
        reordered["features"][0]["rules"]
            .as_array_mut()
            .unwrap()
            .reverse();
        assert_ne!(base, flags(&reordered).unwrap()["1"].fingerprint);
        let mut metrics = sample(100, 50);
        metrics["features"][0]["metrics"] = json!([]);
        metrics["features"][0]["name"] = json!("Renamed");
        metrics["version"] = json!(2);
        assert_eq!(base, flags(&metrics).unwrap()["1"].fingerprint);
    }

    #[test]
    fn the_fingerprint_ignores_layout_and_document_order_but_not_a_campaign() {
        let base = flags(&sample(100, 50)).unwrap()["1"].fingerprint.clone();
        // Campaigns before features, members in another order, other whitespace.
        let sample = sample(100, 50);
        let mut text = String::from("{\n  \"campaigns\": [");
        for (i, c) in sample["campaigns"].as_array().unwrap().iter().enumerate() {
            let mut members: Vec<(&String, &Value)> = c.as_object().unwrap().iter().collect();
            members.reverse();
            let body: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{:?} : {}", k, v))
                .collect();
            text += &format!(
                "{}{{ {} }}",
                if i > 0 { ", " } else { "" },
                body.join(" ,\n ")
            );
        }
        text += &format!(
            "], \"features\": {}, \"version\": 1, \"accountId\": \"12345\"}}",
            sample["features"]
        );
        let reordered = parse(text.as_bytes(), 12345)
            .unwrap()
            .snapshot("sdk", &Snapshot::default())
            .flags;
        assert_eq!(reordered["1"].fingerprint, base);
        assert_ne!(reordered["1"].raw, flags(&sample).unwrap()["1"].raw);
        let mut renamed = sample.clone();
        renamed["campaigns"][1]["variations"][1]["name"] = json!("Variation-2");
        assert_ne!(flags(&renamed).unwrap()["1"].fingerprint, base);
        let mut dropped = sample;
        dropped["campaigns"].as_array_mut().unwrap().pop();
        assert_ne!(flags(&dropped).unwrap()["1"].fingerprint, base);
    }

    #[test]
    fn rules_are_read_wherever_the_feature_has_them() {
        let base = flags(&sample(100, 50)).unwrap()["1"].clone();
        let features = sample(100, 50)["features"].to_string();
        let rules = concat!(
            r#""rules":[{"campaignId":1,"ruleKey":"rolloutRule1","type":"FLAG_ROLLOUT","#,
            r#""variationId":1},{"campaignId":2,"ruleKey":"testingRule1","type":"FLAG_TESTING"}]"#
        );
        assert!(features.contains(rules), "{features}");
        let without = features.replacen(&format!("{rules},"), "", 1);
        let members = without.trim_start_matches("[{").trim_end_matches("}]");
        // First, last, with other spacing, and twice (the later one counts, as in `JSON.parse`):
        // the same campaigns, and the feature's text found whole.
        for (feature, same_text) in [
            (format!("{{{rules},{members}}}"), true),
            (format!("{{{members},{rules}}}"), true),
            (
                format!("{{ {members} ,\n {} \n}}", rules.replace(":[", " : [")),
                true,
            ),
            (
                format!(r#"{{{members},"rules":[{{"campaignId":9}}],{rules}}}"#),
                false,
            ),
            (
                format!(r#"{{"rules":[{{"campaignId":9}}],{members},{rules}}}"#),
                false,
            ),
        ] {
            let text = sample(100, 50)
                .to_string()
                .replace(&features, &format!("[{feature}]"));
            let settings = parse(text.as_bytes(), 12345).unwrap();
            let read = &settings.features[0];
            assert_eq!(read.span, feature);
            let n = |i| Some(CampaignId::Number(i));
            assert_eq!(
                settings.rule_campaigns[read.campaigns.clone()],
                [n(1), n(2)],
                "{feature}"
            );
            let flags = settings.snapshot("sdk", &Snapshot::default()).flags;
            // (Two members of one name are two members to the canonical encoding.)
            if same_text {
                assert_eq!(flags["1"].fingerprint, base.fingerprint, "{feature}");
            }
        }
        // A rule list that names another campaign is another fingerprint, wherever it stands.
        let other = rules.replace(r#""campaignId":2"#, r#""campaignId":1"#);
        for feature in [
            format!("{{{other},{members}}}"),
            format!("{{{members},{other}}}"),
        ] {
            let text = sample(100, 50)
                .to_string()
                .replace(&features, &format!("[{feature}]"));
            let flags = parse(text.as_bytes(), 12345)
                .unwrap()
                .snapshot("sdk", &Snapshot::default())
                .flags;
            assert_ne!(flags["1"].fingerprint, base.fingerprint, "{feature}");
        }
    }

    #[test]
    fn vwo_s_layout_and_serde_s_give_the_same_flags() {
        let sorted = parse(&settings_files::sample(12345, 20, Some(3)), 12345)
            .unwrap()
            .snapshot("sdk", &Snapshot::default());
        let body = sample_in_vwo_order(12345, 20, Some(3));
        let vwo = parse(&body, 12345)
            .unwrap()
            .snapshot("sdk", &Snapshot::default());
        assert_eq!(vwo.flags.len(), 19);
        for (id, flag) in &sorted.flags {
            assert!(vwo.flags[id].same_as(flag), "{id}");
            assert_ne!(vwo.flags[id].raw, flag.raw, "{id}: the texts differ");
        }
        // Laid out as the published file: features first, a rule's campaign id last.
        let text = String::from_utf8(body).unwrap();
        assert!(text.find(r#""features""#) < text.find(r#""campaigns""#));
        assert!(text.contains(r#""variationId":1,"campaignId":1}"#));
    }

    #[test]
    fn campaigns_in_any_order_give_the_same_flags_and_the_later_of_two_ids_wins() {
        let body = |change: &dyn Fn(&mut Value)| {
            let mut document: Value =
                serde_json::from_slice(&settings_files::sample(12345, 30, Some(4))).unwrap();
            change(&mut document);
            serde_json::to_vec(&document).unwrap()
        };
        fn campaigns(document: &mut Value) -> &mut Vec<Value> {
            document["campaigns"].as_array_mut().unwrap()
        }
        let read = |body: &[u8]| {
            parse(body, 12345)
                .unwrap()
                .snapshot("sdk", &Snapshot::default())
                .flags
        };
        let in_order = read(&body(&|_| {}));
        // Found by position (ids increasing), and by hashing (reversed, shuffled).
        let reversed = read(&body(&|d| campaigns(d).reverse()));
        let shuffled = read(&body(&|d| campaigns(d).rotate_left(17)));
        assert_eq!(reversed, in_order);
        assert_eq!(shuffled, in_order);
        // Ids that are not numbers: found by hashing, in order or not; none is missed (a
        // missing campaign changes the fingerprint).
        let named = |reverse: bool| {
            read(&body(&|d| {
                let name = |id: &Value| json!(format!("c-{id}"));
                for feature in d["features"].as_array_mut().unwrap() {
                    for rule in feature["rules"].as_array_mut().unwrap() {
                        rule["campaignId"] = name(&rule["campaignId"]);
                    }
                }
                let list = campaigns(d);
                for campaign in list.iter_mut() {
                    campaign["id"] = name(&campaign["id"]);
                }
                if reverse {
                    list.reverse();
                }
            }))
        };
        let none = read(&body(&|d| campaigns(d).clear()));
        assert_eq!(named(false), named(true));
        for (id, flag) in &named(false) {
            assert_ne!(flag.fingerprint, none[id].fingerprint, "{id}");
        }
        // A second campaign with a rule's id, after the first: the later one is the rule's.
        let twice = read(&body(&|d| {
            let list = campaigns(d);
            let mut changed = list[0].clone();
            changed["percentTraffic"] = json!(5);
            list.push(changed);
        }));
        assert_ne!(twice["1"].fingerprint, in_order["1"].fingerprint);
        assert_eq!(twice["2"], in_order["2"]);
    }

    #[test]
    fn unchanged_text_reuses_the_previous_fingerprint() {
        let body = serde_json::to_vec(&sample(100, 50)).unwrap();
        let mut previous = parse(&body, 12345)
            .unwrap()
            .snapshot("sdk", &Snapshot::default());
        // A fingerprint only the previous snapshot knows proves it was reused, not recomputed.
        previous.flags.get_mut("1").unwrap().fingerprint = "kept".into();
        let body = serde_json::to_vec(&sample(100, 50)).unwrap();
        let again = parse(&body, 12345).unwrap().snapshot("sdk", &previous);
        assert_eq!(again.flags["1"].fingerprint, "kept");
        let body = serde_json::to_vec(&sample(50, 50)).unwrap();
        let changed = parse(&body, 12345).unwrap().snapshot("sdk", &previous);
        assert_eq!(
            changed.flags["1"].fingerprint,
            super::tests::flags(&sample(50, 50)).unwrap()["1"].fingerprint
        );
    }

    #[test]
    fn a_top_level_member_named_twice_is_refused() {
        let twice =
            br#"{"accountId":12345,"version":1,"campaigns":[],"features":[],"features":[]}"#;
        let error = parse(twice, 12345).unwrap_err().to_string();
        assert!(error.contains("duplicate field `features`"), "{error}");
        let once = br#"{"accountId":12345,"version":1,"campaigns":[],"features":[]}"#;
        assert!(parse(once, 12345).is_ok());
    }

    #[test]
    fn bodies_that_are_not_settings_files_are_refused() {
        for body in [
            &b"<html><body>Down for maintenance</body></html>"[..],
            br#"{"version":1,"accountId":12345,"features":[{"id":1"#,
            b"null",
            b"[]",
            br#"{"_data": []}"#,
            br#"{"version":1,"accountId":999,"campaigns":[]}"#,
        ] {
            let err = parse(body, 12345).unwrap_err();
            assert_eq!(err.status(), 502, "{}", String::from_utf8_lossy(body));
        }
        let no_key = document(12345, vec![json!({"id": 1, "status": "ON"})], vec![]);
        assert!(flags(&no_key).is_err());
        let bad_list = json!({"accountId": 12345, "version": 1, "campaigns": [], "features": "x"});
        assert!(flags(&bad_list).is_err());
        let not_object = document(12345, vec![json!([1])], vec![]);
        assert!(flags(&not_object).is_err());
    }
}
