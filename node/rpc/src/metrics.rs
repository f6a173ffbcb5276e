//! `GET /metrics` in the Prometheus text format, served beside JSON-RPC on
//! the same port by a small HTTP middleware.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use jsonrpsee::core::BoxError;
use jsonrpsee::server::{HttpBody, HttpRequest, HttpResponse};
use stele_chain::Chain;
use tower::{Layer, Service};

/// Renders the metrics text.
pub type Render = Arc<dyn Fn() -> String + Send + Sync>;

/// The Prometheus text for `chain`.
pub fn render(chain: &Chain, engine: &str) -> String {
    let metrics = chain.metrics();
    let halted = u8::from(chain.halted().is_some());
    format!(
        "# HELP stele_height Executed block height.\n\
         # TYPE stele_height gauge\n\
         stele_height{{engine=\"{engine}\"}} {}\n\
         # HELP stele_transactions_total Transactions executed since start.\n\
         # TYPE stele_transactions_total counter\n\
         stele_transactions_total {}\n\
         # HELP stele_transactions_per_second Transactions per second over recent blocks.\n\
         # TYPE stele_transactions_per_second gauge\n\
         stele_transactions_per_second {:.1}\n\
         # HELP stele_block_gas Gas used by the last block.\n\
         # TYPE stele_block_gas gauge\n\
         stele_block_gas {}\n\
         # HELP stele_mempool_transactions Transactions in the mempool.\n\
         # TYPE stele_mempool_transactions gauge\n\
         stele_mempool_transactions {}\n\
         # HELP stele_mempool_bytes Bytes in the mempool.\n\
         # TYPE stele_mempool_bytes gauge\n\
         stele_mempool_bytes {}\n\
         # HELP stele_halted 1 once the node halted.\n\
         # TYPE stele_halted gauge\n\
         stele_halted {halted}\n",
        metrics.height,
        metrics.transactions_total,
        metrics.transactions_per_second,
        metrics.last_block_gas,
        metrics.mempool_transactions,
        metrics.mempool_bytes,
    )
}

/// Answers `GET /metrics`; passes everything else on.
#[derive(Clone)]
pub struct MetricsLayer {
    render: Render,
}

impl MetricsLayer {
    /// A layer serving what `render` returns.
    pub fn new(render: Render) -> Self {
        MetricsLayer { render }
    }
}

impl<S> Layer<S> for MetricsLayer {
    type Service = MetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MetricsService {
            inner,
            render: self.render.clone(),
        }
    }
}

/// The service [`MetricsLayer`] makes.
#[derive(Clone)]
pub struct MetricsService<S> {
    inner: S,
    render: Render,
}

impl<S, B> Service<HttpRequest<B>> for MetricsService<S>
where
    S: Service<HttpRequest<B>, Response = HttpResponse>,
    S::Error: Into<BoxError> + 'static,
    S::Future: Send + 'static,
{
    type Response = HttpResponse;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<HttpResponse, BoxError>> + Send + 'static>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: HttpRequest<B>) -> Self::Future {
        if request.uri().path() == "/metrics" && request.method() == "GET" {
            let body = (self.render)();
            let response = HttpResponse::builder()
                .status(200)
                .header("content-type", "text/plain; version=0.0.4")
                .body(HttpBody::from(body))
                .expect("a valid response");
            return Box::pin(async move { Ok(response) });
        }
        let future = self.inner.call(request);
        Box::pin(async move { future.await.map_err(Into::into) })
    }
}
