//! Shuffling, the train/eval split, packing and padded batches.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::tokenize::{IGNORE_INDEX, TokenizedExample};
use crate::{Error, Result};

/// KAITO's `DatasetConfig` split: shuffles `items` with `seed` when `shuffle` is set, then keeps
/// the first `train_fraction` for training and the rest for evaluation. `train_fraction` must be
/// in (0, 1]; 1 means no evaluation split. As `datasets.train_test_split` does, the evaluation
/// part has `ceil((1 - train_fraction) * n)` items and neither part may end up empty.
///
/// The same seed always gives the same order (for this build: the generator is `rand`'s `StdRng`,
/// pinned with the workspace's `rand` version), though not the order Python's `datasets` gives.
pub fn shuffle_and_split<T>(
    mut items: Vec<T>,
    shuffle: bool,
    seed: u64,
    train_fraction: f64,
) -> Result<(Vec<T>, Vec<T>)> {
    // Written so that NaN is rejected too.
    let valid = train_fraction > 0.0 && train_fraction <= 1.0;
    if !valid {
        return Err(Error::invalid(
            "DatasetConfig.train_test_split",
            format!("must be in (0, 1], got {train_fraction}"),
        ));
    }
    if shuffle {
        items.shuffle(&mut StdRng::seed_from_u64(seed));
    }
    if train_fraction >= 1.0 {
        return Ok((items, Vec::new()));
    }
    let n = items.len();
    // Rounded to 9 decimals first so that e.g. (1 - 0.8) * 10 is 2, not 2.0000000000000004 -> 3.
    let eval_len = (((1.0 - train_fraction) * n as f64 * 1e9).round() / 1e9).ceil() as usize;
    if eval_len == 0 || eval_len >= n {
        return Err(Error::invalid(
            "DatasetConfig.train_test_split",
            format!(
                "a split of {train_fraction} leaves {} training and {eval_len} evaluation examples \
                 of {n}; both must be non-empty",
                n.saturating_sub(eval_len)
            ),
        ));
    }
    let eval = items.split_off(n - eval_len);
    Ok((items, eval))
}

/// TRL's `packing` with the `wrapped` strategy: all examples end to end, cut into sequences of
/// `seq_len` tokens (the last one may be shorter). Examples are not separated in attention; each
/// still ends with its EOS token, so the model sees where one stops.
pub fn pack(examples: &[TokenizedExample], seq_len: usize) -> Result<Vec<TokenizedExample>> {
    if seq_len == 0 {
        return Err(Error::invalid(
            "max_seq_length",
            "must be at least 1 for packing",
        ));
    }
    let input_ids: Vec<u32> = examples
        .iter()
        .flat_map(|e| e.input_ids.iter().copied())
        .collect();
    let labels: Vec<i64> = examples
        .iter()
        .flat_map(|e| e.labels.iter().copied())
        .collect();
    Ok(input_ids
        .chunks(seq_len)
        .zip(labels.chunks(seq_len))
        .map(|(ids, labels)| TokenizedExample {
            input_ids: ids.to_vec(),
            labels: labels.to_vec(),
        })
        .collect())
}

/// A batch in row-major `[batch_size, seq_len]` layout, padded on the right.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Rows.
    pub batch_size: usize,
    /// Columns: the longest example of the batch.
    pub seq_len: usize,
    /// Token ids; padding is the pad id.
    pub input_ids: Vec<u32>,
    /// Labels (unshifted, see [`TokenizedExample`]); padding is [`IGNORE_INDEX`].
    pub labels: Vec<i64>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
}

impl Batch {
    /// Pads `examples` on the right to the longest of them (the collator TRL uses).
    pub fn collate(examples: &[TokenizedExample], pad_id: u32) -> Self {
        let seq_len = examples
            .iter()
            .map(TokenizedExample::len)
            .max()
            .unwrap_or(0);
        let total = seq_len * examples.len();
        let mut batch = Batch {
            batch_size: examples.len(),
            seq_len,
            input_ids: Vec::with_capacity(total),
            labels: Vec::with_capacity(total),
            attention_mask: Vec::with_capacity(total),
        };
        for e in examples {
            let pad = seq_len - e.len();
            batch.input_ids.extend(
                e.input_ids
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(pad_id, pad)),
            );
            batch.labels.extend(
                e.labels
                    .iter()
                    .copied()
                    .chain(std::iter::repeat_n(IGNORE_INDEX, pad)),
            );
            batch
                .attention_mask
                .extend(std::iter::repeat_n(1, e.len()).chain(std::iter::repeat_n(0, pad)));
        }
        batch
    }

    /// Labels that count towards the loss after the causal shift (the first column never does).
    /// A batch with none must be skipped or weighted zero, not divided by.
    pub fn trainable_tokens(&self) -> usize {
        self.labels
            .chunks(self.seq_len.max(1))
            .map(|row| row.iter().skip(1).filter(|&&l| l != IGNORE_INDEX).count())
            .sum()
    }

    /// Real (unpadded) tokens, for tokens/s.
    pub fn real_tokens(&self) -> usize {
        self.attention_mask.iter().filter(|&&m| m == 1).count()
    }
}

/// `examples` in order, `batch_size` at a time (the last batch may be smaller, as with the HF
/// Trainer's default `dataloader_drop_last=False`).
pub fn batches(
    examples: &[TokenizedExample],
    batch_size: usize,
    pad_id: u32,
) -> Result<Vec<Batch>> {
    if batch_size == 0 {
        return Err(Error::invalid(
            "per_device_train_batch_size",
            "must be at least 1",
        ));
    }
    Ok(examples
        .chunks(batch_size)
        .map(|chunk| Batch::collate(chunk, pad_id))
        .collect())
}
