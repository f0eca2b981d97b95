//! The two spellings of the app's user id. The Segment-compatible ingest endpoints take Segment's
//! `userId`; the rest of the API is snake_case and documents `user_id`. A client that learnt one
//! spelling should not be refused for it elsewhere, so every endpoint outside ingest that takes
//! a user id accepts `userId` too.

use serde_json::{Map, Value};

use crate::EngineError;

/// The documented name outside the Segment-compatible endpoints.
pub const USER_ID: &str = "user_id";
/// Segment's name, accepted as well.
pub const USER_ID_SEGMENT: &str = "userId";

/// `obj` with a `userId` field renamed to `user_id`. Both at once is refused, naming `/userId`
/// (`prefix` is the JSON pointer of the object).
pub fn with_user_id(
    obj: &Map<String, Value>,
    prefix: &str,
) -> Result<Map<String, Value>, EngineError> {
    let mut obj = obj.clone();
    if let Some(value) = obj.remove(USER_ID_SEGMENT) {
        if obj.contains_key(USER_ID) {
            return Err(EngineError::invalid(
                format!("{prefix}/{USER_ID_SEGMENT}"),
                "give user_id or userId, not both",
            ));
        }
        obj.insert(USER_ID.to_owned(), value);
    }
    Ok(obj)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn either_spelling_becomes_user_id_and_both_are_refused() {
        let obj = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            with_user_id(&obj(json!({"userId": "u1", "type": "access"})), "").unwrap(),
            obj(json!({"user_id": "u1", "type": "access"}))
        );
        assert_eq!(
            with_user_id(&obj(json!({"user_id": "u1"})), "").unwrap(),
            obj(json!({"user_id": "u1"}))
        );
        let both = with_user_id(&obj(json!({"user_id": "u1", "userId": "u2"})), "").unwrap_err();
        assert_eq!(both.field(), Some("/userId"));
    }
}
