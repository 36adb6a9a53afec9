//! A small bounded pool of emptied values kept for reuse ([`Kept`]): buffers that grew
//! to their working size are handed to the next user instead of being freed and
//! allocated (and page-faulted, and grown) again.

use std::sync::Mutex;

/// At most `keep` values kept for reuse; shared by threads.
pub struct Kept<T> {
    items: Mutex<Vec<T>>,
    keep: usize,
}

impl<T> Kept<T> {
    /// An empty pool keeping at most `keep` values.
    pub const fn new(keep: usize) -> Self {
        Kept {
            items: Mutex::new(Vec::new()),
            keep,
        }
    }

    /// The value kept last, when there is one.
    pub fn take(&self) -> Option<T> {
        self.items.lock().unwrap_or_else(|e| e.into_inner()).pop()
    }

    /// Keeps `value` unless `keep` values are kept already (then it is dropped).
    pub fn give(&self, value: T) {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        if items.len() < self.keep {
            items.push(value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_its_bound_and_gives_back_the_last_kept() {
        let k = Kept::new(2);
        assert_eq!(k.take(), None::<u32>);
        k.give(1);
        k.give(2);
        k.give(3);
        assert_eq!((k.take(), k.take(), k.take()), (Some(2), Some(1), None));
    }
}
