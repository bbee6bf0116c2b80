//! The prefix cache: KV caches of recent requests, kept with the token ids they hold,
//! so the next request that starts with the same tokens (the next turn of a chat)
//! only computes what is new.
//!
//! Policy, chosen for bounded memory: at most `capacity` entries per model. A request
//! takes the entry with the longest common prefix and truncates it to that prefix
//! (never the whole prompt: the last prompt token is always run to get logits). With no
//! shared prefix and a full cache, the least recently used entry's buffers are recycled
//! (truncated to 0) instead of allocating new ones, so a model never holds more than
//! `capacity` KV buffers. After the request the entry goes back with the ids it now
//! holds. Generic over the cache type so the policy is tested on plain data.

/// What the prefix cache needs from a KV cache.
pub trait Truncate {
    fn truncate(&mut self, len: usize);
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

impl<C: Truncate> PrefixCache<C> {
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

    /// Take the best cache for `prompt`. `cache: None` = allocate a new one.
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
                let mut e = self.entries.swap_remove(i);
                let reused = n.min(limit);
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

    /// A stand-in KV cache: the ids it holds, so truncation is visible.
    #[derive(Debug, PartialEq)]
    struct Kv(Vec<u32>);
    impl Truncate for Kv {
        fn truncate(&mut self, len: usize) {
            self.0.truncate(len);
        }
    }

    #[test]
    fn a_second_turn_reuses_the_shared_prefix_but_never_the_last_prompt_token() {
        let mut pc = PrefixCache::new(2);
        assert!(pc.take(&[1, 2, 3]).cache.is_none());
        pc.put(vec![1, 2, 3, 4, 5], Kv(vec![1, 2, 3, 4, 5]));
        // Next turn: the old conversation plus new tokens.
        let t = pc.take(&[1, 2, 3, 4, 5, 6, 7]);
        assert_eq!(t.reused, 5);
        assert_eq!(t.cache, Some(Kv(vec![1, 2, 3, 4, 5])));
        // Same prompt again: all but the last token.
        pc.put(vec![1, 2, 3], Kv(vec![1, 2, 3]));
        let t = pc.take(&[1, 2, 3]);
        assert_eq!(t.reused, 2);
        assert_eq!(t.cache, Some(Kv(vec![1, 2])));
        // A diverging prompt keeps only the common part.
        pc.put(vec![1, 2, 3, 4], Kv(vec![1, 2, 3, 4]));
        let t = pc.take(&[1, 2, 9, 9]);
        assert_eq!(t.reused, 2);
        assert_eq!(t.cache, Some(Kv(vec![1, 2])));
    }

    #[test]
    fn the_longest_match_wins_and_a_full_cache_recycles_the_oldest_entry() {
        let mut pc = PrefixCache::new(2);
        pc.put(vec![1, 2], Kv(vec![1, 2]));
        pc.put(vec![1, 2, 3, 4], Kv(vec![1, 2, 3, 4]));
        let t = pc.take(&[1, 2, 3, 4, 5]);
        assert_eq!(t.reused, 4);
        pc.put(vec![1, 2, 3, 4, 5], t.cache.unwrap());
        assert_eq!(pc.len(), 2);
        // Unrelated prompt with a full cache: the least recently used buffers, emptied.
        let t = pc.take(&[7, 8, 9]);
        assert_eq!(t.reused, 0);
        assert_eq!(t.cache, Some(Kv(vec![])));
        assert_eq!(pc.len(), 1);
        // Putting beyond capacity drops the least recently used.
        pc.put(vec![7, 8], Kv(vec![7, 8]));
        pc.put(vec![5], Kv(vec![5]));
        assert_eq!(pc.len(), 2);
        assert_eq!(pc.take(&[1, 2, 3, 4, 5, 6]).reused, 0, "[1..5] was evicted");
    }

    #[test]
    fn capacity_zero_disables_caching() {
        let mut pc = PrefixCache::new(0);
        pc.put(vec![1, 2, 3], Kv(vec![1, 2, 3]));
        assert!(pc.is_empty());
        assert!(pc.take(&[1, 2, 3, 4]).cache.is_none());
        assert_eq!(common_prefix(&[1, 2, 3], &[1, 2, 4]), 2);
    }
}
