//! The prefix cache: KV caches of recent requests, kept with the token ids they hold,
//! so the next request that starts with the same tokens (the next turn of a chat, or
//! another request with the same system prompt and tools) only computes what is new.
//!
//! Policy, chosen for bounded memory: at most `capacity` entries per model. A request
//! uses the entry with the longest common prefix (never the whole prompt: the last
//! prompt token is always run to get logits):
//! - when the request continues the whole entry (the next turn of its conversation),
//!   it takes the entry's buffers and brings them back longer afterwards;
//! - when it shares only part of it (the same preamble, another conversation), it gets
//!   a copy of that part ([`Kv::fork`]) and the entry stays for the next request with
//!   the same preamble — concurrent ones included.
//!
//! With no shared prefix and a full cache, the least recently used entry's buffers are
//! recycled (truncated to 0) instead of allocating new ones. After the request its
//! cache goes back with the ids it now holds, and the least recently used entry beyond
//! `capacity` is dropped. Generic over the cache type so the policy is tested on plain
//! data.

/// What the prefix cache needs from a KV cache.
pub trait Kv: Sized {
    /// Forget everything after `len` positions.
    fn truncate(&mut self, len: usize);
    /// A new cache holding a copy of the first `len` positions (`None` if the copy
    /// could not be made: the caller computes them instead).
    fn fork(&self, len: usize) -> Option<Self>;
}

#[derive(Debug)]
struct Entry<C> {
    tokens: Vec<u32>,
    cache: C,
    used: u64,
}

#[derive(Debug)]
pub struct PrefixCache<C> {
    entries: Vec<Entry<C>>,
    capacity: usize,
    clock: u64,
}

/// A cache taken for one request and how many prompt tokens it already holds.
#[derive(Debug)]
pub struct Taken<C> {
    pub cache: Option<C>,
    pub reused: usize,
}

/// Length of the common prefix of `a` and `b`.
pub fn common_prefix(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

impl<C: Kv> PrefixCache<C> {
    pub fn new(capacity: usize) -> Self {
        PrefixCache {
            entries: Vec::new(),
            capacity,
            clock: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Longest prefix of `prompt` an entry holds that a request may reuse (all but
    /// the prompt's last token).
    pub fn best_len(&self, prompt: &[u32]) -> usize {
        let n = self
            .entries
            .iter()
            .map(|e| common_prefix(&e.tokens, prompt))
            .max()
            .unwrap_or(0);
        n.min(prompt.len().saturating_sub(1))
    }

    /// The best cache for `prompt`. `cache: None` = allocate a new one.
    pub fn take(&mut self, prompt: &[u32]) -> Taken<C> {
        let best = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (i, common_prefix(&e.tokens, prompt)))
            .max_by_key(|&(i, n)| (n, self.entries[i].used));
        let limit = prompt.len().saturating_sub(1);
        match best {
            Some((i, n)) if n > 0 && limit > 0 => {
                let reused = n.min(limit);
                if reused < self.entries[i].tokens.len() {
                    // Part of the entry is shared: copy that part, keep the entry.
                    self.clock += 1;
                    self.entries[i].used = self.clock;
                    if let Some(cache) = self.entries[i].cache.fork(reused) {
                        return Taken {
                            cache: Some(cache),
                            reused,
                        };
                    }
                }
                let mut e = self.entries.swap_remove(i);
                e.cache.truncate(reused);
                Taken {
                    cache: Some(e.cache),
                    reused,
                }
            }
            _ if self.capacity > 0 && self.entries.len() >= self.capacity => {
                let lru = self
                    .entries
                    .iter()
                    .enumerate()
                    .min_by_key(|(_, e)| e.used)
                    .map(|(i, _)| i)
                    .unwrap_or(0);
                let mut e = self.entries.swap_remove(lru);
                e.cache.truncate(0);
                Taken {
                    cache: Some(e.cache),
                    reused: 0,
                }
            }
            _ => Taken {
                cache: None,
                reused: 0,
            },
        }
    }

    /// Return a cache holding the KV of `tokens`.
    pub fn put(&mut self, tokens: Vec<u32>, cache: C) {
        if self.capacity == 0 {
            return;
        }
        self.clock += 1;
        self.entries.push(Entry {
            tokens,
            cache,
            used: self.clock,
        });
        while self.entries.len() > self.capacity {
            let lru = self
                .entries
                .iter()
                .enumerate()
                .min_by_key(|(_, e)| e.used)
                .map(|(i, _)| i)
                .unwrap_or(0);
            self.entries.swap_remove(lru);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in KV cache: the ids it holds, so truncation and copies are visible.
    #[derive(Debug, PartialEq)]
    struct Ids(Vec<u32>);
    impl Kv for Ids {
        fn truncate(&mut self, len: usize) {
            self.0.truncate(len);
        }
        fn fork(&self, len: usize) -> Option<Self> {
            // A cache that starts with 99 cannot be copied (the fallback's test).
            (self.0.first() != Some(&99)).then(|| Ids(self.0[..len].to_vec()))
        }
    }

    #[test]
    fn a_second_turn_reuses_the_shared_prefix_but_never_the_last_prompt_token() {
        let mut pc = PrefixCache::new(2);
        assert!(pc.take(&[1, 2, 3]).cache.is_none());
        pc.put(vec![1, 2, 3, 4, 5], Ids(vec![1, 2, 3, 4, 5]));
        // Next turn: the old conversation plus new tokens.
        let t = pc.take(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(t.reused, 5);
        assert_eq!(t.cache, Some(Ids(vec![1, 2, 3, 4, 5])));
        // Same prompt again: all but the last token.
        pc.put(vec![1, 2, 3], Ids(vec![1, 2, 3]));
        let t = pc.take(&[1, 2, 3]);
        assert_eq!(t.reused, 2);
        assert_eq!(t.cache, Some(Ids(vec![1, 2])));
        // A diverging prompt keeps only the common part.
        pc.put(vec![1, 2, 3, 4], Ids(vec![1, 2, 3, 4]));
        let t = pc.take(&[1, 2, 9, 9]);
        assert_eq!(t.reused, 2);
        assert_eq!(t.cache, Some(Ids(vec![1, 2])));
    }

    #[test]
    fn the_longest_match_wins_and_a_full_cache_recycles_the_oldest_entry() {
        let mut pc = PrefixCache::new(2);
        pc.put(vec![1, 2], Ids(vec![1, 2]));
        pc.put(vec![1, 2, 3, 4], Ids(vec![1, 2, 3, 4]));
        let t = pc.take(&[1, 2, 3, 4, 5]);
        assert_eq!(t.reused, 4);
        pc.put(vec![1, 2, 3, 4, 5], t.cache.unwrap());
        assert_eq!(pc.len(), 2);
        // Unrelated prompt with a full cache: the least recently used buffers, emptied.
        let t = pc.take(&[7, 8, 9]);
        assert_eq!(t.reused, 0);
        assert_eq!(t.cache, Some(Ids(vec![])));
        assert_eq!(pc.len(), 1);
        // Putting beyond capacity drops the least recently used.
        pc.put(vec![7, 8], Ids(vec![7, 8]));
        pc.put(vec![5], Ids(vec![5]));
        assert_eq!(pc.len(), 2);
        assert_eq!(pc.take(&[1, 2, 3, 4, 5, 6]).reused, 0, "[1..5] was evicted");
    }

    #[test]
    fn a_shared_preamble_is_copied_and_stays_for_the_next_request() {
        let mut pc = PrefixCache::new(4);
        // An earlier conversation: preamble [1, 2, 3], then its own turn [4, 5].
        pc.put(vec![1, 2, 3, 4, 5], Ids(vec![1, 2, 3, 4, 5]));
        assert_eq!(pc.best_len(&[1, 2, 3, 7]), 3);
        // Two requests with the same preamble, one after the other, each before the
        // other is done: both get a copy of the preamble; the entry is still whole.
        let a = pc.take(&[1, 2, 3, 7]);
        let b = pc.take(&[1, 2, 3, 8, 8]);
        assert_eq!((a.reused, a.cache), (3, Some(Ids(vec![1, 2, 3]))));
        assert_eq!((b.reused, b.cache), (3, Some(Ids(vec![1, 2, 3]))));
        assert_eq!(pc.len(), 1);
        assert_eq!(pc.best_len(&[1, 2, 3, 4, 5, 6]), 5);
        // The conversation's next turn continues the whole entry: it takes it.
        let c = pc.take(&[1, 2, 3, 4, 5, 6]);
        assert_eq!((c.reused, c.cache), (5, Some(Ids(vec![1, 2, 3, 4, 5]))));
        assert!(pc.is_empty());
        assert_eq!(pc.best_len(&[1, 2, 3, 7]), 0);
        // A cache that cannot be copied is taken and cut instead.
        pc.put(vec![99, 2, 3], Ids(vec![99, 2, 3]));
        let d = pc.take(&[99, 2, 5]);
        assert_eq!((d.reused, d.cache), (2, Some(Ids(vec![99, 2]))));
        assert!(pc.is_empty());
    }

    #[test]
    fn capacity_zero_disables_caching() {
        let mut pc = PrefixCache::new(0);
        pc.put(vec![1, 2, 3], Ids(vec![1, 2, 3]));
        assert!(pc.is_empty());
        assert!(pc.take(&[1, 2, 3, 4]).cache.is_none());
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4]), 2);
    }
}
