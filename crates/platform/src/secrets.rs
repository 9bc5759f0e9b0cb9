//! Secrets from AWS Systems Manager Parameter Store, cached with a time to live.
//!
//! Behaves like the Parameters utility of Powertools for AWS Lambda: all of a function's
//! parameters are read in one `GetParameters` call (with decryption), kept for a TTL, and
//! re-read when the TTL has passed or when the caller forces a refresh (after the upstream
//! rejected a token that may have been rotated). Unlike Powertools, a failed re-read keeps
//! serving the values already held, so an SSM outage does not stop a warm function.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::error::{Error, Result};

/// A secret value: [`secrecy`]'s string, wiped from memory when the last copy is dropped, and
/// cheap to clone. Its `Debug` and `Display` never show the value; two secrets compare in
/// constant time.
#[derive(Clone)]
pub struct Secret(Arc<SecretString>);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Arc::new(SecretString::from(value.into())))
    }

    /// The value itself: pass it to where it is used, never to a log.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose()
            .as_bytes()
            .ct_eq(other.expose().as_bytes())
            .into()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// A boxed future, as returned by [`ParameterSource::fetch`].
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where parameter values come from: Parameter Store in production, a file or a map locally.
pub trait ParameterSource: Send + Sync {
    /// Reads the named parameters in one call; names that do not exist are absent from the map.
    fn fetch<'a>(&'a self, names: &'a [String]) -> BoxFuture<'a, Result<HashMap<String, String>>>;
}

/// [`ParameterSource`] backed by SSM `GetParameters` with `WithDecryption`.
#[derive(Clone, Debug)]
pub struct SsmParameters {
    client: aws_sdk_ssm::Client,
}

impl SsmParameters {
    /// Uses an SSM client built from the given shared AWS configuration.
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        SsmParameters {
            client: aws_sdk_ssm::Client::new(config),
        }
    }
}

impl ParameterSource for SsmParameters {
    fn fetch<'a>(&'a self, names: &'a [String]) -> BoxFuture<'a, Result<HashMap<String, String>>> {
        Box::pin(async move {
            let output = self
                .client
                .get_parameters()
                .set_names(Some(names.to_vec()))
                .with_decryption(true)
                .send()
                .await
                .map_err(|e| {
                    Error::Secrets(format!(
                        "GetParameters failed: {}",
                        aws_sdk_ssm::error::DisplayErrorContext(&e)
                    ))
                })?;
            Ok(output
                .parameters()
                .iter()
                .filter_map(|p| Some((p.name()?.to_owned(), p.value()?.to_owned())))
                .collect())
        })
    }
}

/// [`ParameterSource`] over a fixed map, for local runs and tests.
#[derive(Clone, Debug, Default)]
pub struct StaticParameters(pub HashMap<String, String>);

impl ParameterSource for StaticParameters {
    fn fetch<'a>(&'a self, names: &'a [String]) -> BoxFuture<'a, Result<HashMap<String, String>>> {
        let found = names
            .iter()
            .filter_map(|n| Some((n.clone(), self.0.get(n)?.clone())))
            .collect();
        Box::pin(async move { Ok(found) })
    }
}

/// One parameter a function reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParameterSpec {
    /// Full parameter name, e.g. `/sentry-vwo-bridge/vwo-api-token`.
    pub name: String,
    /// Whether the function cannot work without it.
    pub required: bool,
}

impl ParameterSpec {
    /// A parameter that must exist.
    pub fn required(name: impl Into<String>) -> Self {
        ParameterSpec {
            name: name.into(),
            required: true,
        }
    }

    /// A parameter that may be absent (such as the `/previous` value during a rotation).
    pub fn optional(name: impl Into<String>) -> Self {
        ParameterSpec {
            name: name.into(),
            required: false,
        }
    }
}

struct Loaded {
    values: HashMap<String, Secret>,
    fetched_at: Instant,
}

/// The secrets of one function, read together and cached for a TTL.
pub struct SecretCache {
    source: Arc<dyn ParameterSource>,
    specs: Vec<ParameterSpec>,
    names: Vec<String>,
    ttl: Duration,
    loaded: RwLock<Option<Arc<Loaded>>>,
    refreshing: Mutex<()>,
    last_forced: std::sync::Mutex<Option<Instant>>,
    last_failure: std::sync::Mutex<Option<Instant>>,
    fetches: AtomicU64,
}

/// After a failed read, no other read for this long: a failing Parameter Store is not hammered
/// by every (possibly forged) request.
pub const FAILURE_BACKOFF: Duration = Duration::from_secs(5);

/// When cached values exist but are past their TTL, a re-read may take this long before the
/// cached values are served instead (the re-read is abandoned and counts as a failure).
pub const STALE_REFRESH_WAIT: Duration = Duration::from_millis(500);

impl fmt::Debug for SecretCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretCache")
            .field("parameters", &self.names)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl SecretCache {
    /// A cache of `specs` read from `source`, each value kept for `ttl`.
    pub fn new(source: Arc<dyn ParameterSource>, specs: Vec<ParameterSpec>, ttl: Duration) -> Self {
        let names = specs.iter().map(|s| s.name.clone()).collect();
        SecretCache {
            source,
            specs,
            names,
            ttl,
            loaded: RwLock::new(None),
            refreshing: Mutex::new(()),
            last_forced: std::sync::Mutex::new(None),
            last_failure: std::sync::Mutex::new(None),
            fetches: AtomicU64::new(0),
        }
    }

    fn failed_recently(&self) -> bool {
        let last = match self.last_failure.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        last.is_some_and(|at| at.elapsed() < FAILURE_BACKOFF)
    }

    fn record_failure(&self, failed: bool) {
        let mut last = match self.last_failure.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *last = failed.then(Instant::now);
    }

    /// The full names of every parameter this cache reads.
    pub fn parameter_names(&self) -> &[String] {
        &self.names
    }

    /// How many times the source has been called: 1 after a cold start, then 1 per TTL.
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn current(&self) -> Option<Arc<Loaded>> {
        match self.loaded.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn store(&self, loaded: Arc<Loaded>) {
        match self.loaded.write() {
            Ok(mut guard) => *guard = Some(loaded),
            Err(poisoned) => *poisoned.into_inner() = Some(loaded),
        }
    }

    /// Reads all parameters now, replacing the cached values. Fails if a required one is missing.
    pub async fn refresh(&self) -> Result<()> {
        let _single_flight = self.refreshing.lock().await;
        self.refresh_locked().await
    }

    async fn refresh_locked(&self) -> Result<()> {
        if self.failed_recently() {
            return Err(Error::Secrets(format!(
                "Parameter Store failed less than {} s ago; not asking again yet",
                FAILURE_BACKOFF.as_secs()
            )));
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.read_all().await;
        self.record_failure(result.is_err());
        result
    }

    async fn read_all(&self) -> Result<()> {
        let raw = self.source.fetch(&self.names).await?;
        if let Some(missing) = self
            .specs
            .iter()
            .find(|s| s.required && !raw.contains_key(&s.name))
        {
            return Err(Error::Secrets(format!(
                "parameter {} does not exist or is not readable",
                missing.name
            )));
        }
        let values = raw.into_iter().map(|(k, v)| (k, Secret::new(v))).collect();
        self.store(Arc::new(Loaded {
            values,
            fetched_at: Instant::now(),
        }));
        Ok(())
    }

    /// Re-reads the parameters unless another caller did so while this one waited, so that
    /// a burst of auth failures causes one SSM call.
    async fn refresh_if_older_than(&self, seen: Option<Instant>) -> Result<()> {
        let _single_flight = self.refreshing.lock().await;
        let now_held = self.current().map(|l| l.fetched_at);
        if now_held.is_some() && now_held != seen {
            return Ok(());
        }
        self.refresh_locked().await
    }

    async fn fresh(&self) -> Result<Arc<Loaded>> {
        let held = self.current();
        match &held {
            Some(l) if l.fetched_at.elapsed() < self.ttl => return Ok(l.clone()),
            _ => {}
        }
        let refresh = self.refresh_if_older_than(held.as_ref().map(|l| l.fetched_at));
        let refreshed = match &held {
            // Cached values exist: a slow Parameter Store must not hold the request.
            Some(_) => match tokio::time::timeout(STALE_REFRESH_WAIT, refresh).await {
                Ok(result) => result,
                Err(_) => {
                    self.record_failure(true);
                    Err(Error::Secrets("Parameter Store is slow".into()))
                }
            },
            None => refresh.await,
        };
        match refreshed {
            Ok(()) => self
                .current()
                .ok_or_else(|| Error::Secrets("no values after refresh".into())),
            Err(e) => match held {
                Some(stale) => {
                    tracing::warn!(error = %e, "could not re-read parameters; using cached values");
                    Ok(stale)
                }
                None => Err(e),
            },
        }
    }

    /// The value of `name`, from the cache while it is fresh; `None` if an optional parameter is absent.
    pub async fn get(&self, name: &str) -> Result<Option<Secret>> {
        Ok(self.fresh().await?.values.get(name).cloned())
    }

    /// The value of a required parameter.
    pub async fn require(&self, name: &str) -> Result<Secret> {
        self.get(name)
            .await?
            .ok_or_else(|| Error::Secrets(format!("parameter {name} is not available")))
    }

    /// Whether a forced re-read may happen now (none in the last `min_age`); records it if so.
    fn may_force(&self, min_age: Duration) -> bool {
        let mut last = match self.last_forced.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if last.is_some_and(|at| at.elapsed() < min_age) {
            return false;
        }
        *last = Some(Instant::now());
        true
    }

    /// Uses the values of `names` (read from the cache, as [`SecretCache::get`] does); if the far
    /// side rejects them ([`Error::rejects_credential`]), they may have been rotated: the
    /// parameters are re-read and, only if Parameter Store now holds a different value for one
    /// of `names`, `use_values` runs once more with the new values. Otherwise the rejection is
    /// the answer.
    ///
    /// Concurrent callers that saw the same values cause one re-read between them; `reread`
    /// bounds how often a re-read may be forced at all.
    pub async fn use_rotating<T, F, Fut>(
        &self,
        names: &[&str],
        reread: Reread,
        mut use_values: F,
    ) -> Result<T>
    where
        F: FnMut(Values) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let loaded = Values(self.fresh().await?);
        let first = use_values(loaded.clone()).await;
        match &first {
            Err(e) if e.rejects_credential() => {}
            _ => return first,
        }
        if let Reread::AtMostEvery(gap) = reread {
            if !self.may_force(gap) {
                return first;
            }
        }
        self.refresh_if_older_than(Some(loaded.0.fetched_at))
            .await?;
        let reloaded = Values(self.fresh().await?);
        if names.iter().all(|n| reloaded.get(n) == loaded.get(n)) {
            return first;
        }
        tracing::info!(
            parameters = ?names,
            "credential rejected; trying once more with the value re-read from Parameter Store"
        );
        use_values(reloaded).await
    }
}

/// How often [`SecretCache::use_rotating`] may force a re-read of Parameter Store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reread {
    /// Whenever a value is rejected: for credentials the bridge sends (VWO's token, Sentry's
    /// signing secret), whose rejections only the far side causes.
    Always,
    /// At most once per this long: for values the bridge checks on incoming requests, so that
    /// unauthenticated callers cannot make every request an SSM call. A rotation (one mismatch
    /// after a quiet period) is still picked up at once.
    AtMostEvery(Duration),
}

/// The values of one read of Parameter Store, by name, as [`SecretCache::use_rotating`] passes
/// them.
#[derive(Clone)]
pub struct Values(Arc<Loaded>);

impl Values {
    /// The value of `name`; `None` for an optional parameter that does not exist.
    pub fn get(&self, name: &str) -> Option<&Secret> {
        self.0.values.get(name)
    }

    /// The value of a required parameter.
    pub fn require(&self, name: &str) -> Result<&Secret> {
        self.get(name)
            .ok_or_else(|| Error::Secrets(format!("parameter {name} is not available")))
    }
}

impl fmt::Debug for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.0.values.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex as StdMutex;

    /// A source whose values and availability the test changes.
    #[derive(Default)]
    struct Scripted {
        values: StdMutex<HashMap<String, String>>,
        down: std::sync::atomic::AtomicBool,
    }

    impl ParameterSource for Scripted {
        fn fetch<'a>(
            &'a self,
            names: &'a [String],
        ) -> BoxFuture<'a, Result<HashMap<String, String>>> {
            let result = if self.down.load(Ordering::SeqCst) {
                Err(Error::Secrets("ssm down".into()))
            } else {
                let values = self.values.lock().unwrap();
                Ok(names
                    .iter()
                    .filter_map(|n| Some((n.clone(), values.get(n)?.clone())))
                    .collect())
            };
            Box::pin(async move { result })
        }
    }

    fn setup(ttl: Duration) -> (Arc<Scripted>, SecretCache) {
        let source = Arc::new(Scripted::default());
        source
            .values
            .lock()
            .unwrap()
            .insert("/a".into(), "one".into());
        let cache = SecretCache::new(
            source.clone(),
            vec![
                ParameterSpec::required("/a"),
                ParameterSpec::optional("/a/previous"),
            ],
            ttl,
        );
        (source, cache)
    }

    // Real time, short durations: tokio's paused clock would need its `test-util` feature, and a
    // feature only tests enable makes `cargo run` rebuild everything after `cargo test`.
    const MS: Duration = Duration::from_millis(1);

    #[tokio::test]
    async fn warm_reads_come_from_the_cache_until_the_ttl_passes() {
        let (source, cache) = setup(MS * 200);
        cache.refresh().await.unwrap();
        source
            .values
            .lock()
            .unwrap()
            .insert("/a".into(), "two".into());
        assert_eq!(cache.require("/a").await.unwrap().expose(), "one");
        assert_eq!(cache.get("/a/previous").await.unwrap(), None);
        assert_eq!(cache.fetch_count(), 1);
        tokio::time::sleep(MS * 250).await;
        assert_eq!(cache.require("/a").await.unwrap().expose(), "two");
        assert_eq!(cache.fetch_count(), 2);
    }

    #[tokio::test]
    async fn an_outage_after_the_ttl_keeps_serving_the_cached_value() {
        let (source, cache) = setup(MS * 20);
        cache.refresh().await.unwrap();
        source.down.store(true, Ordering::SeqCst);
        tokio::time::sleep(MS * 50).await;
        assert_eq!(cache.require("/a").await.unwrap().expose(), "one");
    }

    #[tokio::test]
    async fn an_outage_before_any_value_is_an_error() {
        let (source, cache) = setup(Duration::from_secs(300));
        source.down.store(true, Ordering::SeqCst);
        let err = cache.require("/a").await.unwrap_err();
        assert_eq!(err.status(), 503);
    }

    #[tokio::test]
    async fn a_missing_required_parameter_is_named_in_the_error() {
        let (source, cache) = setup(Duration::from_secs(300));
        source.values.lock().unwrap().clear();
        let err = cache.refresh().await.unwrap_err().to_string();
        assert!(err.contains("/a"), "{err}");
    }

    fn rotate(source: &Scripted, value: &str) {
        source
            .values
            .lock()
            .unwrap()
            .insert("/a".into(), value.into());
    }

    /// A use that the far side accepts only with `accepted`, counting its calls.
    fn accepting<'c>(
        accepted: &'static str,
        calls: &'c AtomicU64,
    ) -> impl FnMut(Values) -> std::future::Ready<Result<String>> + 'c {
        move |v: Values| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(v.require("/a").and_then(|value| {
                if value.expose() == accepted {
                    Ok(value.expose().to_owned())
                } else {
                    Err(Error::Unauthorized("no"))
                }
            }))
        }
    }

    #[tokio::test]
    async fn a_rejected_credential_is_reread_once_and_used_again_when_rotated() {
        let (source, cache) = setup(Duration::from_secs(300));
        cache.refresh().await.unwrap();
        rotate(&source, "rotated");
        let calls = AtomicU64::new(0);
        let used = cache
            .use_rotating(&["/a"], Reread::Always, accepting("rotated", &calls))
            .await
            .unwrap();
        assert_eq!(used, "rotated");
        assert_eq!((calls.load(Ordering::SeqCst), cache.fetch_count()), (2, 2));
        // The new value is now cached: no further re-read.
        cache
            .use_rotating(&["/a"], Reread::Always, accepting("rotated", &calls))
            .await
            .unwrap();
        assert_eq!((calls.load(Ordering::SeqCst), cache.fetch_count()), (3, 2));
    }

    #[tokio::test]
    async fn an_unchanged_value_is_not_used_again() {
        let (_source, cache) = setup(Duration::from_secs(300));
        cache.refresh().await.unwrap();
        let calls = AtomicU64::new(0);
        let err = cache
            .use_rotating(&["/a"], Reread::Always, accepting("other", &calls))
            .await
            .unwrap_err();
        assert_eq!(err.status(), 401);
        // One re-read, no second use: the value in Parameter Store is the one rejected.
        assert_eq!((calls.load(Ordering::SeqCst), cache.fetch_count()), (1, 2));
    }

    #[tokio::test]
    async fn upstream_rejections_count_and_other_failures_do_not() {
        let (source, cache) = setup(Duration::from_secs(300));
        cache.refresh().await.unwrap();
        rotate(&source, "two");
        let upstream = |status| Error::Upstream {
            service: "VWO",
            status: Some(status),
            message: "x".into(),
        };
        let used = cache
            .use_rotating(&["/a"], Reread::Always, |v: Values| async move {
                match v.require("/a")?.expose() {
                    "two" => Ok(()),
                    _ => Err(upstream(403)),
                }
            })
            .await;
        assert!(used.is_ok());
        assert_eq!(cache.fetch_count(), 2);
        rotate(&source, "three");
        let other = cache
            .use_rotating(&["/a"], Reread::Always, |_: Values| async {
                Err::<(), _>(upstream(500))
            })
            .await;
        assert_eq!(other.unwrap_err().status(), 502);
        assert_eq!(cache.fetch_count(), 2);
    }

    #[tokio::test]
    async fn checks_of_incoming_requests_force_at_most_one_reread_per_gap() {
        let (source, cache) = setup(Duration::from_secs(300));
        cache.refresh().await.unwrap();
        rotate(&source, "two");
        let calls = AtomicU64::new(0);
        let gap = Reread::AtMostEvery(MS * 200);
        // A rotation right after the cold-start read is picked up at once.
        assert!(cache
            .use_rotating(&["/a"], gap, accepting("two", &calls))
            .await
            .is_ok());
        assert_eq!(cache.fetch_count(), 2);
        // Mismatches (say, forged requests) cause at most one forced read per gap.
        for _ in 0..10 {
            assert!(cache
                .use_rotating(&["/a"], gap, accepting("never", &calls))
                .await
                .is_err());
        }
        assert_eq!(cache.fetch_count(), 2);
        tokio::time::sleep(MS * 250).await;
        assert!(cache
            .use_rotating(&["/a"], gap, accepting("never", &calls))
            .await
            .is_err());
        assert_eq!(cache.fetch_count(), 3);
    }

    #[tokio::test]
    async fn concurrent_rejections_cause_one_reread() {
        let (source, cache) = setup(Duration::from_secs(300));
        cache.refresh().await.unwrap();
        rotate(&source, "rotated");
        let calls = AtomicU64::new(0);
        let (a, b) = tokio::join!(
            cache.use_rotating(&["/a"], Reread::Always, accepting("rotated", &calls)),
            cache.use_rotating(&["/a"], Reread::Always, accepting("rotated", &calls)),
        );
        assert_eq!(
            (a.unwrap(), b.unwrap()),
            ("rotated".into(), "rotated".into())
        );
        assert_eq!(cache.fetch_count(), 2);
    }

    #[test]
    fn secrets_do_not_print_and_compare_by_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s, Secret::new(String::from("hunter2")));
        assert_ne!(s, Secret::new("hunter3"));
        assert_ne!(s, Secret::new("hunter"));
    }
}
