//! The request bodies as types, for their JSON Schemas in the OpenAPI document. The bodies are
//! parsed by hand (engine `input.rs`, `consent.rs`, `dsr.rs`; `routes/rights.rs`, `admin.rs`,
//! `backup.rs`), field by field, so that each refusal names its field; these types state the same
//! rules for clients. Each derives `Deserialize` as well, so a test reads every documented example
//! into its type (`deny_unknown_fields` where the parser refuses unknown fields and no field is
//! flattened), and schemathesis sends bodies generated from them to the running server.
//!
//! Segment messages are open where the Segment spec is open: `traits`, `properties` and
//! `context` take any members.

// Fields are read by serde and utoipa only.
#![allow(dead_code)]

use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
use utoipa::openapi::{RefOr, Schema};

/// The app's id for a person: a string of 1 to 256 bytes without control characters, or a number
/// (Segment libraries send numeric ids as numbers).
#[derive(Deserialize)]
#[serde(untagged)]
pub enum ExternalId {
    /// The id as text.
    Text(String),
    /// A numeric id, read as its decimal text.
    Number(f64),
}

impl utoipa::PartialSchema for ExternalId {
    fn schema() -> RefOr<Schema> {
        let text = ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(256))
            .pattern(Some("^[^\\u0000-\\u001f\\u007f-\\u009f]+$"));
        let number = ObjectBuilder::new().schema_type(Type::Number);
        OneOfBuilder::new()
            .item(text)
            .item(number)
            .description(Some(
                "The app's id for a person: 1 to 256 bytes without control characters, or a \
                 number (Segment libraries send numeric ids as numbers).",
            ))
            .into()
    }
}

impl ToSchema for ExternalId {}

/// Members every Segment message may carry besides its own. `context.traits` are traits of the
/// person; the rest of `context` is kept sealed with an event (or dropped, by the server's
/// `--event-context`). `messageId` de-duplicates retries. The others are transport detail the
/// SDKs add, accepted and not stored.
#[derive(Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct SegmentCommon {
    /// Names the call; inside a batch it chooses the item's kind.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// 1 to 256 bytes without control characters: a message with an id seen in the last 7 days
    /// is answered with the first result and not stored again.
    #[schema(min_length = 1, max_length = 256)]
    pub messageId: Option<String>,
    /// `ip`, `userAgent`, `locale`, `campaign`, `page`, `library`, ... and `traits`.
    #[schema(value_type = Option<Object>)]
    pub context: Option<Map<String, Value>>,
    /// RudderStack's spelling of `userId`.
    pub user_id: Option<ExternalId>,
    /// RudderStack's spelling of `anonymousId`.
    pub anonymous_id: Option<ExternalId>,
    /// Transport detail (accepted, not stored).
    pub integrations: Option<Value>,
    /// Transport detail (accepted, not stored).
    pub sentAt: Option<Value>,
    /// Transport detail (accepted, not stored).
    pub originalTimestamp: Option<Value>,
    /// Transport detail (accepted, not stored).
    pub receivedAt: Option<Value>,
    /// Transport detail (accepted, not stored).
    pub version: Option<Value>,
    /// Transport detail (accepted, not stored).
    pub channel: Option<Value>,
    /// Transport detail (accepted, not stored).
    pub writeKey: Option<Value>,
    /// Transport detail (accepted, not stored).
    pub rudderId: Option<Value>,
    /// Transport detail (accepted, not stored).
    pub request_ip: Option<Value>,
    /// Transport detail (accepted, not stored).
    pub event_type: Option<Value>,
    /// The Node SDKs' runtime description (accepted, not stored).
    pub _metadata: Option<Value>,
}

/// `POST /v1/identify` (and a batch item of type `identify`): one of `userId` or `anonymousId`
/// is required.
#[derive(Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct IdentifyBody {
    /// The app's id for the person.
    pub userId: Option<ExternalId>,
    /// The device's or visitor's id before the person is known.
    pub anonymousId: Option<ExternalId>,
    /// Any traits; `email` must be an e-mail address and `phone` a string. Names 1 to 256
    /// bytes, values nested at most 8 levels.
    #[schema(value_type = Option<Object>)]
    pub traits: Option<Map<String, Value>>,
    /// The client's time of the call.
    #[schema(format = DateTime)]
    pub timestamp: Option<String>,
    #[serde(flatten)]
    pub common: SegmentCommon,
}

/// `POST /v1/track` (and a batch item of type `track`): one of `userId` or `anonymousId` is
/// required. `Order Completed`, `Order Refunded`, `Product Reviewed` and `NPS Answered` have
/// their properties checked (amounts numbers, `currency` ISO 4217, `rating` 0 to 5, `score` 0 to
/// 10).
#[derive(Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct TrackBody {
    /// The app's id for the person.
    pub userId: Option<ExternalId>,
    /// The device's or visitor's id before the person is known.
    pub anonymousId: Option<ExternalId>,
    /// The event's name, 1 to 200 bytes.
    #[schema(min_length = 1, max_length = 200)]
    pub event: String,
    /// Any properties.
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Map<String, Value>>,
    /// The client's time of the event.
    #[schema(format = DateTime)]
    pub timestamp: Option<String>,
    #[serde(flatten)]
    pub common: SegmentCommon,
}

/// `POST /v1/page` and `/v1/screen` (and batch items of those types): one of `userId` or
/// `anonymousId` is required.
#[derive(Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct PageBody {
    /// The app's id for the person.
    pub userId: Option<ExternalId>,
    /// The device's or visitor's id before the person is known.
    pub anonymousId: Option<ExternalId>,
    /// The page's or screen's name, at most 200 bytes.
    #[schema(max_length = 200)]
    pub name: Option<String>,
    /// Its category, at most 200 bytes.
    #[schema(max_length = 200)]
    pub category: Option<String>,
    /// Any properties (`url`, `referrer`, `title`, ...).
    #[schema(value_type = Option<Object>)]
    pub properties: Option<Map<String, Value>>,
    /// The client's time of the view.
    #[schema(format = DateTime)]
    pub timestamp: Option<String>,
    #[serde(flatten)]
    pub common: SegmentCommon,
}

/// `POST /v1/group` (and a batch item of type `group`): one of `userId` or `anonymousId` is
/// required.
#[derive(Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct GroupBody {
    /// The app's id for the person.
    pub userId: Option<ExternalId>,
    /// The device's or visitor's id before the person is known.
    pub anonymousId: Option<ExternalId>,
    /// The group (account, company) the person belongs to.
    pub groupId: ExternalId,
    /// The group's traits, stored under the person's `groups` trait (nested at most 6 levels).
    #[schema(value_type = Option<Object>)]
    pub traits: Option<Map<String, Value>>,
    /// The client's time of the call.
    #[schema(format = DateTime)]
    pub timestamp: Option<String>,
    #[serde(flatten)]
    pub common: SegmentCommon,
}

/// `POST /v1/alias` (and a batch item of type `alias`).
#[derive(Deserialize, ToSchema)]
#[allow(non_snake_case)]
pub struct AliasBody {
    /// The person's id from now on.
    pub userId: ExternalId,
    /// The id to link to it (an anonymous id, or an earlier user id).
    pub previousId: ExternalId,
    /// Accepted and not used (Segment libraries send it).
    pub anonymousId: Option<ExternalId>,
    /// RudderStack's spelling of `previousId`.
    pub previous_id: Option<ExternalId>,
    /// The client's time of the call.
    #[schema(format = DateTime)]
    pub timestamp: Option<String>,
    #[serde(flatten)]
    pub common: SegmentCommon,
}

/// One item of a batch, chosen by its `type`. An item of another type is refused alone (its
/// result is a problem) while the others are stored.
#[derive(Deserialize, ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum BatchItemBody {
    /// An identify call.
    Identify(IdentifyBody),
    /// A track call.
    Track(TrackBody),
    /// A page call.
    Page(PageBody),
    /// A screen call.
    Screen(PageBody),
    /// A group call.
    Group(GroupBody),
    /// An alias call.
    Alias(AliasBody),
}

/// `POST /v1/batch`: 1 to `--max-batch-items` (default 100) messages.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct BatchBody {
    /// The messages, applied in order.
    #[schema(min_items = 1)]
    pub batch: Vec<BatchItemBody>,
    /// The API key, when no `Authorization` header is sent (as Segment's server takes it).
    pub writeKey: Option<String>,
    /// Transport detail (accepted, not stored).
    pub context: Option<Value>,
    /// Transport detail (accepted, not stored).
    pub integrations: Option<Value>,
    /// Transport detail (accepted, not stored).
    pub sentAt: Option<Value>,
    /// Transport detail (accepted, not stored).
    pub metadata: Option<Value>,
    /// Transport detail (accepted, not stored).
    pub timestamp: Option<Value>,
}

/// `PATCH /v1/subjects/{subject_id}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    /// Traits to set; a `null` value removes the trait.
    #[schema(value_type = Object)]
    pub traits: Map<String, Value>,
}

/// `POST /v1/admin/keys`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyBody {
    /// A role of the policies (`app`, `compliance`, `admin`, ...).
    pub role: custodia_core::RoleName,
    /// The caller's own tenant (an admin creates keys of its own tenant only).
    pub tenant: Option<String>,
}

/// What an online backup copies.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum BackupWhatBody {
    /// The data directory.
    Data,
    /// The key store.
    Keys,
}

/// `POST /v1/admin/backups`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BackupBody {
    /// An absolute path on the server, new or empty, outside the data and key directories.
    #[schema(min_length = 1)]
    pub out: String,
    /// `data` (default) or `keys`.
    pub what: Option<BackupWhatBody>,
}

/// A consent decision.
#[derive(Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum DecisionBody {
    /// Consent given.
    Granted,
    /// Consent withdrawn.
    Withdrawn,
}

/// Where a decision was made.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SourceBody {
    /// A label of 1 to 64 letters, digits, `_`, `.`, `:` or `-` (`web`, `email`, `pos`).
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub channel: Option<String>,
    /// The app that asked, a label as `channel`.
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub app: Option<String>,
}

/// Evidence of a decision, sealed under the subject's key.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EvidenceBody {
    /// The client's IP address.
    pub ip: Option<String>,
    /// The client's user agent.
    pub user_agent: Option<String>,
    /// The form's wording id, a label as `source.channel`.
    #[schema(pattern = "^[A-Za-z0-9_.:-]{1,64}$")]
    pub form_id: Option<String>,
}

/// `POST /v1/consents`: the subject by `subject_id` or by `user_id` (`userId`), not both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentBody {
    /// The subject.
    pub subject_id: Option<custodia_core::SubjectId>,
    /// The app's id for the person.
    #[schema(min_length = 1)]
    pub user_id: Option<String>,
    /// A purpose of the policies (GET /v1/purposes); an unknown one is 422 `unknown_purpose`.
    pub purpose: custodia_core::PurposeId,
    /// The decision.
    pub decision: DecisionBody,
    /// Where it was made.
    pub source: Option<SourceBody>,
    /// The policy version the person saw, at most 128 bytes.
    #[schema(max_length = 128)]
    pub policy_version: Option<String>,
    /// Evidence (sealed).
    pub evidence: Option<EvidenceBody>,
    /// A Global Privacy Control signal: also withdraws the sale/share purposes.
    pub gpc: Option<bool>,
    /// 1 to 256 bytes: a decision with an id recorded before answers the first entry again.
    #[schema(min_length = 1, max_length = 256)]
    pub decision_id: Option<String>,
}

/// `POST /v1/dsr/{request_id}/consents` with a `consent` request's token: one decision of the
/// person, recorded with the channel `privacy_center`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConsentChoiceBody {
    /// A consent-based purpose of the policies; another lawful basis is 422.
    pub purpose: custodia_core::PurposeId,
    /// The decision.
    pub decision: DecisionBody,
}

/// `POST /v1/dsr/{request_id}/carry-out` (compliance).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CarryOutBody {
    /// Why, for the requester and the ledger (sealed): 1 to 2000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
    /// A rectification's corrected traits (required for one, refused for other types); `null`
    /// removes a trait.
    #[schema(value_type = Option<Object>)]
    pub traits: Option<serde_json::Map<String, serde_json::Value>>,
}

/// `POST /v1/dsr/{request_id}/reject` (compliance).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RejectBody {
    /// Why, for the requester and the ledger (sealed): 1 to 2000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

/// `POST /v1/dsr/{request_id}/extend` (compliance).
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExtendBody {
    /// By how many months (two in all).
    #[schema(minimum = 1, maximum = 2)]
    pub months: u8,
    /// Why, for the requester and the ledger (sealed): 1 to 2000 characters.
    #[schema(min_length = 1, max_length = 2000)]
    pub reason: String,
}

/// `POST /v1/subjects/{subject_id}/erasure`; no body is `{}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErasureBody {
    /// Refuse the subject's `userId` from now on (409 `subject_suppressed`).
    pub suppress: Option<bool>,
    /// The data-subject request this erasure answers, for the receipt.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub request_id: Option<String>,
}

/// `PUT /v1/subjects/{subject_id}/flags`: `true` sets, `false` lifts, absent keeps; no body is
/// `{}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlagsBody {
    /// Restriction of processing (Art. 18).
    pub restricted: Option<bool>,
    /// Objection to legitimate-interest processing (Art. 21).
    pub objected: Option<bool>,
    /// A legal hold.
    pub legal_hold: Option<bool>,
    /// The data-subject request behind the change, for the ledger.
    #[schema(pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub request_id: Option<String>,
}

/// `POST /v1/admin/suppressions/lift`: the userId as `user_id` or `userId`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct LiftBody {
    /// The suppressed userId, 1 to 256 characters.
    #[schema(min_length = 1, max_length = 256)]
    pub user_id: Option<String>,
    /// Segment's spelling of `user_id`.
    #[schema(min_length = 1, max_length = 256)]
    pub userId: Option<String>,
}

/// `POST /v1/dsr`: the person by `email` or by `user_id` (`userId`), not both.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(non_snake_case)]
pub struct DsrBody {
    /// What is asked (the engine's own type, so a new kind of request is documented at once).
    #[serde(rename = "type")]
    pub kind: custodia_engine::DsrType,
    /// The person's e-mail address, where the one-time code goes.
    #[schema(min_length = 1, max_length = 256)]
    pub email: Option<String>,
    /// The app's id for the person.
    #[schema(min_length = 1, max_length = 256)]
    pub user_id: Option<String>,
    /// Segment's spelling of `user_id`.
    #[schema(min_length = 1, max_length = 256)]
    pub userId: Option<String>,
    /// At most 16 KiB of JSON: for rectification `{"traits": {...}}` and/or `{"note": "..."}`
    /// (or the note as a string); for erasure `{"suppress": true}`.
    pub details: Option<Value>,
}

/// `POST /v1/dsr/{request_id}/verify`.
#[derive(Deserialize, ToSchema)]
pub struct VerifyBody {
    /// The one-time code from the message.
    #[schema(min_length = 1, max_length = 32)]
    pub code: String,
}
