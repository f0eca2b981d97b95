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

/// Segment's common top-level fields that Custodia accepts besides each call's own. `context`
/// is read by [`Context::from_json`]; `messageId` de-duplicates retries; the rest is transport
/// detail and not stored. RudderStack spells some ids in snake case (`user_id`,
/// `anonymous_id`, `previous_id`) and adds `rudderId` and `request_ip`, which it derives from
/// the other fields. The Node SDKs of both add `_metadata` (the SDK's runtime: Node version,
/// bundled integrations), which is not about the person and is dropped.
const SEGMENT_COMMON: &[&str] = &[
    "_metadata",
    "type",
    "messageId",
    "context",
    "user_id",
    "anonymous_id",
    "rudderId",
    "request_ip",
    "event_type",
    "integrations",
    "sentAt",
    "originalTimestamp",
    "receivedAt",
    "version",
    "channel",
    "writeKey",
];

/// Longest accepted `messageId`, in bytes.
pub const MAX_MESSAGE_ID_LEN: usize = 256;

/// The `context` of a call: `context.traits` are traits of the person (RudderStack sends
/// identify traits there); everything else (`ip`, `userAgent`, `locale`, `campaign`, `page`,
/// `library`, ...) describes the circumstances of one event. Both are personal data.
#[derive(Debug, Clone, Default)]
pub struct Context {
    /// `context.traits`: merged under the call's own traits.
    pub traits: Personal<Map<String, Value>>,
    /// The rest of `context`: kept sealed with the event, or dropped, per the server's setting.
    pub event: Personal<Map<String, Value>>,
}

impl Context {
    /// Parses the `context` member of a message, if any.
    pub fn from_json(obj: &Map<String, Value>, prefix: &str) -> Result<Context, EngineError> {
        let field = format!("{prefix}/context");
        let mut map = match obj.get("context") {
            None | Some(Value::Null) => return Ok(Context::default()),
            Some(v) => object(v, &field)?.clone(),
        };
        let traits_field = format!("{field}/traits");
        let traits = match map.remove("traits") {
            None | Some(Value::Null) => Map::new(),
            Some(v) => object(&v, &traits_field)?.clone(),
        };
        check_traits(&traits, &traits_field)?;
        check_map(&map, &field)?;
        Ok(Context {
            traits: Personal(traits),
            event: Personal(map),
        })
    }

    /// The call's traits over `context.traits`: where both name a trait, the call's own wins.
    fn merged_traits(&self, own: Map<String, Value>) -> Map<String, Value> {
        let mut traits = self.traits.expose().clone();
        traits.extend(own);
        traits
    }
}

/// A client-chosen message id (Segment's `messageId`): a retry carries the same one, so it is
/// stored once. Personal data only by accident, but treated as such: only its keyed hash is
/// kept.
fn message_id(
    obj: &Map<String, Value>,
    prefix: &str,
) -> Result<Option<Personal<String>>, EngineError> {
    match obj.get("messageId") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if !s.is_empty()
                && s.len() <= MAX_MESSAGE_ID_LEN
                && !s.chars().any(char::is_control) =>
        {
            Ok(Some(Personal(s.clone())))
        }
        Some(_) => Err(EngineError::invalid(
            format!("{prefix}/messageId"),
            format!("must be 1 to {MAX_MESSAGE_ID_LEN} bytes without control characters"),
        )),
    }
}

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
    /// The client's message id, if it sent one.
    pub message_id: Option<Personal<String>>,
}

/// A `track`, `page` or `screen` call: all three are events.
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
    /// `context.traits`: set on the person as identify would (RudderStack sends them on track).
    pub traits: Personal<Map<String, Value>>,
    /// The event's context (`ip`, `userAgent`, ...), sealed with it; empty when dropped.
    pub context: Personal<Map<String, Value>>,
    /// The client's message id, if it sent one.
    pub message_id: Option<Personal<String>>,
}

/// Which Segment call made an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventCall {
    /// `page`: stored as the event `Page Viewed`.
    Page,
    /// `screen`: stored as the event `Screen Viewed`.
    Screen,
}

impl EventCall {
    /// The event name a page or screen call is stored under.
    pub fn event_name(self) -> &'static str {
        match self {
            EventCall::Page => "Page Viewed",
            EventCall::Screen => "Screen Viewed",
        }
    }
}

/// A `group` call: the person belongs to a group (an account, a company).
#[derive(Debug, Clone)]
pub struct GroupInput {
    /// The app's id for a known person.
    pub user_id: Option<Personal<String>>,
    /// The app's id for a visitor not yet known.
    pub anonymous_id: Option<Personal<String>>,
    /// The group's id.
    pub group_id: Personal<String>,
    /// The group's traits, stored under the person's `groups` trait.
    pub group_traits: Personal<Map<String, Value>>,
    /// `context.traits`, set on the person.
    pub traits: Personal<Map<String, Value>>,
    /// The client's message id, if it sent one.
    pub message_id: Option<Personal<String>>,
}

/// An `alias` call: `previousId` (an anonymous id, usually) is the same person as `userId`.
#[derive(Debug, Clone)]
pub struct AliasInput {
    /// The id the person is known under from now on.
    pub user_id: Personal<String>,
    /// The earlier id.
    pub previous_id: Personal<String>,
    /// The client's message id, if it sent one.
    pub message_id: Option<Personal<String>>,
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
    // RudderStack's snake-case spelling counts when the camel-case one is absent.
    let snake = match key {
        "userId" => Some("user_id"),
        "anonymousId" => Some("anonymous_id"),
        "previousId" => Some("previous_id"),
        _ => None,
    };
    let (key, found) = match (obj.get(key), snake) {
        (None | Some(Value::Null), Some(other)) if obj.get(other).is_some_and(|v| !v.is_null()) => {
            (other, obj.get(other))
        }
        (found, _) => (key, found),
    };
    let field = format!("{prefix}/{key}");
    let text = match found {
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
        let context = Context::from_json(obj, prefix)?;
        Ok(IdentifyInput {
            user_id,
            anonymous_id,
            traits: Personal(context.merged_traits(traits)),
            timestamp: timestamp(obj, prefix)?,
            message_id: message_id(obj, prefix)?,
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
        let context = Context::from_json(obj, prefix)?;
        Ok(TrackInput {
            user_id,
            anonymous_id,
            event,
            properties: Personal(properties),
            timestamp: timestamp(obj, prefix)?,
            traits: context.traits,
            context: context.event,
            message_id: message_id(obj, prefix)?,
        })
    }

    /// Parses a `page` or `screen` message as an event: `Page Viewed` / `Screen Viewed` with the
    /// call's `name` and `category` among the properties (Segment's own convention for
    /// destinations without page calls). URL, referrer and title are properties like any other.
    pub fn from_page_json(
        value: &Value,
        prefix: &str,
        call: EventCall,
    ) -> Result<TrackInput, EngineError> {
        let obj = object(value, if prefix.is_empty() { "/" } else { prefix })?;
        reject_unknown(
            obj,
            prefix,
            &[
                "userId",
                "anonymousId",
                "name",
                "category",
                "properties",
                "timestamp",
            ],
            SEGMENT_COMMON,
        )?;
        let user_id = external_id(obj, "userId", prefix)?;
        let anonymous_id = external_id(obj, "anonymousId", prefix)?;
        require_one_id(&user_id, &anonymous_id, prefix)?;
        let props_field = format!("{prefix}/properties");
        let mut properties = match obj.get("properties") {
            None | Some(Value::Null) => Map::new(),
            Some(v) => object(v, &props_field)?.clone(),
        };
        for name in ["name", "category"] {
            match obj.get(name) {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.len() <= MAX_EVENT_NAME_LEN => {
                    properties.insert(name.to_owned(), Value::String(s.clone()));
                }
                Some(_) => {
                    return Err(EngineError::invalid(
                        format!("{prefix}/{name}"),
                        format!("must be a string of at most {MAX_EVENT_NAME_LEN} bytes"),
                    ));
                }
            }
        }
        check_map(&properties, &props_field)?;
        let context = Context::from_json(obj, prefix)?;
        Ok(TrackInput {
            user_id,
            anonymous_id,
            event: call.event_name().to_owned(),
            properties: Personal(properties),
            timestamp: timestamp(obj, prefix)?,
            traits: context.traits,
            context: context.event,
            message_id: message_id(obj, prefix)?,
        })
    }
}

impl GroupInput {
    /// Parses a `group` message; `prefix` as for [`IdentifyInput::from_json`].
    pub fn from_json(value: &Value, prefix: &str) -> Result<GroupInput, EngineError> {
        let obj = object(value, if prefix.is_empty() { "/" } else { prefix })?;
        reject_unknown(
            obj,
            prefix,
            &["userId", "anonymousId", "groupId", "traits", "timestamp"],
            SEGMENT_COMMON,
        )?;
        let user_id = external_id(obj, "userId", prefix)?;
        let anonymous_id = external_id(obj, "anonymousId", prefix)?;
        require_one_id(&user_id, &anonymous_id, prefix)?;
        let group_id = external_id(obj, "groupId", prefix)?
            .ok_or_else(|| EngineError::invalid(format!("{prefix}/groupId"), "is required"))?;
        let traits_field = format!("{prefix}/traits");
        let group_traits = match obj.get("traits") {
            None | Some(Value::Null) => Map::new(),
            Some(v) => object(v, &traits_field)?.clone(),
        };
        // Stored two levels down (`groups` → group id → traits).
        check_map(&group_traits, &traits_field)?;
        if group_traits.values().map(depth).max().unwrap_or(0) > MAX_DEPTH - 2 {
            return Err(EngineError::invalid(
                traits_field,
                format!("nested deeper than {} levels", MAX_DEPTH - 2),
            ));
        }
        timestamp(obj, prefix)?;
        let context = Context::from_json(obj, prefix)?;
        Ok(GroupInput {
            user_id,
            anonymous_id,
            group_id,
            group_traits: Personal(group_traits),
            traits: context.traits,
            message_id: message_id(obj, prefix)?,
        })
    }
}

impl AliasInput {
    /// Parses an `alias` message; `prefix` as for [`IdentifyInput::from_json`].
    pub fn from_json(value: &Value, prefix: &str) -> Result<AliasInput, EngineError> {
        let obj = object(value, if prefix.is_empty() { "/" } else { prefix })?;
        reject_unknown(
            obj,
            prefix,
            &["userId", "previousId", "anonymousId", "timestamp"],
            SEGMENT_COMMON,
        )?;
        let user_id = external_id(obj, "userId", prefix)?
            .ok_or_else(|| EngineError::invalid(format!("{prefix}/userId"), "is required"))?;
        let previous_id = external_id(obj, "previousId", prefix)?
            .ok_or_else(|| EngineError::invalid(format!("{prefix}/previousId"), "is required"))?;
        timestamp(obj, prefix)?;
        Context::from_json(obj, prefix)?;
        Ok(AliasInput {
            user_id,
            previous_id,
            message_id: message_id(obj, prefix)?,
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
