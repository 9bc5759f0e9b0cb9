//! A settings file's campaigns (a flag rule's details), kept as their text, and found by the
//! id a rule gives.
//!
//! A rule names its campaign by `campaignId` (docs/protocols.md §3b). The lookup is shaped by
//! how a settings file is laid out, never relied on: when the campaigns' ids are numbers in
//! increasing order (each id once), a rule's campaign is found by position — the campaign
//! after the one the previous rule named, else by binary search — and no hash table is built;
//! any other list is indexed by hashing, once, on the first lookup. At 10,000 flags, hashing
//! 20,000 ids while the file streamed past and probing that table afterwards was a tenth of a
//! delivery (BENCHMARKS.md).

use std::borrow::Cow;
use std::cell::OnceCell;

use rustc_hash::FxHashMap;

/// A campaign's id as a map key: VWO's ids are numbers, compared as such; any other id as its
/// text. `7` and `"7"` are the same id, as their text is.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) enum CampaignId<'a> {
    /// An id written as a number (or as a string of one), in the one way it is written.
    Number(u64),
    /// Any other non-empty id, unescaped.
    Text(Cow<'a, str>),
}

impl<'a> CampaignId<'a> {
    /// The id a value (its JSON text) gives: a number (most often, read straight from the
    /// text), or a non-empty string; `None` for anything else.
    pub(crate) fn read(text: &'a str) -> Option<Self> {
        match Self::number(text) {
            Some(n) => Some(CampaignId::Number(n)),
            None => id_of(text).map(CampaignId::of),
        }
    }

    /// The id an id's text (unescaped) is.
    pub(crate) fn of(id: Cow<'a, str>) -> Self {
        match Self::number(&id) {
            Some(n) => CampaignId::Number(n),
            None => CampaignId::Text(id),
        }
    }

    /// The number `text` writes in the one way a number is written (digits, no leading zero),
    /// when it fits in a `u64`.
    fn number(text: &str) -> Option<u64> {
        let canonical = !text.is_empty()
            && text.bytes().all(|b| b.is_ascii_digit())
            && (text.len() == 1 || !text.starts_with('0'));
        canonical.then(|| text.parse().ok()).flatten()
    }
}

/// An id, from its JSON text: a number, or a non-empty string; borrowed unless it needs
/// unescaping.
pub(crate) fn id_of(text: &str) -> Option<Cow<'_, str>> {
    if text.starts_with('"') {
        return super::json_text::string(text).filter(|s| !s.is_empty());
    }
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Some(Cow::Borrowed(text));
    }
    serde_json::from_str::<serde_json::Number>(text)
        .ok()
        .map(|n| Cow::Owned(n.to_string()))
}

/// One campaign of the file.
#[derive(Debug)]
pub(crate) struct Campaign<'a> {
    /// Its id.
    pub id: CampaignId<'a>,
    /// The campaign object's text.
    pub span: &'a str,
    /// Digest of that text.
    pub raw: u64,
}

/// The file's campaigns, in file order.
#[derive(Debug)]
pub(crate) struct Campaigns<'a> {
    list: Vec<Campaign<'a>>,
    /// Whether every id so far is a number greater than the one before it.
    increasing: bool,
    /// Where each id's campaign is, built on the first lookup when not `increasing`.
    index: OnceCell<Index<'a>>,
}

impl Default for Campaigns<'_> {
    fn default() -> Self {
        Campaigns {
            list: Vec::new(),
            increasing: true,
            index: OnceCell::new(),
        }
    }
}

/// Where each id's campaign is (of two with one id, the later one), hashed with Fx: SipHash's
/// defence against chosen keys buys nothing for VWO's own file.
#[derive(Debug, Default)]
struct Index<'a> {
    numbered: FxHashMap<u64, u32>,
    named: FxHashMap<Cow<'a, str>, u32>,
}

impl<'a> Campaigns<'a> {
    /// Room for `campaigns` more.
    pub(crate) fn reserve(&mut self, campaigns: usize) {
        self.list.reserve(campaigns);
    }

    /// Adds a campaign after the others; of two with one id, the later one is the id's.
    pub(crate) fn push(&mut self, campaign: Campaign<'a>) {
        if self.list.len() >= u32::MAX as usize {
            return;
        }
        self.increasing &= match (&campaign.id, self.list.last().map(|c| &c.id)) {
            (CampaignId::Number(_), None) => true,
            (CampaignId::Number(n), Some(CampaignId::Number(before))) => n > before,
            _ => false,
        };
        self.index.take();
        self.list.push(campaign);
    }

    /// The campaign with `id`, and its place in the file, looked up first where `next` says
    /// (just after the campaign the previous lookup found: the next rule's campaign most often
    /// follows it); `next` is moved past what is found.
    pub(crate) fn get(
        &self,
        id: &CampaignId<'_>,
        next: &mut usize,
    ) -> Option<(u32, &Campaign<'a>)> {
        let at = match id {
            CampaignId::Number(n) if self.increasing => {
                match self.list.get(*next).filter(|c| c.id == *id) {
                    Some(_) => *next,
                    None => self
                        .list
                        .binary_search_by_key(n, |c| match c.id {
                            CampaignId::Number(n) => n,
                            CampaignId::Text(_) => u64::MAX,
                        })
                        .ok()?,
                }
            }
            // Only numbers are in an increasing list.
            CampaignId::Text(_) if self.increasing => return None,
            CampaignId::Number(n) => *self.index().numbered.get(n)? as usize,
            CampaignId::Text(text) => *self.index().named.get(text.as_ref())? as usize,
        };
        *next = at + 1;
        Some((u32::try_from(at).ok()?, self.list.get(at)?))
    }

    fn index(&self) -> &Index<'a> {
        self.index.get_or_init(|| {
            let mut index = Index::default();
            for (at, campaign) in (0u32..).zip(&self.list) {
                match &campaign.id {
                    CampaignId::Number(n) => index.numbered.insert(*n, at),
                    CampaignId::Text(text) => index.named.insert(text.clone(), at),
                };
            }
            index
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn campaign(id: CampaignId<'static>, raw: u64) -> Campaign<'static> {
        Campaign {
            id,
            span: "{}",
            raw,
        }
    }

    fn found(campaigns: &Campaigns<'_>, ids: &[CampaignId<'_>]) -> Vec<Option<u64>> {
        let mut next = 0;
        ids.iter()
            .map(|id| campaigns.get(id, &mut next).map(|(_, c)| c.raw))
            .collect()
    }

    #[test]
    fn a_campaign_is_found_by_its_id_in_any_order_and_the_later_of_two_wins() {
        let n = CampaignId::Number;
        let t = |s: &'static str| CampaignId::Text(Cow::Borrowed(s));
        // Increasing ids: found by position or by search, in any order of lookups.
        let mut increasing = Campaigns::default();
        for (id, raw) in [(3, 30), (5, 50), (9, 90), (10, 100)] {
            increasing.push(campaign(n(id), raw));
        }
        assert!(increasing.increasing);
        let lookups = [n(3), n(5), n(10), n(9), n(4), n(3), n(11), t("x"), n(10)];
        let want = [
            Some(30),
            Some(50),
            Some(100),
            Some(90),
            None,
            Some(30),
            None,
            None,
            Some(100),
        ];
        assert_eq!(found(&increasing, &lookups), want);
        // Any other order, a repeated id and text ids: hashed, the later of two.
        let mut other = Campaigns::default();
        for (id, raw) in [
            (n(9), 90),
            (n(3), 30),
            (t("c-1"), 1),
            (n(9), 91),
            (n(5), 50),
        ] {
            other.push(campaign(id, raw));
        }
        assert!(!other.increasing);
        assert_eq!(
            found(&other, &[n(9), n(3), t("c-1"), n(5), t("c-2"), n(4)]),
            [Some(91), Some(30), Some(1), Some(50), None, None]
        );
        // A list stops being increasing when an id repeats, and is indexed again after a push.
        let mut repeated = Campaigns::default();
        repeated.push(campaign(n(1), 1));
        assert_eq!(found(&repeated, &[n(1)]), [Some(1)]);
        repeated.push(campaign(n(1), 2));
        assert!(!repeated.increasing);
        assert_eq!(found(&repeated, &[n(1)]), [Some(2)]);
        repeated.push(campaign(n(1), 3));
        assert_eq!(found(&repeated, &[n(1)]), [Some(3)]);
    }

    #[test]
    fn campaign_ids_are_numbers_when_they_read_as_one() {
        let of = |text: &str| CampaignId::of(Cow::Owned(text.to_owned()));
        assert_eq!(of("7"), CampaignId::Number(7));
        assert_eq!(of("0"), CampaignId::Number(0));
        assert_eq!(of("007"), CampaignId::Text("007".into()));
        // Read from the file: a number, or a string as its text; `7` and `"7"` the same id.
        let read = |json: &str| {
            let raw: Box<serde_json::value::RawValue> = serde_json::from_str(json).unwrap();
            CampaignId::read(raw.get()).map(|id| match id {
                CampaignId::Text(text) => CampaignId::Text(Cow::Owned(text.into_owned())),
                CampaignId::Number(n) => CampaignId::Number(n),
            })
        };
        assert_eq!(read("7"), Some(CampaignId::Number(7)));
        assert_eq!(read(r#""7""#), Some(CampaignId::Number(7)));
        assert_eq!(
            read("18446744073709551615"),
            Some(CampaignId::Number(u64::MAX))
        );
        assert_eq!(
            read("18446744073709551616"),
            Some(CampaignId::Text("18446744073709551616".into()))
        );
        assert_eq!(read("-3"), Some(CampaignId::Text("-3".into())));
        assert_eq!(read(r#""07""#), Some(CampaignId::Text("07".into())));
        assert_eq!(read(r#""""#), None);
        assert_eq!(read("null"), None);
        assert_eq!(read("{}"), None);
        assert_eq!(of("x7"), CampaignId::Text("x7".into()));
        assert_eq!(
            of("99999999999999999999999"),
            CampaignId::Text("99999999999999999999999".into())
        );
    }
}
