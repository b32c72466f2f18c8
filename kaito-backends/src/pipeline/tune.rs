//! [`TuningPipeline`]: input -> training -> output, for one tuning workspace.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use kaito_core::api::TuningMethod;
use kaito_core::traits::{
    ArtifactStore, BaseModel, ImageDigest, ModelRuntime, ProgressSink, RegistryCredentials,
    TunedAdapter, TuningJob,
};
use kaito_core::tuning::TuningConfig;
use tokio_util::sync::CancellationToken;

use super::{InputSource, OutputTarget};
use crate::error::{Error, Result};
use crate::fetch::UrlDownloader;

/// The manifest annotation KAITO puts on adapter images.
pub const MODEL_NAME_ANNOTATION: &str = "sh.kaito.model.name";

/// Everything one tuning run needs, already resolved from the Workspace.
#[derive(Clone, Debug)]
pub struct TuningRun {
    /// The preset (or model id) name, recorded in the adapter and the image annotation.
    pub preset: String,
    /// The base model on disk.
    pub base_model: BaseModel,
    /// LoRA or QLoRA.
    pub method: TuningMethod,
    /// The typed training config.
    pub config: TuningConfig,
    /// The dataset.
    pub input: InputSource,
    /// Credentials for an image input.
    pub input_credentials: RegistryCredentials,
    /// Where the adapter goes.
    pub output: OutputTarget,
    /// Credentials for an image output.
    pub output_credentials: RegistryCredentials,
    /// Scratch space: downloaded data, the adapter before it is pushed, checkpoints.
    pub work_dir: PathBuf,
}

/// What a run produced.
#[derive(Clone, Debug)]
pub struct TuningOutcome {
    /// The adapter on local disk and the run's figures.
    pub adapter: TunedAdapter,
    /// The pushed image, when the output is an image.
    pub image: Option<ImageDigest>,
}

/// Runs tuning workspaces with a runtime and an artifact store.
pub struct TuningPipeline {
    runtime: Arc<dyn ModelRuntime>,
    store: Arc<dyn ArtifactStore>,
    downloader: UrlDownloader,
}

impl TuningPipeline {
    /// A pipeline over the given backends.
    pub fn new(
        runtime: Arc<dyn ModelRuntime>,
        store: Arc<dyn ArtifactStore>,
        downloader: UrlDownloader,
    ) -> Self {
        Self {
            runtime,
            store,
            downloader,
        }
    }

    /// Fetches the input, trains, and delivers the adapter. Nothing is pushed unless training
    /// finished; an image output is pushed only after the adapter is complete on disk.
    pub async fn run(
        &self,
        run: TuningRun,
        progress: ProgressSink,
        cancel: CancellationToken,
    ) -> Result<TuningOutcome> {
        let dataset_dir = match &run.input {
            InputSource::Urls(urls) => {
                let dir = run.work_dir.join("data");
                self.downloader.download_all(urls, &dir).await?;
                dir
            }
            InputSource::Image { reference, .. } => {
                let dir = run.work_dir.join("data");
                self.store
                    .pull(reference, &run.input_credentials, &dir)
                    .await?;
                dir
            }
            InputSource::Directory(dir) => {
                if !dir.exists() {
                    return Err(Error::invalid(
                        format!("tuning.input.volumeSource ({})", dir.display()),
                        "the directory does not exist",
                    ));
                }
                dir.clone()
            }
        };
        let output_dir = match &run.output {
            OutputTarget::Directory(dir) => dir.clone(),
            OutputTarget::Image { .. } => run.work_dir.join("adapter"),
        };
        tokio::fs::create_dir_all(&output_dir)
            .await
            .map_err(|e| Error::io(&output_dir, e))?;
        let job = TuningJob {
            base_model: run.base_model.clone(),
            method: run.method,
            config: run.config.clone(),
            dataset_dir,
            output_dir,
        };
        let adapter = self.runtime.tune(job, progress, cancel).await?;
        let image = match &run.output {
            OutputTarget::Image { reference, .. } => {
                let annotations =
                    BTreeMap::from([(MODEL_NAME_ANNOTATION.to_owned(), run.preset.clone())]);
                Some(
                    self.store
                        .push(
                            &adapter.dir,
                            reference,
                            &run.output_credentials,
                            &annotations,
                        )
                        .await?,
                )
            }
            OutputTarget::Directory(_) => None,
        };
        Ok(TuningOutcome { adapter, image })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kaito_core::traits::{MockArtifactStore, MockModelRuntime, SecretString};
    use kaito_core::{Error as CoreError, ErrorKind};

    fn run(work: &std::path::Path, input: InputSource, output: OutputTarget) -> TuningRun {
        TuningRun {
            preset: "phi-3-mini-128k-instruct".into(),
            base_model: BaseModel {
                name: "phi-3-mini-128k-instruct".into(),
                path: "/models/phi3".into(),
            },
            method: TuningMethod::Qlora,
            config: TuningConfig::default(),
            input,
            input_credentials: RegistryCredentials::Anonymous,
            output,
            output_credentials: RegistryCredentials::Basic {
                username: "u".into(),
                password: SecretString::new("p4ss"),
            },
            work_dir: work.to_path_buf(),
        }
    }

    fn adapter(dir: PathBuf) -> TunedAdapter {
        TunedAdapter {
            dir,
            steps: 2,
            tokens: 100,
            final_loss: 1.0,
            final_eval_loss: None,
        }
    }

    #[tokio::test]
    async fn image_in_image_out_pulls_trains_then_pushes_with_the_model_annotation() {
        let work = tempfile::tempdir().expect("tempdir");
        let data_dir = work.path().join("data");
        let mut store = MockArtifactStore::new();
        let expected_data = data_dir.clone();
        store
            .expect_pull()
            .withf(move |r, _, dest| r == "registry.local/data:1" && dest == expected_data)
            .times(1)
            .returning(|r, _, _| {
                Ok(ImageDigest {
                    reference: r.to_owned(),
                    digest: "sha256:d".into(),
                })
            });
        store
            .expect_push()
            .withf(|_, r, creds, ann| {
                r == "registry.local/adapter:1"
                    && matches!(creds, RegistryCredentials::Basic { username, .. } if username == "u")
                    && ann.get(MODEL_NAME_ANNOTATION).map(String::as_str) == Some("phi-3-mini-128k-instruct")
            })
            .times(1)
            .returning(|_, r, _, _| Ok(ImageDigest { reference: r.to_owned(), digest: "sha256:a".into() }));
        let mut runtime = MockModelRuntime::new();
        let expected = data_dir.clone();
        runtime
            .expect_tune()
            .withf(move |job, _, _| {
                job.dataset_dir == expected && job.method == TuningMethod::Qlora
            })
            .times(1)
            .returning(|job, _, _| Ok(adapter(job.output_dir)));
        let pipeline = TuningPipeline::new(
            Arc::new(runtime),
            Arc::new(store),
            UrlDownloader::new(Default::default()).expect("client"),
        );
        let input = InputSource::Image {
            reference: "registry.local/data:1".into(),
            pull_secrets: vec![],
        };
        let output = OutputTarget::Image {
            reference: "registry.local/adapter:1".into(),
            push_secret: Some("s".into()),
        };
        let outcome = pipeline
            .run(
                run(work.path(), input, output),
                Arc::new(|_: &kaito_core::traits::TrainingProgress| {}),
                CancellationToken::new(),
            )
            .await
            .expect("runs");
        assert_eq!(outcome.image.expect("pushed").digest, "sha256:a");
        assert_eq!(outcome.adapter.dir, work.path().join("adapter"));
    }

    #[tokio::test]
    async fn a_failed_training_pushes_nothing() {
        let work = tempfile::tempdir().expect("tempdir");
        let data = work.path().join("in");
        std::fs::create_dir_all(&data).expect("mkdir");
        let mut store = MockArtifactStore::new();
        store.expect_push().never();
        let mut runtime = MockModelRuntime::new();
        runtime.expect_tune().returning(|_, _, _| {
            Err(CoreError::backend(
                ErrorKind::InvalidInput,
                "data.parquet: row 3: bad messages",
            ))
        });
        let pipeline = TuningPipeline::new(
            Arc::new(runtime),
            Arc::new(store),
            UrlDownloader::new(Default::default()).expect("client"),
        );
        let output = OutputTarget::Image {
            reference: "r/a:1".into(),
            push_secret: None,
        };
        let err = pipeline
            .run(
                run(work.path(), InputSource::Directory(data), output),
                Arc::new(|_: &kaito_core::traits::TrainingProgress| {}),
                CancellationToken::new(),
            )
            .await
            .expect_err("fails");
        assert!(err.to_string().contains("row 3"), "{err}");
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
    }

    #[tokio::test]
    async fn a_missing_input_directory_is_named() {
        let work = tempfile::tempdir().expect("tempdir");
        let pipeline = TuningPipeline::new(
            Arc::new(MockModelRuntime::new()),
            Arc::new(MockArtifactStore::new()),
            UrlDownloader::new(Default::default()).expect("client"),
        );
        let err = pipeline
            .run(
                run(
                    work.path(),
                    InputSource::Directory("/nonexistent/data".into()),
                    OutputTarget::Directory(work.path().join("o")),
                ),
                Arc::new(|_: &kaito_core::traits::TrainingProgress| {}),
                CancellationToken::new(),
            )
            .await
            .expect_err("fails");
        assert!(err.to_string().contains("/nonexistent/data"), "{err}");
    }
}
