//! Assertions on what a function answered: a text member that says what the user must read.

use serde_json::Value;

/// Asserts that `value` (a member of an answer, e.g. `body["error"]`) is a string containing
/// `part`; the message shows the value.
#[track_caller]
pub fn assert_says(value: &Value, part: &str) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a string, got {value}"));
    assert!(text.contains(part), "{text:?} does not say {part:?}");
}

/// Asserts that `value` is a string beginning with `start`; the message shows the value.
#[track_caller]
pub fn assert_opens(value: &Value, start: &str) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("a string, got {value}"));
    assert!(
        text.starts_with(start),
        "{text:?} does not begin with {start:?}"
    );
}

/// What a kill switch's answer says of the suspect it switched (`toggled.suspect.change`): the
/// change, the start and the evidence; empty when it names none.
pub fn suspect_change(answer: &serde_json::Value) -> &str {
    answer["toggled"]["suspect"]["change"]
        .as_str()
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_text_passes_only_when_it_says_the_part() {
        let body = json!({"error": "bad request: no flag", "status": 400});
        assert_says(&body["error"], "no flag");
        assert_opens(&body["error"], "bad request");
        for wrong in [
            std::panic::catch_unwind(|| assert_says(&body["error"], "a rule")),
            std::panic::catch_unwind(|| assert_opens(&body["error"], "no flag")),
            std::panic::catch_unwind(|| assert_says(&body["status"], "400")),
            std::panic::catch_unwind(|| assert_says(&body["missing"], "")),
        ] {
            assert!(wrong.is_err());
        }
    }
}
