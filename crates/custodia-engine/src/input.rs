//! Inputs of the ingestion and profile calls, parsed from JSON with a JSON pointer for every
//! refusal. Messages name the rule that was broken, never the value, because values are personal
//! data.

use custodia_core::{Personal, Timestamp};
use serde_json::{Map, Value};

use crate::EngineError;

/// Longest accepted `userId` / `anonymousId`, in bytes.
pub const MAX_ID_LEN: usize = 256;
/// Longest accepted trait or property name, in bytes.
pub const MAX_NAME_LEN: usize = 128;
/// Longest accepted event name, in bytes.
pub const MAX_EVENT_NAME_LEN: usize = 200;
/// Deepest accepted nesting of trait and property values.
pub const MAX_DEPTH: usize = 8;

/// Segment's common top-level fields that Custodia accepts and ignores. `context` may hold the
/// client's IP address and user agent: Custodia does not store it.
const SEGMENT_COMMON: &[&str] = &[
    "type",
    "messageId",
    "context",
    "integrations",
    "sentAt",
    "originalTimestamp",
    "receivedAt",
    "version",
    "channel",
    "writeKey",
];

/// An `identify` call.
#[derive(Debug, Clone)]
pub struct IdentifyInput {
    /// The app's id for a known person.
    pub user_id: Option<Personal<String>>,
    /// The app's id for a visitor not yet known.
    pub anonymous_id: Option<Personal<String>>,
    /// Traits to set; a `null` value removes the trait.
    pub traits: Personal<Map<String, Value>>,
    /// When the client saw it, if it said.
    pub timestamp: Option<Timestamp>,
}

/// A `track` call.
#[derive(Debug, Clone)]
pub struct TrackInput {
    /// The app's id for a known person.
    pub user_id: Option<Personal<String>>,
    /// The app's id for a visitor not yet known.
    pub anonymous_id: Option<Personal<String>>,
    /// The event name (`Order Completed`). Event names are the app's vocabulary, not personal data.
    pub event: String,
    /// The event's properties: personal data, stored encrypted.
    pub properties: Personal<Map<String, Value>>,
    /// When the client saw it, if it said.
    pub timestamp: Option<Timestamp>,
}

/// Changes to a profile's traits (`PATCH`): a `null` value removes the trait.
#[derive(Debug, Clone)]
pub struct TraitChanges(pub Personal<Map<String, Value>>);

fn object<'a>(value: &'a Value, field: &str) -> Result<&'a Map<String, Value>, EngineError> {
    value
        .as_object()
        .ok_or_else(|| EngineError::invalid(field, "must be a JSON object"))
}

fn reject_unknown(
    obj: &Map<String, Value>,
    prefix: &str,
    allowed: &[&str],
    also: &[&str],
) -> Result<(), EngineError> {
    match obj
        .keys()
        .find(|k| !allowed.contains(&k.as_str()) && !also.contains(&k.as_str()))
    {
        // Field names are the client's schema, not personal data, but bound their length.
        Some(k) => Err(EngineError::invalid(
            format!("{prefix}/{}", pointer_escape(truncate(k, MAX_NAME_LEN))),
            "unknown field",
        )),
        None => Ok(()),
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Escapes a name for use as a JSON pointer token (RFC 6901).
pub(crate) fn pointer_escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

fn external_id(
    obj: &Map<String, Value>,
    key: &str,
    prefix: &str,
) -> Result<Option<Personal<String>>, EngineError> {
    let field = format!("{prefix}/{key}");
    let text = match obj.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        // Segment libraries send numeric user ids as numbers.
        Some(Value::Number(n)) => n.to_string(),
        Some(_) => return Err(EngineError::invalid(field, "must be a string")),
    };
    if text.is_empty() || text.len() > MAX_ID_LEN || text.chars().any(char::is_control) {
        return Err(EngineError::invalid(
            field,
            format!("must be 1 to {MAX_ID_LEN} bytes without control characters"),
        ));
    }
    Ok(Some(Personal(text)))
}

fn timestamp(obj: &Map<String, Value>, prefix: &str) -> Result<Option<Timestamp>, EngineError> {
    match obj.get("timestamp") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Timestamp::parse_rfc3339(s).map(Some).ok_or_else(|| {
            EngineError::invalid(format!("{prefix}/timestamp"), "must be an RFC 3339 time")
        }),
        Some(_) => Err(EngineError::invalid(
            format!("{prefix}/timestamp"),
            "must be an RFC 3339 time",
        )),
    }
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Object(map) => 1 + map.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Checks names and nesting of a trait or property map.
fn check_map(map: &Map<String, Value>, field: &str) -> Result<(), EngineError> {
    for (name, value) in map {
        if name.is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
            return Err(EngineError::invalid(
                field,
                format!("names must be 1 to {MAX_NAME_LEN} bytes without control characters"),
            ));
        }
        if depth(value) > MAX_DEPTH {
            return Err(EngineError::invalid(
                format!("{field}/{}", pointer_escape(name)),
                format!("nested deeper than {MAX_DEPTH} levels"),
            ));
        }
    }
    Ok(())
}

/// Checks the traits that get special handling.
pub(crate) fn check_traits(traits: &Map<String, Value>, field: &str) -> Result<(), EngineError> {
    check_map(traits, field)?;
    if let Some(email) = traits.get("email").filter(|v| !v.is_null()) {
        let ok = email
            .as_str()
            .and_then(custodia_vault::normalize_email)
            .is_some();
        if !ok {
            return Err(EngineError::invalid(
                format!("{field}/email"),
                "must be an e-mail address",
            ));
        }
    }
    if let Some(phone) = traits.get("phone").filter(|v| !v.is_null())
        && !phone.is_string()
    {
        return Err(EngineError::invalid(
            format!("{field}/phone"),
            "must be a string",
        ));
    }
    Ok(())
}

fn require_one_id(
    user_id: &Option<Personal<String>>,
    anonymous_id: &Option<Personal<String>>,
    prefix: &str,
) -> Result<(), EngineError> {
    if user_id.is_none() && anonymous_id.is_none() {
        return Err(EngineError::invalid(
            format!("{prefix}/userId"),
            "one of userId or anonymousId is required",
        ));
    }
    Ok(())
}

impl IdentifyInput {
    /// Parses an identify message; `prefix` is the JSON pointer of the message in its body
    /// (empty for a single call, `/batch/3` in a batch).
    pub fn from_json(value: &Value, prefix: &str) -> Result<IdentifyInput, EngineError> {
        let obj = object(value, if prefix.is_empty() { "/" } else { prefix })?;
        reject_unknown(
            obj,
            prefix,
            &["userId", "anonymousId", "traits", "timestamp"],
            SEGMENT_COMMON,
        )?;
        let user_id = external_id(obj, "userId", prefix)?;
        let anonymous_id = external_id(obj, "anonymousId", prefix)?;
        require_one_id(&user_id, &anonymous_id, prefix)?;
        let traits_field = format!("{prefix}/traits");
        let traits = match obj.get("traits") {
            None | Some(Value::Null) => Map::new(),
            Some(v) => object(v, &traits_field)?.clone(),
        };
        check_traits(&traits, &traits_field)?;
        Ok(IdentifyInput {
            user_id,
            anonymous_id,
            traits: Personal(traits),
            timestamp: timestamp(obj, prefix)?,
        })
    }
}

impl TrackInput {
    /// Parses a track message; `prefix` as for [`IdentifyInput::from_json`].
    pub fn from_json(value: &Value, prefix: &str) -> Result<TrackInput, EngineError> {
        let obj = object(value, if prefix.is_empty() { "/" } else { prefix })?;
        reject_unknown(
            obj,
            prefix,
            &["userId", "anonymousId", "event", "properties", "timestamp"],
            SEGMENT_COMMON,
        )?;
        let user_id = external_id(obj, "userId", prefix)?;
        let anonymous_id = external_id(obj, "anonymousId", prefix)?;
        require_one_id(&user_id, &anonymous_id, prefix)?;
        let event_field = format!("{prefix}/event");
        let event = match obj.get("event") {
            Some(Value::String(s))
                if !s.trim().is_empty()
                    && s.len() <= MAX_EVENT_NAME_LEN
                    && !s.chars().any(char::is_control) =>
            {
                s.clone()
            }
            _ => {
                return Err(EngineError::invalid(
                    event_field,
                    format!("must be a non-empty string of at most {MAX_EVENT_NAME_LEN} bytes"),
                ));
            }
        };
        let props_field = format!("{prefix}/properties");
        let properties = match obj.get("properties") {
            None | Some(Value::Null) => Map::new(),
            Some(v) => object(v, &props_field)?.clone(),
        };
        check_map(&properties, &props_field)?;
        check_event(&event, &properties, &props_field)?;
        Ok(TrackInput {
            user_id,
            anonymous_id,
            event,
            properties: Personal(properties),
            timestamp: timestamp(obj, prefix)?,
        })
    }
}

impl TraitChanges {
    /// Parses a `PATCH /v1/subjects/{id}` body: `{"traits": {...}}`.
    pub fn from_json(value: &Value) -> Result<TraitChanges, EngineError> {
        let obj = object(value, "/")?;
        reject_unknown(obj, "", &["traits"], &[])?;
        let traits = match obj.get("traits") {
            Some(v) => object(v, "/traits")?.clone(),
            None => return Err(EngineError::invalid("/traits", "is required")),
        };
        check_traits(&traits, "/traits")?;
        Ok(TraitChanges(Personal(traits)))
    }
}

fn number(props: &Map<String, Value>, name: &str, field: &str) -> Result<Option<f64>, EngineError> {
    match props.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_f64()
            .filter(|n| n.is_finite())
            .map(Some)
            .ok_or_else(|| EngineError::invalid(format!("{field}/{name}"), "must be a number")),
    }
}

/// The rules of the Segment e-commerce events that Custodia understands, plus `NPS Answered`.
fn check_event(event: &str, props: &Map<String, Value>, field: &str) -> Result<(), EngineError> {
    match event {
        "Order Completed" | "Order Refunded" | "Checkout Started" => {
            for name in [
                "total", "revenue", "subtotal", "tax", "shipping", "discount",
            ] {
                if number(props, name, field)?.is_some_and(|n| n < 0.0) {
                    return Err(EngineError::invalid(
                        format!("{field}/{name}"),
                        "must not be negative",
                    ));
                }
            }
            if let Some(currency) = props.get("currency").filter(|v| !v.is_null()) {
                let ok = currency
                    .as_str()
                    .is_some_and(|c| c.len() == 3 && c.bytes().all(|b| b.is_ascii_uppercase()));
                if !ok {
                    return Err(EngineError::invalid(
                        format!("{field}/currency"),
                        "must be an ISO 4217 code such as EUR",
                    ));
                }
            }
            if let Some(order_id) = props.get("order_id").filter(|v| !v.is_null())
                && !(order_id.is_string() || order_id.is_number())
            {
                return Err(EngineError::invalid(
                    format!("{field}/order_id"),
                    "must be a string",
                ));
            }
            if let Some(products) = props.get("products").filter(|v| !v.is_null()) {
                let ok = products
                    .as_array()
                    .is_some_and(|items| items.iter().all(Value::is_object));
                if !ok {
                    return Err(EngineError::invalid(
                        format!("{field}/products"),
                        "must be an array of objects",
                    ));
                }
            }
        }
        "Product Reviewed" => {
            if let Some(rating) = number(props, "rating", field)?
                && !(0.0..=5.0).contains(&rating)
            {
                return Err(EngineError::invalid(
                    format!("{field}/rating"),
                    "must be between 0 and 5",
                ));
            }
            if let Some(body) = props.get("review_body").filter(|v| !v.is_null())
                && !body.is_string()
            {
                return Err(EngineError::invalid(
                    format!("{field}/review_body"),
                    "must be a string",
                ));
            }
        }
        "NPS Answered" => {
            let ok = props
                .get("score")
                .and_then(Value::as_u64)
                .is_some_and(|s| s <= 10);
            if !ok {
                return Err(EngineError::invalid(
                    format!("{field}/score"),
                    "is required and must be a whole number from 0 to 10",
                ));
            }
        }
        _ => {}
    }
    Ok(())
}
