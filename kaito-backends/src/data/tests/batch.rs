//! Shuffle/split, packing and padded batches.

use crate::data::{Batch, IGNORE_INDEX, TokenizedExample, batches, pack, shuffle_and_split};

fn ex(ids: &[u32], trained_from: usize) -> TokenizedExample {
    let labels = ids
        .iter()
        .enumerate()
        .map(|(i, &id)| {
            if i < trained_from {
                IGNORE_INDEX
            } else {
                i64::from(id)
            }
        })
        .collect();
    TokenizedExample {
        input_ids: ids.to_vec(),
        labels,
    }
}

#[test]
fn shuffle_is_deterministic_per_seed_and_split_sizes_follow_datasets() {
    let items: Vec<u32> = (0..50).collect();
    let (a, a_eval) = shuffle_and_split(items.clone(), true, 42, 0.8).unwrap();
    let (b, b_eval) = shuffle_and_split(items.clone(), true, 42, 0.8).unwrap();
    assert_eq!((&a, &a_eval), (&b, &b_eval));
    assert_eq!((a.len(), a_eval.len()), (40, 10));
    assert_ne!(a, items[..40], "shuffled");
    let (c, _) = shuffle_and_split(items.clone(), true, 7, 0.8).unwrap();
    assert_ne!(a, c, "another seed, another order");
    let mut all: Vec<u32> = a.iter().chain(&a_eval).copied().collect();
    all.sort();
    assert_eq!(all, items);
    // No shuffle: file order; 1 means no evaluation split.
    let (train, eval) = shuffle_and_split(items.clone(), false, 42, 0.9).unwrap();
    assert_eq!((train, eval), (items[..45].to_vec(), items[45..].to_vec()));
    let (train, eval) = shuffle_and_split(items.clone(), true, 42, 1.0).unwrap();
    assert_eq!((train.len(), eval.len()), (50, 0));
    // ceil(0.25 * 10) = 3 evaluation items; 0.8 of 10 is exactly 2, despite floating point.
    assert_eq!(
        shuffle_and_split((0..10).collect::<Vec<_>>(), false, 0, 0.75)
            .unwrap()
            .1,
        [7, 8, 9]
    );
    assert_eq!(
        shuffle_and_split((0..10).collect::<Vec<_>>(), false, 0, 0.8)
            .unwrap()
            .1,
        [8, 9]
    );
}

#[test]
fn split_errors() {
    for bad in [0.0, -0.5, 1.5, f64::NAN] {
        let e = shuffle_and_split(vec![1, 2, 3], true, 1, bad)
            .unwrap_err()
            .to_string();
        assert!(e.contains("train_test_split"), "{e}");
    }
    let e = shuffle_and_split(vec![1], true, 1, 0.5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("both must be non-empty"), "{e}");
}

#[test]
fn right_padding_with_masks() {
    let b = Batch::collate(&[ex(&[5, 6, 7], 1), ex(&[8], 0)], 0);
    assert_eq!((b.batch_size, b.seq_len), (2, 3));
    assert_eq!(b.input_ids, [5, 6, 7, 8, 0, 0]);
    assert_eq!(
        b.labels,
        [IGNORE_INDEX, 6, 7, 8, IGNORE_INDEX, IGNORE_INDEX]
    );
    assert_eq!(b.attention_mask, [1, 1, 1, 1, 0, 0]);
    // The first column is never a target after the causal shift.
    assert_eq!(b.trainable_tokens(), 2);
    assert_eq!(b.real_tokens(), 4);
}

#[test]
fn batches_keep_the_last_partial_batch() {
    let examples: Vec<_> = (1..=5).map(|n| ex(&vec![n; n as usize], 0)).collect();
    let bs = batches(&examples, 2, 0).unwrap();
    assert_eq!(
        bs.iter()
            .map(|b| (b.batch_size, b.seq_len))
            .collect::<Vec<_>>(),
        [(2, 2), (2, 4), (1, 5)]
    );
    assert!(batches(&examples, 0, 0).is_err());
}

#[test]
fn packing_wraps_examples_into_fixed_chunks() {
    let packed = pack(
        &[ex(&[1, 2, 3], 1), ex(&[4, 5], 0), ex(&[6, 7, 8, 9], 2)],
        4,
    )
    .unwrap();
    assert_eq!(
        packed
            .iter()
            .map(|e| e.input_ids.clone())
            .collect::<Vec<_>>(),
        [vec![1, 2, 3, 4], vec![5, 6, 7, 8], vec![9]]
    );
    assert_eq!(packed[0].labels, [IGNORE_INDEX, 2, 3, 4]);
    assert_eq!(packed[1].labels, [5, IGNORE_INDEX, IGNORE_INDEX, 8]);
    assert!(pack(&[], 0).is_err());
}
