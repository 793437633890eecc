//! A double's HTTP server: served on a thread and runtime of its own (so that it answers while
//! a test blocks, and outlives whatever runtime the test runs on), until it is dropped.

use std::future::IntoFuture;

use axum::Router;

pub struct Served {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

/// A non-blocking listener on a free port of 127.0.0.1, and its address: where a double serves.
pub fn local_listener() -> (std::net::TcpListener, std::net::SocketAddr) {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port on 127.0.0.1");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let addr = listener.local_addr().expect("the listener's address");
    (listener, addr)
}

impl Served {
    /// Serves `app` on `listener` (bound and non-blocking) on a thread named `name`.
    pub fn start(name: &str, listener: std::net::TcpListener, app: Router) -> Served {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
                    .expect("a runtime for the double");
                runtime.block_on(async move {
                    let listener =
                        tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
                    tokio::select! {
                        _ = axum::serve(listener, app).into_future() => {}
                        _ = stopped => {}
                    }
                });
            })
            .expect("spawn the double's thread");
        Served { stop: Some(stop) }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}
