//! The posture cache: live audits with a TTL, one audit per resource and credentials at a time.
//!
//! Keyed by the resource *and* the credentials that read it: two baselines with different
//! `aws.roleArn` never share an audit, so one tenant's broken credentials cannot turn another
//! tenant's verdicts into errors.
//!
//! The same bucket referenced by 500 workloads is audited once per TTL; callers that ask while
//! an audit runs wait for it instead of starting their own. Failed reads are kept for a shorter
//! time so they are retried soon.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use tokio::sync::Mutex as AsyncMutex;

use crate::cloud::Credentials;
use crate::posture::{CloudResource, Posture, PostureMap};

type Slot = Arc<AsyncMutex<Option<(Posture, Instant)>>>;

/// A resource and the credentials that audit it.
pub type AuditKey = (CloudResource, Credentials);

pub struct PostureCache {
    slots: Mutex<HashMap<AuditKey, Slot>>,
    ttl: Duration,
    error_ttl: Duration,
}

impl PostureCache {
    pub fn new(ttl: Duration) -> PostureCache {
        PostureCache {
            slots: Mutex::new(HashMap::new()),
            ttl,
            error_ttl: ttl.min(Duration::from_secs(30)),
        }
    }

    fn slot(&self, r: &AuditKey) -> Slot {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(r.clone()).or_default().clone()
    }

    /// The posture of `r`, audited with `audit` when missing or older than the TTL.
    /// `published` (what an earlier leader audited) fills an empty slot when it is younger than
    /// the TTL and not an error. Returns the posture and whether this call audited it.
    pub async fn get<F, Fut>(
        &self,
        r: &AuditKey,
        published: Option<&Posture>,
        now: DateTime<Utc>,
        audit: F,
    ) -> (Posture, bool)
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Posture>,
    {
        let slot = self.slot(r);
        let mut guard = slot.lock().await;
        if guard.is_none()
            && let Some(p) = published.filter(|p| p.error.is_none())
            && let Some(age) = p.observed_at.and_then(|at| (now - at).to_std().ok())
            && age < self.ttl
            && let Some(at) = Instant::now().checked_sub(age)
        {
            let mut p = p.clone();
            p.expires_at = None;
            *guard = Some((p, at));
        }
        if let Some((p, at)) = guard.as_ref() {
            let ttl = if p.error.is_some() {
                self.error_ttl
            } else {
                self.ttl
            };
            if at.elapsed() < ttl {
                return (p.clone(), false);
            }
        }
        let fresh = audit().await;
        *guard = Some((fresh.clone(), Instant::now()));
        (fresh, true)
    }

    /// Every posture read with these credentials (fresh or not: an old fact beats no fact
    /// until it is re-read).
    pub fn postures(&self, credentials: &Credentials) -> PostureMap {
        let slots: Vec<Slot> = self
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((_, c), _)| c == credentials)
            .map(|(_, s)| s.clone())
            .collect();
        let mut map = PostureMap::default();
        for s in slots {
            if let Ok(g) = s.try_lock()
                && let Some((p, _)) = g.as_ref()
            {
                map.replace(p.clone());
            }
        }
        map
    }

    /// Forget what nothing references any more.
    pub fn retain(&self, keep: impl Fn(&AuditKey) -> bool) {
        self.slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|r, _| keep(r));
    }

    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::posture::Source;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn key(bucket: &str) -> AuditKey {
        (
            CloudResource::S3Bucket(bucket.into()),
            Credentials::Aws {
                region: None,
                role: None,
            },
        )
    }

    #[tokio::test]
    async fn concurrent_requests_share_one_audit_and_the_ttl_holds() {
        let cache = Arc::new(PostureCache::new(Duration::from_secs(60)));
        let calls = Arc::new(AtomicUsize::new(0));
        let r = key("shared");
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (cache, calls, r) = (cache.clone(), calls.clone(), r.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get(&r, None, chrono::Utc::now(), || async {
                        calls.fetch_add(1, Ordering::SeqCst);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        Posture::new(r.0.clone(), Source::Live)
                    })
                    .await
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(cache.postures(&r.1).len(), 1);
        // Other credentials audit on their own.
        let other = (
            r.0.clone(),
            Credentials::Aws {
                region: None,
                role: Some("arn:aws:iam::1:role/other".to_string()),
            },
        );
        let (_, audited) = cache
            .get(&other, None, chrono::Utc::now(), || async {
                Posture::new(other.0.clone(), Source::Live)
            })
            .await;
        assert!(audited);
    }

    #[tokio::test]
    async fn errors_expire_sooner_than_facts() {
        let cache = PostureCache {
            slots: Mutex::new(HashMap::new()),
            ttl: Duration::from_secs(60),
            error_ttl: Duration::from_millis(10),
        };
        let r = key("flaky");
        let now = chrono::Utc::now();
        let (_, audited) = cache
            .get(&r, None, now, || async {
                Posture::failed(r.0.clone(), "timeout", chrono::Utc::now())
            })
            .await;
        assert!(audited);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (p, audited) = cache
            .get(&r, None, now, || async {
                Posture::new(r.0.clone(), Source::Live)
            })
            .await;
        assert!(audited && p.error.is_none());
        let (_, audited) = cache
            .get(&r, None, now, || async {
                Posture::new(r.0.clone(), Source::Live)
            })
            .await;
        assert!(!audited);
    }

    #[tokio::test]
    async fn a_new_leader_trusts_what_was_published_within_the_ttl() {
        let cache = PostureCache::new(Duration::from_secs(60));
        let now = chrono::Utc::now();
        let r = key("published");
        let mut published = Posture::new(r.0.clone(), Source::Live);
        published.observed_at = Some(now - chrono::Duration::seconds(30));
        let (p, audited) = cache
            .get(&r, Some(&published), now, || async {
                Posture::new(r.0.clone(), Source::Live)
            })
            .await;
        assert!(!audited);
        assert_eq!(p.observed_at, published.observed_at);
        // Too old, or an error: audited again.
        let r2 = key("old");
        published.resource = r2.0.clone();
        published.observed_at = Some(now - chrono::Duration::seconds(90));
        let (_, audited) = cache
            .get(&r2, Some(&published), now, || async {
                Posture::new(r2.0.clone(), Source::Live)
            })
            .await;
        assert!(audited);
        let r3 = key("failed");
        let failed = Posture::failed(r3.0.clone(), "AccessDenied", now);
        let (_, audited) = cache
            .get(&r3, Some(&failed), now, || async {
                Posture::new(r3.0.clone(), Source::Live)
            })
            .await;
        assert!(audited);
    }
}
