//! Per-client concurrency: one client (one credential, or every client without one)
//! may have at most `max` requests in flight; the next is `rate_limited` (429, with
//! `retry-after`) instead of queueing without bound. A runaway script cannot take every
//! connection, upstream slot and local generation from the user's other tools.
//!
//! The permit is held by the response body, so a streaming answer counts until its last
//! byte is sent (or the client hangs up).

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{HeaderMap, Response};
use http_body::{Frame, SizeHint};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Requests one client may have in flight.
pub const DEFAULT_PER_CLIENT: usize = 128;

/// Distinct clients remembered before idle ones are forgotten.
const MAX_TRACKED: usize = 1024;

#[derive(Debug)]
pub struct ClientLimits {
    max: usize,
    clients: Mutex<HashMap<u64, Arc<Semaphore>>>,
}

impl ClientLimits {
    pub fn new(max: usize) -> Self {
        ClientLimits {
            max: max.max(1),
            clients: Mutex::default(),
        }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// A permit for the client these headers identify, or `None` when it is at its limit.
    pub fn try_acquire(&self, headers: &HeaderMap) -> Option<OwnedSemaphorePermit> {
        let key = client_key(headers);
        let sem = {
            let mut map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
            if map.len() >= MAX_TRACKED && !map.contains_key(&key) {
                // Forget clients with nothing in flight.
                map.retain(|_, s| s.available_permits() < self.max);
            }
            map.entry(key)
                .or_insert_with(|| Arc::new(Semaphore::new(self.max)))
                .clone()
        };
        sem.try_acquire_owned().ok()
    }

    /// Requests in flight across every client (read by the app's tray once a second;
    /// the request path itself keeps no extra counter).
    pub fn in_flight(&self) -> usize {
        let map = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        map.values()
            .map(|s| self.max.saturating_sub(s.available_permits()))
            .sum()
    }
}

/// Who a request is from, as far as limits go: its credential (the client token, once
/// tokens exist; any API key a client sends until then), hashed; 0 for none.
fn client_key(headers: &HeaderMap) -> u64 {
    let cred = ["authorization", "x-api-key", "api-key"]
        .iter()
        .find_map(|h| headers.get(*h));
    match cred {
        None => 0,
        Some(v) => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            v.as_bytes().hash(&mut h);
            h.finish() | 1
        }
    }
}

/// Keep `permit` until the response body is done.
pub fn hold(response: Response<Body>, permit: OwnedSemaphorePermit) -> Response<Body> {
    response.map(|inner| {
        Body::new(Held {
            inner,
            _permit: permit,
        })
    })
}

struct Held {
    inner: Body,
    _permit: OwnedSemaphorePermit,
}

impl HttpBody for Held {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_credential_has_its_own_limit_and_permits_come_back() {
        let l = ClientLimits::new(2);
        let with = |k: &str| {
            let mut h = HeaderMap::new();
            h.insert("x-api-key", k.parse().unwrap());
            h
        };
        let a1 = l.try_acquire(&with("a")).unwrap();
        let _a2 = l.try_acquire(&with("a")).unwrap();
        assert!(l.try_acquire(&with("a")).is_none(), "a is at its limit");
        let _b = l.try_acquire(&with("b")).unwrap();
        let _none = l.try_acquire(&HeaderMap::new()).unwrap();
        assert_eq!(l.in_flight(), 4);
        drop(a1);
        assert_eq!(l.in_flight(), 3);
        assert!(l.try_acquire(&with("a")).is_some());
    }
}
