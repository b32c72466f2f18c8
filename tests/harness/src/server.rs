//! `FakeApiServer`: the store behind an axum server on 127.0.0.1, reachable by a real
//! `kube::Client` (plain HTTP, no auth), plus the HTTP-side test controls.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::ApiError;
use crate::faults::{Faults, Verb};
use crate::http::{App, router};
use crate::store::Store;

/// An in-process kube-apiserver for tests. Dropping it stops serving.
pub struct FakeApiServer {
    addr: SocketAddr,
    app: Arc<App>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeApiServer {
    /// Binds 127.0.0.1 on a free port and serves in the background (needs a tokio runtime).
    pub async fn start() -> std::io::Result<Self> {
        Self::start_with(Store::new()).await
    }

    /// Serves an existing store (e.g. pre-populated, or shared with a restarted server).
    pub async fn start_with(store: Store) -> std::io::Result<Self> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let app = Arc::new(App {
            store,
            faults: Faults::default(),
        });
        let service = router(app.clone());
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, service).await {
                tracing::error!("fake apiserver stopped: {e}");
            }
        });
        Ok(Self { addr, app, task })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// A kube `Config` for this server (default namespace `default`).
    pub fn config(&self) -> kube::Config {
        let uri: http::Uri = self
            .url()
            .parse()
            .expect("a socket address always forms a valid URI");
        kube::Config::new(uri)
    }

    /// A real `kube::Client` talking HTTP to this server.
    pub fn client(&self) -> kube::Client {
        kube::Client::try_from(self.config())
            .expect("a plain-HTTP kube client builds without TLS or auth")
    }

    /// A kubeconfig for other processes (`KUBECONFIG=...`), pointing at this server.
    pub fn kubeconfig_yaml(&self) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\n\
             contexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\n\
             current-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
            url = self.url()
        )
    }

    /// Writes `kubeconfig_yaml()` to `dir/kubeconfig` and returns the path.
    pub fn write_kubeconfig(&self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join("kubeconfig");
        std::fs::write(&path, self.kubeconfig_yaml())?;
        Ok(path)
    }

    /// Direct access to the objects, as a controller-less actor (or a test) would have.
    pub fn store(&self) -> Store {
        self.app.store.clone()
    }

    /// The next `verb` request on `kind` (e.g. `"NodeClaim"`) fails with HTTP `code`.
    pub fn fail_next(&self, verb: Verb, kind: &str, code: u16) {
        self.app.faults.inject_code(verb, kind, code, 1);
    }

    /// The next `times` `verb` requests on `kind` fail with HTTP `code`.
    pub fn fail_times(&self, verb: Verb, kind: &str, code: u16, times: usize) {
        self.app.faults.inject_code(verb, kind, code, times);
    }

    /// The next `verb` request on `kind` fails with exactly this error (e.g.
    /// `ApiError::already_exists(..)` or `ApiError::conflict(..)`).
    pub fn fail_next_with(&self, verb: Verb, kind: &str, error: ApiError) {
        self.app.faults.inject(verb, kind, error, 1);
    }

    /// The next `times` `verb` requests on `kind` fail with exactly this error.
    pub fn fail_times_with(&self, verb: Verb, kind: &str, error: ApiError, times: usize) {
        self.app.faults.inject(verb, kind, error, times);
    }

    /// How many `verb` requests on `kind` this server has received (injected failures count).
    pub fn request_count(&self, verb: Verb, kind: &str) -> usize {
        self.app.faults.count(verb, kind)
    }

    /// Drops every pending injected failure.
    pub fn clear_faults(&self) {
        self.app.faults.clear_injections();
    }

    /// `METHOD /path` of every request for a kind this server does not serve (answered 404),
    /// e.g. to show a client never touched an API group the cluster lacks.
    pub fn unserved_requests(&self) -> Vec<String> {
        self.app.faults.unserved()
    }

    /// Clears the request counters and the unserved-request log.
    pub fn reset_counts(&self) {
        self.app.faults.reset_counts();
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        // Open watches would block a graceful shutdown forever: end them and stop accepting.
        self.app.store.drop_watches();
        self.task.abort();
    }
}
