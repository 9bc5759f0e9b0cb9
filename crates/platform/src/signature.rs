//! HMAC-SHA256 signing and constant-time verification of webhook bodies and shared secrets.

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

/// Length in hex characters of an HMAC-SHA256 signature.
pub const SIGNATURE_HEX_LEN: usize = 64;

fn mac(secret: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC-SHA256 accepts keys of any length"),
    }
}

/// Lowercase hex HMAC-SHA256 of `body` keyed with `secret`: what Sentry sends as
/// `Sentry-Hook-Signature` and expects as `X-Sentry-Signature`.
pub fn sign_hex(secret: &[u8], body: &[u8]) -> String {
    let mut mac = mac(secret);
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// Whether `signature_hex` is the HMAC-SHA256 of `body` keyed with `secret`.
///
/// The comparison runs in constant time over the decoded bytes. Signatures that are not
/// 64 lowercase hex digits (what Sentry sends) are rejected before any comparison, so each
/// signature has exactly one accepted spelling.
pub fn verify_hex(secret: &[u8], body: &[u8], signature_hex: &str) -> bool {
    let well_formed = signature_hex.len() == SIGNATURE_HEX_LEN
        && signature_hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !well_formed {
        return false;
    }
    let Ok(expected) = hex::decode(signature_hex) else {
        return false;
    };
    let mut mac = mac(secret);
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// Whether a shared secret sent by a caller (such as VWO's `x-vwo-auth`) equals the expected one.
///
/// Both values are hashed first, so the comparison takes the same time whatever their
/// lengths and contents.
pub fn secrets_equal(expected: &[u8], given: &[u8]) -> bool {
    let a = Sha256::digest(expected);
    let b = Sha256::digest(given);
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Computed with Python:
    // hmac.new(b"sentry-client-secret", b'{"action":"triggered","data":{}}', hashlib.sha256).hexdigest()
    const PY_SECRET: &str = "sentry-client-secret";
    const PY_BODY: &[u8] = br#"{"action":"triggered","data":{}}"#;
    const PY_SIGNATURE: &str = "e0ff50d0821698509f0992c0b1d513a6b0cd7b810e81d8402cc288ac620a53dd";

    #[test]
    fn signature_matches_python_hmac_vector() {
        assert_eq!(sign_hex(PY_SECRET.as_bytes(), PY_BODY), PY_SIGNATURE);
    }

    #[test]
    fn signature_matches_rfc4231_case_2() {
        assert_eq!(
            sign_hex(b"Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_accepts_the_right_signature_only() {
        let sig = sign_hex(b"k", b"body");
        assert!(verify_hex(b"k", b"body", &sig));
        assert!(!verify_hex(b"k", b"body", &sig.to_uppercase()));
        assert!(!verify_hex(b"other", b"body", &sig));
        assert!(!verify_hex(b"k", b"body ", &sig));
        assert!(!verify_hex(b"k", b"body", &sig[..63]));
        assert!(!verify_hex(b"k", b"body", ""));
        assert!(!verify_hex(b"k", b"body", &"z".repeat(64)));
        assert!(!verify_hex(b"k", b"body", &format!("{sig}00")));
    }

    #[test]
    fn secrets_equal_compares_whole_values() {
        assert!(secrets_equal(b"abc", b"abc"));
        assert!(!secrets_equal(b"abc", b"abd"));
        assert!(!secrets_equal(b"abc", b"ab"));
        assert!(!secrets_equal(b"abc", b""));
    }
}
