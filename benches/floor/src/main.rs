//! The floor of the lifecycle bench (`benches/lifecycle.rs`): the least a `lambda_http` function
//! can do — answer every Function URL request with 200 — with the same runtime crates, features
//! and release profile as the bridge's functions. Its init CPU, first answer and memory are what
//! the bridge's are compared with.

use lambda_http::{service_fn, Body, Error, Request, Response};

async fn ok(_: Request) -> Result<Response<Body>, Error> {
    Ok(Response::new(Body::from("ok")))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    lambda_http::run(service_fn(ok)).await
}
