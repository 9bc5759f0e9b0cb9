//! Lambda cold-start helpers: reporting an init failure the way Lambda expects.

use crate::error::Error;

/// Reports `error` to the Lambda Runtime API's `/runtime/init/error`, so the console and
/// logs show one clear init error, and logs it. Without a Runtime API (a plain local run)
/// it only logs.
pub async fn report_init_error(error: &Error) {
    tracing::error!(error = %error, "cold start failed");
    let Ok(api) = std::env::var("AWS_LAMBDA_RUNTIME_API") else {
        return;
    };
    let body = serde_json::json!({
        "errorType": "Runtime.ConfigError",
        "errorMessage": error.to_string(),
    });
    let sent = reqwest::Client::new()
        .post(format!("http://{api}/2018-06-01/runtime/init/error"))
        .header("Lambda-Runtime-Function-Error-Type", "Runtime.ConfigError")
        .json(&body)
        .send()
        .await;
    if let Err(e) = sent {
        tracing::error!(error = %e, "could not report the init error to the Runtime API");
    }
}
