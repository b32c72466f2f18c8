//! Training on the tiny models: memorising, resuming from a checkpoint, cancelling.

use super::*;

fn tiny_dataset() -> Vec<TokenizedExample> {
    (0..4)
        .map(|k| {
            let ids: Vec<u32> = (0..16)
                .map(|i| 3 + ((i * (k + 3) + 7 * k) % 300) as u32)
                .collect();
            let mut labels: Vec<i64> = ids.iter().map(|v| *v as i64).collect();
            labels[..4].iter_mut().for_each(|l| *l = -100); // a "prompt" that is not trained on
            TokenizedExample {
                input_ids: ids,
                labels,
            }
        })
        .collect()
}

fn train_opts() -> TrainOptions {
    TrainOptions {
        lora: LoraSettings {
            r: 8,
            lora_alpha: 16.0,
            lora_dropout: 0.05,
            target_modules: all_modules(),
        },
        learning_rate: 2e-2,
        schedule: Schedule::Cosine,
        warmup_steps: 2,
        batch_size: 2,
        gradient_accumulation_steps: 1,
        max_steps: Some(60),
        max_seq_len: 64,
        seed: 7,
        ..TrainOptions::default()
    }
}

#[test]
fn training_memorises_a_tiny_dataset() {
    for quant in [BaseQuant::None, BaseQuant::Nf4 { double_quant: true }] {
        memorise(quant);
    }
}

fn memorise(quant: BaseQuant) {
    let base =
        runtime::load_base::<CpuTrain>(&fixture("tiny-llama"), quant, &Default::default()).unwrap();
    let data = tiny_dataset();
    let mut reports = Vec::new();
    let out = train::train(
        &base.model,
        &data,
        &data[..1],
        &train_opts(),
        &AtomicBool::new(false),
        &mut |p| reports.push(p.clone()),
    )
    .unwrap();
    let first = out.losses[0];
    let last = *out.losses.last().unwrap();
    assert!(
        first > 3.0,
        "a random model starts far from the data, got {first}"
    );
    assert!(
        last < 0.5,
        "loss should fall below 0.5 after 60 steps, got {last} (first {first})"
    );
    assert!(out.eval_loss.unwrap() < 0.5);
    assert_eq!(reports.len(), 60);
    assert!(
        reports
            .iter()
            .all(|p| p.tokens_per_second > 0.0 && p.learning_rate >= 0.0)
    );
    assert_eq!(
        reports[0].learning_rate, 0.0,
        "transformers' warmup starts at lr 0"
    );
}

#[test]
fn resumed_run_reproduces_the_uninterrupted_loss() {
    let base = runtime::load_base::<CpuTrain>(
        &fixture("tiny-qwen2"),
        BaseQuant::None,
        &Default::default(),
    )
    .unwrap();
    let data = tiny_dataset();
    let dir = tempfile::tempdir().unwrap();
    let mut opts = train_opts();
    opts.max_steps = Some(6);
    opts.gradient_accumulation_steps = 2;
    opts.batch_size = 1;
    opts.save_strategy = SaveStrategy::Steps(3);
    opts.checkpoint_dir = Some(dir.path().to_path_buf());
    let never = AtomicBool::new(false);
    let full = train::train(&base.model, &data, &[], &opts, &never, &mut |_| {}).unwrap();
    assert!(dir.path().join("checkpoint-3/trainer_state.json").exists());
    let mut resume = opts.clone();
    resume.checkpoint_dir = Some(dir.path().join("again"));
    resume.resume_from = Some(dir.path().join("checkpoint-3"));
    let rest = train::train(&base.model, &data, &[], &resume, &never, &mut |_| {}).unwrap();
    assert_eq!(rest.losses.len(), 3);
    for (a, b) in full.losses[3..].iter().zip(&rest.losses) {
        assert!(
            (a - b).abs() < 1e-5,
            "uninterrupted {:?} vs resumed {:?}",
            &full.losses[3..],
            rest.losses
        );
    }
}

#[test]
fn cancellation_stops_training() {
    let base = runtime::load_base::<CpuTrain>(
        &fixture("tiny-llama"),
        BaseQuant::None,
        &Default::default(),
    )
    .unwrap();
    let err = train::train(
        &base.model,
        &tiny_dataset(),
        &[],
        &train_opts(),
        &AtomicBool::new(true),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, kaito_backends::Error::Cancelled));
}
