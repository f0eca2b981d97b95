//! The OpenAPI 3.1 document served at `GET /openapi.json`, built from one table of operations.
//! A test checks the table against the router's route list, so neither can drift. Parameters
//! carry their JSON Schema type, every error answer the `Problem` schema whose `code` enum is
//! `ErrorCode::ALL`, and each operation lists the statuses it can answer (checked in CI by
//! schemathesis against the running binary, tests/e2e/openapi.rs).

mod bodies;

use std::borrow::Cow;
use std::collections::BTreeMap;

use custodia_analytics::{Dashboard, Segments};
use custodia_core::ErrorCode;
use custodia_engine::{
    ApiKeyView, ConsentHistory, ConsentOutcome, ConsistencyProof, DsrCase, DsrExport, DsrView,
    ErasureOutcome, EventPage, FlagsView, IdentifyOutcome, InclusionProof, LogPublicKey,
    PrivacyCenterConsents, PrivacyCenterDecision, Profile, RetentionReport, SearchPage,
    TrackOutcome,
};
use serde_json::{Value, json};
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{KnownFormat, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApiBuilder, PathsBuilder,
    Ref, RefOr, Required, Schema,
};
use utoipa::{PartialSchema, ToSchema};

use crate::routes::answers;

/// The JSON Schema of a query or path parameter (all arrive as text and are parsed by the
/// handler, which refuses a bad value with 400 or 422 naming the parameter).
#[derive(Clone, Copy)]
enum Kind {
    Str,
    /// A non-negative integer (sequence numbers, tree sizes, page sizes).
    Int,
    Bool,
    /// RFC 3339.
    DateTime,
    /// A hyphenated UUID.
    Uuid,
    /// One of these words.
    Choice(&'static [&'static str]),
}

/// One query or path parameter: name, location, required, schema, description.
type Param = (&'static str, ParameterIn, bool, Kind, &'static str);

struct Op {
    method: &'static str,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    auth: bool,
    params: &'static [Param],
    body: Option<fn() -> Value>,
    responses: &'static [(&'static str, &'static str)],
}

const PURPOSE: Param = (
    "purpose",
    ParameterIn::Query,
    true,
    Kind::Str,
    "The purpose of the read (GET /v1/purposes).",
);
const SUBJECT: Param = (
    "subject_id",
    ParameterIn::Path,
    true,
    Kind::Uuid,
    "The subject's id.",
);
const IDEMPOTENCY_KEY: &str = "1 to 255 visible ASCII characters. A retry with the same key and the same request within the idempotency window gets the first (2xx) answer, marked `Idempotent-Replayed: true`, and is not applied again; another request under the key: 422 `idempotency_key_reused`; while the first is in flight: 409 `idempotency_key_in_flight`.";
const REFUSALS: (&str, &str) = (
    "4XX",
    "Refused: problem+json with a stable `code` and the `field` at fault.",
);

const OPS: &[Op] = &[
    Op {
        method: "GET",
        path: "/healthz",
        tag: "operations",
        summary: "Liveness: the process answers and the store flushes.",
        auth: false,
        params: &[],
        body: None,
        responses: &[
            ("200", "`{\"status\":\"ok\"}`"),
            (
                "503",
                "`{\"status\":\"unavailable\", \"reason\", \"action\"}`: the store cannot flush; restart the server (after freeing disk space if the disk is full).",
            ),
        ],
    },
    Op {
        method: "GET",
        path: "/metrics",
        tag: "operations",
        summary: "Prometheus metrics.",
        auth: false,
        params: &[],
        body: None,
        responses: &[("200", "Prometheus text format.")],
    },
    Op {
        method: "GET",
        path: "/openapi.json",
        tag: "operations",
        summary: "This document.",
        auth: false,
        params: &[],
        body: None,
        responses: &[("200", "OpenAPI 3.1 JSON.")],
    },
    Op {
        method: "GET",
        path: "/v1/purposes",
        tag: "policies",
        summary: "The purposes of processing in force, with lawful basis, categories, retention and recipients.",
        auth: true,
        params: &[],
        body: None,
        responses: &[
            (
                "200",
                "`{\"purposes\": [...], \"policy_version\", \"policy_hash\"}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "POST",
        path: "/v1/identify",
        tag: "ingestion",
        summary: "Create or update a customer (Segment identify); links userId and anonymousId, merging an anonymous visitor into a known customer.",
        auth: true,
        params: &[],
        body: Some(identify_example),
        responses: &[("200", "`{\"subject_id\", \"created\"}`"), REFUSALS],
    },
    Op {
        method: "POST",
        path: "/v1/track",
        tag: "ingestion",
        summary: "Record an event (Segment track): e-commerce events and NPS Answered are validated.",
        auth: true,
        params: &[],
        body: Some(track_example),
        responses: &[("200", "`{\"subject_id\", \"event_id\"}`"), REFUSALS],
    },
    Op {
        method: "POST",
        path: "/v1/batch",
        tag: "ingestion",
        summary: "Several Segment calls (identify, track, page, screen, group, alias); items of a known type are validated before anything is written, an item of an unknown type is refused alone.",
        auth: true,
        params: &[],
        body: Some(batch_example),
        responses: &[
            ("200", "`{\"results\": [...]}`, one per item in order"),
            REFUSALS,
        ],
    },
    Op {
        method: "POST",
        path: "/v1/page",
        tag: "ingestion",
        summary: "Record a page view (Segment page): stored as the event `Page Viewed` with `name` and `category` among its properties.",
        auth: true,
        params: &[],
        body: Some(page_example),
        responses: &[("200", "`{\"subject_id\", \"event_id\"}`"), REFUSALS],
    },
    Op {
        method: "POST",
        path: "/v1/screen",
        tag: "ingestion",
        summary: "Record a screen view (Segment screen): stored as the event `Screen Viewed`.",
        auth: true,
        params: &[],
        body: Some(page_example),
        responses: &[("200", "`{\"subject_id\", \"event_id\"}`"), REFUSALS],
    },
    Op {
        method: "POST",
        path: "/v1/group",
        tag: "ingestion",
        summary: "Put a person in a group (Segment group): the group id and traits go under the `groups` trait.",
        auth: true,
        params: &[],
        body: Some(group_example),
        responses: &[("200", "`{\"subject_id\", \"created\"}`"), REFUSALS],
    },
    Op {
        method: "POST",
        path: "/v1/alias",
        tag: "ingestion",
        summary: "Link previousId to userId (Segment alias), by the rules of identify: an anonymous subject is merged.",
        auth: true,
        params: &[],
        body: Some(alias_example),
        responses: &[("200", "`{\"subject_id\", \"created\"}`"), REFUSALS],
    },
    Op {
        method: "GET",
        path: "/v1/subjects",
        tag: "profiles",
        summary: "Exact look-up by e-mail, phone (E.164) or user id, through blind indexes.",
        auth: true,
        params: &[
            (
                "email",
                ParameterIn::Query,
                false,
                Kind::Str,
                "E-mail address.",
            ),
            (
                "phone",
                ParameterIn::Query,
                false,
                Kind::Str,
                "Phone number with country code.",
            ),
            (
                "user_id",
                ParameterIn::Query,
                false,
                Kind::Str,
                "The app's user id (`userId` is accepted too).",
            ),
            PURPOSE,
        ],
        body: None,
        responses: &[("200", "`{\"subjects\": [profile...]}`"), REFUSALS],
    },
    Op {
        method: "GET",
        path: "/v1/subjects/{subject_id}",
        tag: "profiles",
        summary: "A subject's profile, with only the traits of the data categories the purpose names (listed in `categories`).",
        auth: true,
        params: &[SUBJECT, PURPOSE],
        body: None,
        responses: &[
            (
                "200",
                "`{\"subject_id\", \"user_id\", \"anonymous_ids\", \"traits\", \"categories\", \"created_at\", \"updated_at\"}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "PATCH",
        path: "/v1/subjects/{subject_id}",
        tag: "profiles",
        summary: "Change traits; a null value removes a trait.",
        auth: true,
        params: &[SUBJECT],
        body: Some(patch_example),
        responses: &[("200", "`{\"subject_id\", \"updated_at\"}`"), REFUSALS],
    },
    Op {
        method: "GET",
        path: "/v1/subjects/{subject_id}/events",
        tag: "profiles",
        summary: "A subject's events of the data categories the purpose names (listed in `categories`), oldest first, with cursor pagination.",
        auth: true,
        params: &[
            SUBJECT,
            PURPOSE,
            (
                "limit",
                ParameterIn::Query,
                false,
                Kind::Int,
                "Page size, 1 to 500 (default 50).",
            ),
            (
                "cursor",
                ParameterIn::Query,
                false,
                Kind::Str,
                "`next_cursor` of the previous page.",
            ),
        ],
        body: None,
        responses: &[("200", "`{\"events\": [...], \"next_cursor\"}`"), REFUSALS],
    },
    Op {
        method: "POST",
        path: "/v1/admin/keys",
        tag: "admin",
        summary: "Create an API key of the caller's tenant (admin role); the key is shown once.",
        auth: true,
        params: &[],
        body: Some(key_example),
        responses: &[
            ("201", "`{\"key_id\", \"role\", \"tenant\", \"api_key\"}`"),
            REFUSALS,
        ],
    },
    Op {
        method: "POST",
        path: "/v1/admin/backups",
        tag: "admin",
        summary: "Take an online backup of the data directory (`what`: `data`) or the key store \
                  (`keys`) into `out`, an absolute path on the server that is new or empty and \
                  outside the data directory and key store (admin role). Writes wait meanwhile.",
        auth: true,
        params: &[],
        body: Some(|| json!({"out": "/backup/data-2026-12-06", "what": "data"})),
        responses: &[
            (
                "201",
                "`{\"out\", \"kind\", \"n_files\", \"bytes\", \"writes_paused_ms\", \"ledgers\", \"access_logs\"}`",
            ),
            REFUSALS,
        ],
    }, // The privacy center's "manage my consent" (a `consent` request's access token).
    Op {
        method: "GET",
        path: "/v1/dsr/{request_id}/consents",
        tag: "data-subject requests",
        summary: "A verified `consent` request's session (Authorization: Bearer <access_token>, for 60 minutes after verification): every consent-based purpose of the policies with its name, description, whether it is a sale/share (`sale_or_share`), the person's current `state` (granted, withdrawn, not_set, expired), `since`, `seq` and `by_gpc`; `gpc_signal` says whether this request carried `Sec-GPC: 1`. A person the shop does not know gets `result: no_data_held` and no purposes.",
        auth: false,
        params: &[REQUEST_ID],
        body: None,
        responses: &[
            (
                "200",
                "`{\"request_id\", \"result\", \"manage_until\", \"gpc_signal\", \"purposes\": [{\"purpose\", \"name\", \"description\", \"lawful_basis\", \"sale_or_share\", \"state\", \"since\"?, \"seq\"?, \"by_gpc\"}]}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "POST",
        path: "/v1/dsr/{request_id}/consents",
        tag: "data-subject requests",
        summary: "Record one consent decision from the privacy center (a `consent` request's access token): a ledger entry with `source.channel = \"privacy_center\"`, the browser's address and user agent sealed as evidence. With `Sec-GPC: 1` it is a GPC decision: every sale/share purpose is withdrawn too (listed in `turned_off_by_gpc`) and granting one is refused (409). A purpose whose basis is not consent, or an unknown one: 422 naming `purpose`; a person the shop does not know: 409, nothing written.",
        auth: false,
        params: &[REQUEST_ID],
        body: Some(|| json!({"purpose": "marketing_email", "decision": "withdrawn"})),
        responses: &[
            (
                "201",
                "`{\"entry\", \"gpc_withdrawals\"?, \"turned_off_by_gpc\"}`",
            ),
            REFUSALS,
        ],
    },
];

const SEQ: Param = (
    "seq",
    ParameterIn::Query,
    true,
    Kind::Int,
    "Entry sequence number (leaf index).",
);

const CONSENT_OPS: &[Op] = &[
    Op {
        method: "POST",
        path: "/v1/consents",
        tag: "consent",
        summary: "Record a consent decision in the ledger (granted or withdrawn; a GPC signal also withdraws sale/share purposes).",
        auth: true,
        params: &[],
        body: Some(consent_example),
        responses: &[
            (
                "201",
                "`{\"entry\": {\"seq\", \"leaf_hash\", \"time\", \"kind\", \"purpose\", ...}, \"gpc_withdrawals\"?}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "GET",
        path: "/v1/subjects/{subject_id}/consents",
        tag: "consent",
        summary: "Current consent per purpose: granted, withdrawn, not_set or expired.",
        auth: true,
        params: &[SUBJECT],
        body: None,
        responses: &[
            (
                "200",
                "`{\"purposes\": [{\"purpose\", \"state\", \"since\", \"seq\"}]}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "GET",
        path: "/v1/subjects/{subject_id}/consents/history",
        tag: "consent",
        summary: "Every ledger entry about the subject with an inclusion proof, and the signed checkpoint they lead to.",
        auth: true,
        params: &[SUBJECT],
        body: None,
        responses: &[
            (
                "200",
                "`{\"entries\": [{..., \"inclusion_proof\": {\"tree_size\", \"hashes\"}}], \"checkpoint\"}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "GET",
        path: "/v1/ledger/checkpoint",
        tag: "ledger",
        summary: "The latest signed checkpoint (C2SP tlog-checkpoint note), as text/plain.",
        auth: true,
        params: &[],
        body: None,
        responses: &[("200", "Signed note text."), REFUSALS],
    },
    Op {
        method: "GET",
        path: "/v1/ledger/public-key",
        tag: "ledger",
        summary: "The ledger's verifier key (note verifier-key format) and raw Ed25519 key.",
        auth: true,
        params: &[],
        body: None,
        responses: &[
            ("200", "`{\"verifier_key\", \"public_key_hex\"}`"),
            REFUSALS,
        ],
    },
    Op {
        method: "GET",
        path: "/v1/ledger/witnesses",
        tag: "ledger",
        summary: "When the latest checkpoint was signed, and who else holds the ledger's checkpoints: each webhook witness (scheme, host and path only) with the largest tree size it accepted since the server started and when, and the witness directory's newest copy; the checkpoint interval.",
        auth: true,
        params: &[],
        body: None,
        responses: &[
            (
                "200",
                "`{\"origin\", \"checkpoint_interval_seconds\", \"checkpoint_signed_at\"?, \"witnesses\": [{\"kind\", \"target\", \"last_tree_size\"?, \"last_at\"?}]}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "GET",
        path: "/v1/ledger/entries",
        tag: "ledger",
        summary: "Ledger entries with their canonical bytes and decoded fields.",
        auth: true,
        params: &[
            (
                "from",
                ParameterIn::Query,
                false,
                Kind::Int,
                "First sequence number (default 0).",
            ),
            (
                "limit",
                ParameterIn::Query,
                false,
                Kind::Int,
                "1 to 1000 (default 100).",
            ),
        ],
        body: None,
        responses: &[
            (
                "200",
                "`{\"entries\": [{\"seq\", \"leaf_hash\", \"bytes_b64\", ...}]}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "GET",
        path: "/v1/ledger/proof/inclusion",
        tag: "ledger",
        summary: "RFC 9162 inclusion proof.",
        auth: true,
        params: &[
            SEQ,
            (
                "tree_size",
                ParameterIn::Query,
                false,
                Kind::Int,
                "Tree size (default: the latest checkpoint's).",
            ),
        ],
        body: None,
        responses: &[("200", "`{\"seq\", \"tree_size\", \"hashes\"}`"), REFUSALS],
    },
    Op {
        method: "GET",
        path: "/v1/ledger/proof/consistency",
        tag: "ledger",
        summary: "RFC 9162 consistency proof between two tree sizes.",
        auth: true,
        params: &[
            (
                "from",
                ParameterIn::Query,
                true,
                Kind::Int,
                "Older tree size.",
            ),
            (
                "to",
                ParameterIn::Query,
                true,
                Kind::Int,
                "Newer tree size.",
            ),
        ],
        body: None,
        responses: &[("200", "`{\"from\", \"to\", \"hashes\"}`"), REFUSALS],
    },
    Op {
        method: "GET",
        path: "/v1/me",
        tag: "operations",
        summary: "The calling key: its id, role, and the operations and purposes the role allows.",
        auth: true,
        params: &[],
        body: None,
        responses: &[
            (
                "200",
                "`{\"key_id\", \"tenant\", \"role\", \"description\", \"operations\": [...], \"purposes\": [...]}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "GET",
        path: "/v1/policies",
        tag: "policies",
        summary: "The policies in force as the server read them at start (any key): version and hash, the purposes (as `GET /v1/purposes`), the data categories with retention and legal holds, and the roles with their operations and purposes.",
        auth: true,
        params: &[],
        body: None,
        responses: &[
            (
                "200",
                "`{\"policy_version\", \"policy_hash\", \"purposes\", \"categories\", \"roles\"}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "GET",
        path: "/v1/admin/keys",
        tag: "admin",
        summary: "The tenant's API keys, oldest first (admin role): id, role, created, last used (exact for this process, within the hour across restarts), revoked and when, and which one is asking. Never a secret.",
        auth: true,
        params: &[],
        body: None,
        responses: &[
            (
                "200",
                "`{\"keys\": [{\"key_id\", \"role\", \"created_at\", \"last_used_at\"?, \"revoked\", \"revoked_at\"?, \"this_key\"}]}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "DELETE",
        path: "/v1/admin/keys/{key_id}",
        tag: "admin",
        summary: "Revoke one of the tenant's API keys (admin role): it authenticates nothing from the next request on. Revoking a revoked key changes nothing; the key that asks cannot revoke itself (409). Another tenant's key or an unknown id: 404.",
        auth: true,
        params: &[(
            "key_id",
            ParameterIn::Path,
            true,
            Kind::Str,
            "The key's public id (16 hex digits).",
        )],
        body: None,
        responses: &[("200", "The key as it now stands."), REFUSALS],
    },
    Op {
        method: "GET",
        path: "/v1/admin/root-key",
        tag: "admin",
        summary: "The root key's age against the rotation interval the server was started with (admin role); `rotation_due` when it is older (rotate with `custodia keys rotate`).",
        auth: true,
        params: &[],
        body: None,
        responses: &[
            (
                "200",
                "`{\"age_seconds\", \"age_days\", \"rotation_interval_days\", \"rotation_due\"}`",
            ),
            REFUSALS,
        ],
    },
];

const ACCESS_OPS: &[Op] = &[
    Op {
        method: "GET",
        path: "/v1/audit/access",
        tag: "audit",
        summary: "The access log: who (key id, role) read whose data (pseudonym), for which purpose, what, when, with what result.",
        auth: true,
        params: &[
            (
                "subject_id",
                ParameterIn::Query,
                false,
                Kind::Str,
                "Only reads of this subject.",
            ),
            (
                "from",
                ParameterIn::Query,
                false,
                Kind::DateTime,
                "RFC 3339: not before.",
            ),
            (
                "to",
                ParameterIn::Query,
                false,
                Kind::DateTime,
                "RFC 3339: not after.",
            ),
            (
                "limit",
                ParameterIn::Query,
                false,
                Kind::Int,
                "1 to 1000 (default 100).",
            ),
        ],
        body: None,
        responses: &[("200", "`{\"entries\": [...]}`"), REFUSALS],
    },
    Op {
        method: "GET",
        path: "/v1/audit/access/checkpoint",
        tag: "audit",
        summary: "The access log's latest signed checkpoint (C2SP tlog-checkpoint note).",
        auth: true,
        params: &[],
        body: None,
        responses: &[("200", "Signed note text."), REFUSALS],
    },
    Op {
        method: "GET",
        path: "/v1/audit/access/public-key",
        tag: "audit",
        summary: "The access log's verifier key.",
        auth: true,
        params: &[],
        body: None,
        responses: &[
            ("200", "`{\"verifier_key\", \"public_key_hex\"}`"),
            REFUSALS,
        ],
    },
    Op {
        method: "GET",
        path: "/v1/audit/access/witnesses",
        tag: "audit",
        summary: "Who else holds the access log's checkpoints (as `GET /v1/ledger/witnesses`).",
        auth: true,
        params: &[],
        body: None,
        responses: &[
            (
                "200",
                "`{\"origin\", \"checkpoint_interval_seconds\", \"witnesses\"}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "GET",
        path: "/v1/audit/access/entries",
        tag: "audit",
        summary: "Access-log entries with their canonical bytes.",
        auth: true,
        params: &[
            (
                "from",
                ParameterIn::Query,
                false,
                Kind::Int,
                "First sequence number.",
            ),
            ("limit", ParameterIn::Query, false, Kind::Int, "1 to 1000."),
        ],
        body: None,
        responses: &[("200", "`{\"entries\": [...]}`"), REFUSALS],
    },
    Op {
        method: "GET",
        path: "/v1/audit/access/proof/inclusion",
        tag: "audit",
        summary: "RFC 9162 inclusion proof in the access log.",
        auth: true,
        params: &[
            SEQ,
            (
                "tree_size",
                ParameterIn::Query,
                false,
                Kind::Int,
                "Tree size.",
            ),
        ],
        body: None,
        responses: &[("200", "`{\"seq\", \"tree_size\", \"hashes\"}`"), REFUSALS],
    },
    Op {
        method: "GET",
        path: "/v1/audit/access/proof/consistency",
        tag: "audit",
        summary: "RFC 9162 consistency proof in the access log.",
        auth: true,
        params: &[
            ("from", ParameterIn::Query, true, Kind::Int, "Older size."),
            ("to", ParameterIn::Query, true, Kind::Int, "Newer size."),
        ],
        body: None,
        responses: &[("200", "`{\"from\", \"to\", \"hashes\"}`"), REFUSALS],
    },
];

fn consent_example() -> Value {
    json!({"user_id": "user-123", "purpose": "marketing_email", "decision": "granted", "source": {"channel": "web", "app": "checkout"}, "evidence": {"ip": "203.0.113.7", "user_agent": "Mozilla/5.0", "form_id": "newsletter-v3"}})
}

const AUDIT_OPS: &[Op] = &[Op {
    method: "GET",
    path: "/v1/audit/merges",
    tag: "audit",
    summary: "Subjects merged by identity resolution (audit role): merged id, surviving id, time, events moved. With `subject_id`: the merges that made that subject (every subject merged into it, transitively) and the one that merged it away.",
    auth: true,
    params: &[(
        "subject_id",
        ParameterIn::Query,
        false,
        Kind::Uuid,
        "Only the merges of this subject.",
    )],
    body: None,
    responses: &[
        (
            "200",
            "`{\"merges\": [{\"merged\", \"into\", \"at\", \"n_events_moved\"}]}`",
        ),
        REFUSALS,
    ],
}];

fn identify_example() -> Value {
    json!({"userId": "user-123", "anonymousId": "anon-9", "traits": {"email": "jane@example.com", "firstName": "Jane"}})
}

fn track_example() -> Value {
    json!({"userId": "user-123", "event": "Order Completed", "properties": {"order_id": "O-1", "total": 42.5, "currency": "EUR"}})
}

fn page_example() -> Value {
    json!({"userId": "user-123", "name": "Pricing", "properties": {"url": "https://shop.example/pricing"}})
}

fn group_example() -> Value {
    json!({"userId": "user-123", "groupId": "acme", "traits": {"plan": "team"}})
}

fn alias_example() -> Value {
    json!({"previousId": "anon-42", "userId": "user-123"})
}

fn batch_example() -> Value {
    json!({"batch": [{"type": "identify", "userId": "user-123", "traits": {}}, {"type": "track", "userId": "user-123", "event": "NPS Answered", "properties": {"score": 9}}]})
}

fn patch_example() -> Value {
    json!({"traits": {"phone": "+49 30 1234567", "nickname": null}})
}

fn key_example() -> Value {
    json!({"role": "app"})
}

fn erasure_example() -> Value {
    json!({"suppress": true, "request_id": "dsr-2026-0042"})
}

fn flags_example() -> Value {
    json!({"restricted": true, "request_id": "dsr-2026-0043"})
}

fn lift_example() -> Value {
    json!({"user_id": "user-123"})
}

fn dsr_example() -> Value {
    json!({"type": "access", "email": "jane@example.com"})
}

fn code_example() -> Value {
    json!({"code": "12345678"})
}

const REQUEST_ID: Param = (
    "request_id",
    ParameterIn::Path,
    true,
    Kind::Str,
    "The request's id.",
);

const DSR_OPS: &[Op] = &[
    Op {
        method: "POST",
        path: "/v1/dsr",
        tag: "data-subject requests",
        summary: "A person's request (no API key; rate-limited per address and per requester): access, portability, rectification (`details.traits`, and/or a free-text `details.note` or `details` string, which waits for a person as `awaiting_compliance`), erasure (`details.suppress`), restriction, objection, or `consent` (\"manage my consent\": no details; completes on verification and opens a 60-minute session of `/v1/dsr/{request_id}/consents`). Always 202 with the same body, known person or not; a one-time code goes to the outbox.",
        auth: false,
        params: &[],
        body: Some(dsr_example),
        responses: &[
            (
                "202",
                "`{\"request_id\", \"status\": \"pending_verification\"}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "POST",
        path: "/v1/dsr/{request_id}/verify",
        tag: "data-subject requests",
        summary: "Prove the request with its one-time code (24 h; five wrong codes lock it). The request is then carried out; the answer holds an access token for this request only.",
        auth: false,
        params: &[REQUEST_ID],
        body: Some(code_example),
        responses: &[
            (
                "200",
                "`{\"request_id\", \"status\", \"access_token\", \"outcome\"}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "GET",
        path: "/v1/dsr/{request_id}",
        tag: "data-subject requests",
        summary: "The request's state (Authorization: Bearer <access_token>).",
        auth: false,
        params: &[REQUEST_ID],
        body: None,
        responses: &[
            (
                "200",
                "`{\"request_id\", \"type\", \"status\", \"received_at\", \"deadline\", \"overdue\", \"completed_at\", \"outcome\"}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "GET",
        path: "/v1/dsr/{request_id}/export",
        tag: "data-subject requests",
        summary: "The Art. 15 / Art. 20 bundle (access token): the data, purposes, categories, recipients, retention, source, rights, supervisory authority, and the consent history with inclusion proofs, a signed checkpoint and the ledger's public key.",
        auth: false,
        params: &[
            REQUEST_ID,
            (
                "format",
                ParameterIn::Query,
                false,
                Kind::Choice(&["json", "zip"]),
                "json (default) or zip: the bundle plus a CSV per table (profile, events, consent history), for portability.",
            ),
        ],
        body: None,
        responses: &[("200", "JSON bundle, or application/zip."), REFUSALS],
    },
    Op {
        method: "GET",
        path: "/v1/dsr",
        tag: "data-subject requests",
        summary: "The request queue (compliance), earliest deadline first.",
        auth: true,
        params: &[
            (
                "status",
                ParameterIn::Query,
                false,
                Kind::Choice(&[
                    "pending_verification",
                    "verified",
                    "in_progress",
                    "awaiting_compliance",
                    "completed",
                    "rejected",
                ]),
                "pending_verification, verified, in_progress, awaiting_compliance (a free-text rectification waiting for a person), completed or rejected.",
            ),
            (
                "overdue",
                ParameterIn::Query,
                false,
                Kind::Bool,
                "true: only requests past their deadline.",
            ),
        ],
        body: None,
        responses: &[("200", "`{\"requests\": [...]}`"), REFUSALS],
    },
    Op {
        method: "GET",
        path: "/v1/dsr/{request_id}/case",
        tag: "data-subject requests",
        summary: "A request's case file (compliance), read for a purpose and recorded in the access log when it names a customer: the request with its decisions' reasons (`request.notices`), who asked, a rectification's `note` and `requested_traits`, and its `timeline` — each of its ledger entries with an inclusion proof against `checkpoint`, and the opened `reason` of a person's decision. After the retention period the private part is gone (`private_part_destroyed`).",
        auth: true,
        params: &[REQUEST_ID, PURPOSE],
        body: None,
        responses: &[
            (
                "200",
                "`{\"request\", \"requester\"?, \"note\"?, \"requested_traits\"?, \"private_part_destroyed\", \"timeline\", \"checkpoint\", \"public_key\"}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "POST",
        path: "/v1/dsr/{request_id}/carry-out",
        tag: "data-subject requests",
        summary: "Carry out a request that waits for a person (compliance): a free-text rectification with the corrected `traits` (they replace the proposed ones; `null` removes a trait), or a request a crash left verified or in progress. The `reason` is sealed under the request's key into the `dsr.completed` ledger entry (with `decided_by`), and the requester reads it. A closed or unverified request: 409.",
        auth: true,
        params: &[REQUEST_ID],
        body: Some(
            || json!({"reason": "Address corrected as the customer wrote; checked against the last order.", "traits": {"address": {"city": "Lyon"}}}),
        ),
        responses: &[
            ("200", "The request as it now stands, with `notices`."),
            REFUSALS,
        ],
    },
    Op {
        method: "POST",
        path: "/v1/dsr/{request_id}/reject",
        tag: "data-subject requests",
        summary: "Refuse an open, verified request (compliance; Art. 12(4)) with a `reason` the requester reads next to their right to complain. Sealed under the request's key into the `dsr.rejected` ledger entry (with `decided_by`). A closed or unverified request: 409.",
        auth: true,
        params: &[REQUEST_ID],
        body: Some(
            || json!({"reason": "We hold no order under this name; the account is another person's."}),
        ),
        responses: &[
            ("200", "The request as it now stands, with `notices`."),
            REFUSALS,
        ],
    },
    Op {
        method: "POST",
        path: "/v1/dsr/{request_id}/extend",
        tag: "data-subject requests",
        summary: "Extend an open, verified request's deadline by `months` (1 or 2; two in all) with a `reason` the requester reads (compliance; Art. 12(3)). Only within the month after receipt; otherwise, or past two months, 409. Recorded as `dsr.extended` with the new deadline and the sealed reason.",
        auth: true,
        params: &[REQUEST_ID],
        body: Some(
            || json!({"months": 1, "reason": "Your request covers eight years of orders across two shops; we need more time to gather them."}),
        ),
        responses: &[
            ("200", "The request as it now stands, with `notices`."),
            REFUSALS,
        ],
    },
];

const SEARCH_OPS: &[Op] = &[Op {
    method: "GET",
    path: "/v1/search",
    tag: "profiles",
    summary: "Full-text search over profiles (names, contact data, address, other traits, order ids) whose index holds only keyed hashes of normalized tokens. AND over words, prefix on the last word, best first. The purpose must allow search; hits the subject's consent or flags do not allow are left out; returned hits are in the access log.",
    auth: true,
    params: &[
        (
            "q",
            ParameterIn::Query,
            true,
            Kind::Str,
            "The words to find (at most 256 characters).",
        ),
        PURPOSE,
        (
            "limit",
            ParameterIn::Query,
            false,
            Kind::Int,
            "1 to 100 (default 10).",
        ),
        (
            "tier",
            ParameterIn::Query,
            false,
            Kind::Str,
            "Only subjects with this loyalty tier.",
        ),
    ],
    body: None,
    responses: &[
        (
            "200",
            "`{\"hits\": [{\"subject_id\", \"score\"}], \"total\"}`",
        ),
        REFUSALS,
    ],
}];

const ANALYTICS_OPS: &[Op] = &[
    Op {
        method: "GET",
        path: "/v1/analytics/kpis",
        tag: "analytics",
        summary: "KPIs over subjects whose consent or lawful basis allows `analytics` (formulas in docs/analytics.md); money per currency, figures on fewer than k subjects suppressed (null, listed in `suppressed`). With `compare=previous` also the previous period's KPIs (`previous`), with `series` also the KPIs of each day, week or month (`series.points`): the dashboard in one call.",
        auth: true,
        params: &[
            (
                "from",
                ParameterIn::Query,
                false,
                Kind::DateTime,
                "RFC 3339, inclusive, from the year 1 on (default: a year before `to`, not before the year 1).",
            ),
            (
                "to",
                ParameterIn::Query,
                false,
                Kind::DateTime,
                "RFC 3339, exclusive (default: now).",
            ),
            (
                "compare",
                ParameterIn::Query,
                false,
                Kind::Choice(&["previous"]),
                "`previous`: also the KPIs of the period of equal length just before (which must start from the year 1 on).",
            ),
            (
                "series",
                ParameterIn::Query,
                false,
                Kind::Choice(&["day", "week", "month"]),
                "Also the KPIs of each day (from 00:00 UTC), ISO week (from Monday) or calendar month of the period, the first and last cut to it; at most 1,100 points, so a daily series spans at most 3 years.",
            ),
        ],
        body: None,
        responses: &[
            (
                "200",
                "`{\"customers\", \"repeat_purchase_rate\", \"retention_rate\", \"churn_rate\", \"average_order_value\", \"purchase_frequency\", \"customer_lifetime_value\", \"nps\", \"excluded_for_consent\", \"suppressed\", \"previous\"?, \"series\"?: {\"interval\", \"points\"}}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "GET",
        path: "/v1/analytics/segments",
        tag: "analytics",
        summary: "RFM segment and journey-stage counts of consenting subjects; small cells suppressed so none can be recovered by subtraction.",
        auth: true,
        params: &[],
        body: None,
        responses: &[
            (
                "200",
                "`{\"as_of\", \"rfm\": {...}, \"journey\": {...}, \"funnel\": [{\"stage\", \"subjects\", \"reached\", \"conversion_to_next\"}], \"excluded_for_consent\", \"suppressed\"}`",
            ),
            REFUSALS,
        ],
    },
];

const RIGHTS_OPS: &[Op] = &[
    Op {
        method: "GET",
        path: "/v1/subjects/{subject_id}/erasure",
        tag: "subject rights",
        summary: "What an erasure would do now (`dsr_queue` operation), changing nothing: what it would remove (profile, events per category) and what a legal obligation would keep, with the purpose, the reason and until when; `legal_hold` says it would be refused while the subject's hold lasts.",
        auth: true,
        params: &[SUBJECT],
        body: None,
        responses: &[
            (
                "200",
                "`{\"subject_id\", \"legal_hold\", \"erased\": [...], \"kept\": [{\"category\", \"records\", \"purpose\", \"reason\", \"until\"}]}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "POST",
        path: "/v1/subjects/{subject_id}/erasure",
        tag: "subject rights",
        summary: "Erase a subject (GDPR Art. 17; `dsr_queue` operation): profile, look-ups, blind indexes and events go, the key is destroyed; data a legal obligation keeps is listed with the reason. `suppress` refuses the userId from then on. Every consent ends (`consent.withdrawn` entries with the erasure as cause). No body is `{}`.",
        auth: true,
        params: &[SUBJECT],
        body: Some(erasure_example),
        responses: &[
            (
                "200",
                "`{\"subject_id\", \"cause\", \"erased\": [...], \"kept\": [{\"category\", \"records\", \"purpose\", \"reason\", \"until\"}], \"key_destroyed\", \"suppressed\", \"receipt_seq\", \"erased_at\"}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "GET",
        path: "/v1/subjects/{subject_id}/flags",
        tag: "subject rights",
        summary: "A subject's restriction (Art. 18), objection (Art. 21) and legal-hold flags; 404 for an id unknown to the tenant or erased.",
        auth: true,
        params: &[SUBJECT],
        body: None,
        responses: &[
            (
                "200",
                "`{\"restricted\", \"objected\", \"legal_hold\", \"erased_with_hold\", \"seq\"}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "PUT",
        path: "/v1/subjects/{subject_id}/flags",
        tag: "subject rights",
        summary: "Set or lift restriction, objection or a legal hold; each change is a ledger entry and takes effect on the next access decision. No body is `{}` (no change).",
        auth: true,
        params: &[SUBJECT],
        body: Some(flags_example),
        responses: &[("200", "The flags after the change."), REFUSALS],
    },
    Op {
        method: "POST",
        path: "/v1/admin/retention/run",
        tag: "subject rights",
        summary: "Run the retention sweep of the caller's tenant now (the server also runs it on a timer).",
        auth: true,
        params: &[],
        body: None,
        responses: &[
            (
                "200",
                "`{\"subjects_scanned\", \"subjects_on_hold\", \"events_removed\", \"traits_removed\", \"profiles_erased\", \"ledger_entries\"}`",
            ),
            REFUSALS,
        ],
    },
    Op {
        method: "POST",
        path: "/v1/admin/suppressions/lift",
        tag: "subject rights",
        summary: "Lift the suppression of a userId (admin): it may be stored again.",
        auth: true,
        params: &[],
        body: Some(lift_example),
        responses: &[("200", "`{\"lifted\": true|false}`"), REFUSALS],
    },
];

fn all_ops() -> impl Iterator<Item = &'static Op> {
    OPS.iter()
        .chain(RIGHTS_OPS)
        .chain(ANALYTICS_OPS)
        .chain(SEARCH_OPS)
        .chain(DSR_OPS)
        .chain(AUDIT_OPS)
        .chain(CONSENT_OPS)
        .chain(ACCESS_OPS)
}

/// The (method, path) of every documented operation.
pub fn documented_routes() -> Vec<(&'static str, &'static str)> {
    all_ops().map(|op| (op.method, op.path)).collect()
}

/// The media types of an operation's success answer: JSON unless the handler writes another.
fn success_media(op: &Op) -> &'static [&'static str] {
    match op.path {
        "/metrics" => &["text/plain; version=0.0.4"],
        "/v1/ledger/checkpoint" | "/v1/audit/access/checkpoint" => &["text/plain; charset=utf-8"],
        "/v1/dsr/{request_id}/export" => &["application/json", "application/zip"],
        _ => &["application/json"],
    }
}

/// A JSON Schema taken from a Rust type deriving (or implementing) `ToSchema`: its name in
/// `components`, and how to put it there with every schema it refers to.
#[derive(Clone, Copy)]
struct Typed {
    name: fn() -> Cow<'static, str>,
    collect: fn(&mut Vec<(String, RefOr<Schema>)>),
    /// For a request body: reads a JSON value into the type (tests check the examples with it).
    #[cfg_attr(not(test), allow(dead_code))]
    read: Option<ReadBody>,
}

/// Reads a JSON value into a body type: `Err` with serde's reason if it is not one.
type ReadBody = fn(&Value) -> Result<(), String>;

fn collect<T: ToSchema>(schemas: &mut Vec<(String, RefOr<Schema>)>) {
    schemas.push((T::name().into_owned(), T::schema()));
    T::schemas(schemas);
}

fn typed<T: ToSchema>() -> Typed {
    Typed {
        name: T::name,
        collect: collect::<T>,
        read: None,
    }
}

fn read<T: serde::de::DeserializeOwned>(value: &Value) -> Result<(), String> {
    T::deserialize(value).map(drop).map_err(|e| e.to_string())
}

fn body<T: ToSchema + serde::de::DeserializeOwned>() -> Typed {
    Typed {
        read: Some(read::<T>),
        ..typed::<T>()
    }
}

/// A JSON object whose members no Rust type fixes: this document itself.
struct JsonObject;

impl PartialSchema for JsonObject {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some("A JSON object; see the operation for its members."))
            .into()
    }
}

impl ToSchema for JsonObject {}

/// The JSON Schema of an operation's JSON answer with status `status`, from the type the handler
/// answers with. `None` only where the answer is not JSON (`/metrics`, the checkpoints); a test
/// checks that every other operation has one.
fn success_schema(op: &Op, status: &str) -> Option<Typed> {
    Some(match (op.method, op.path, status) {
        ("GET", "/healthz", "200" | "503") => typed::<crate::routes::Health>(),
        ("GET", "/openapi.json", "200") => typed::<JsonObject>(),
        ("GET", "/v1/purposes", "200") => typed::<answers::Purposes>(),
        ("GET", "/v1/me", "200") => typed::<crate::routes::Me>(),
        ("GET", "/v1/policies", "200") => typed::<answers::PoliciesView>(),
        ("GET", "/v1/admin/keys", "200") => typed::<answers::ApiKeys>(),
        ("DELETE", "/v1/admin/keys/{key_id}", "200") => typed::<ApiKeyView>(),
        ("GET", "/v1/admin/root-key", "200") => typed::<answers::RootKeyView>(),
        ("GET", "/v1/dsr/{request_id}/consents", "200") => typed::<PrivacyCenterConsents>(),
        ("POST", "/v1/dsr/{request_id}/consents", "200" | "201") => {
            typed::<PrivacyCenterDecision>()
        }
        ("POST", "/v1/identify" | "/v1/group" | "/v1/alias", "200") => typed::<IdentifyOutcome>(),
        ("POST", "/v1/track" | "/v1/page" | "/v1/screen", "200") => typed::<TrackOutcome>(),
        ("POST", "/v1/batch", "200") => typed::<answers::BatchAnswer>(),
        ("GET", "/v1/subjects", "200") => typed::<answers::Subjects>(),
        ("GET", "/v1/subjects/{subject_id}", "200") => typed::<Profile>(),
        ("PATCH", "/v1/subjects/{subject_id}", "200") => typed::<answers::ProfileUpdated>(),
        ("GET", "/v1/subjects/{subject_id}/events", "200") => typed::<EventPage>(),
        ("POST", "/v1/admin/keys", "201") => typed::<answers::KeyCreated>(),
        ("POST", "/v1/admin/backups", "201") => typed::<crate::BackupSummary>(),
        // The handler answers the outcome serialized (so a repeated `decision_id` can replay it).
        ("POST", "/v1/consents", "201") => typed::<ConsentOutcome>(),
        ("GET", "/v1/subjects/{subject_id}/consents", "200") => typed::<answers::ConsentState>(),
        ("GET", "/v1/subjects/{subject_id}/consents/history", "200") => typed::<ConsentHistory>(),
        ("GET", "/v1/ledger/public-key" | "/v1/audit/access/public-key", "200") => {
            typed::<LogPublicKey>()
        }
        ("GET", "/v1/ledger/witnesses" | "/v1/audit/access/witnesses", "200") => {
            typed::<answers::Witnesses>()
        }
        ("GET", "/v1/ledger/entries" | "/v1/audit/access/entries" | "/v1/audit/access", "200") => {
            typed::<answers::EntryList>()
        }
        ("GET", "/v1/ledger/proof/inclusion" | "/v1/audit/access/proof/inclusion", "200") => {
            typed::<InclusionProof>()
        }
        ("GET", "/v1/ledger/proof/consistency" | "/v1/audit/access/proof/consistency", "200") => {
            typed::<ConsistencyProof>()
        }
        ("GET", "/v1/audit/merges", "200") => typed::<answers::Merges>(),
        ("POST", "/v1/dsr", "202") => typed::<answers::DsrReceived>(),
        ("POST", "/v1/dsr/{request_id}/verify", "200") => typed::<answers::DsrVerified>(),
        ("GET", "/v1/dsr/{request_id}", "200") => typed::<DsrView>(),
        ("GET", "/v1/dsr/{request_id}/export", "200") => typed::<DsrExport>(),
        ("GET", "/v1/dsr", "200") => typed::<answers::DsrQueue>(),
        ("GET", "/v1/dsr/{request_id}/case", "200") => typed::<DsrCase>(),
        (
            "POST",
            "/v1/dsr/{request_id}/carry-out"
            | "/v1/dsr/{request_id}/reject"
            | "/v1/dsr/{request_id}/extend",
            "200",
        ) => typed::<DsrView>(),
        ("GET", "/v1/search", "200") => typed::<SearchPage>(),
        ("GET", "/v1/analytics/kpis", "200") => typed::<Dashboard>(),
        ("GET", "/v1/analytics/segments", "200") => typed::<Segments>(),
        ("POST", "/v1/subjects/{subject_id}/erasure", "200") => typed::<ErasureOutcome>(),
        ("GET", "/v1/subjects/{subject_id}/erasure", "200") => {
            typed::<custodia_engine::ErasurePreview>()
        }
        ("GET" | "PUT", "/v1/subjects/{subject_id}/flags", "200") => typed::<FlagsView>(),
        ("POST", "/v1/admin/retention/run", "200") => typed::<RetentionReport>(),
        ("POST", "/v1/admin/suppressions/lift", "200") => typed::<answers::Lifted>(),
        _ => return None,
    })
}

/// The JSON Schema of an operation's request body, from the type in `bodies` that states what
/// its parser accepts. `None` only for operations without a body; a test checks both ways.
fn request_schema(op: &Op) -> Option<Typed> {
    Some(match (op.method, op.path) {
        ("POST", "/v1/identify") => body::<bodies::IdentifyBody>(),
        ("POST", "/v1/track") => body::<bodies::TrackBody>(),
        ("POST", "/v1/page" | "/v1/screen") => body::<bodies::PageBody>(),
        ("POST", "/v1/group") => body::<bodies::GroupBody>(),
        ("POST", "/v1/alias") => body::<bodies::AliasBody>(),
        ("POST", "/v1/batch") => body::<bodies::BatchBody>(),
        ("PATCH", "/v1/subjects/{subject_id}") => body::<bodies::PatchBody>(),
        ("POST", "/v1/admin/keys") => body::<bodies::NewKeyBody>(),
        ("POST", "/v1/admin/backups") => body::<bodies::BackupBody>(),
        ("POST", "/v1/consents") => body::<bodies::ConsentBody>(),
        ("POST", "/v1/subjects/{subject_id}/erasure") => body::<bodies::ErasureBody>(),
        ("PUT", "/v1/subjects/{subject_id}/flags") => body::<bodies::FlagsBody>(),
        ("POST", "/v1/admin/suppressions/lift") => body::<bodies::LiftBody>(),
        ("POST", "/v1/dsr") => body::<bodies::DsrBody>(),
        ("POST", "/v1/dsr/{request_id}/verify") => body::<bodies::VerifyBody>(),
        ("POST", "/v1/dsr/{request_id}/consents") => body::<bodies::ConsentChoiceBody>(),
        ("POST", "/v1/dsr/{request_id}/carry-out") => body::<bodies::CarryOutBody>(),
        ("POST", "/v1/dsr/{request_id}/reject") => body::<bodies::RejectBody>(),
        ("POST", "/v1/dsr/{request_id}/extend") => body::<bodies::ExtendBody>(),
        _ => return None,
    })
}

/// The refusals an operation can answer, from what it takes and does: every status here is one
/// `status_of` (error.rs) gives to a code the operation's extractors or engine call can return.
fn refusals(op: &Op) -> Vec<(&'static str, &'static str)> {
    let mut out = Vec::new();
    let is_write = matches!(op.method, "POST" | "PUT" | "PATCH");
    let has_input = op.body.is_some() || !op.params.is_empty();
    let token_route = op.path.starts_with("/v1/dsr/{request_id}")
        && (op.method == "GET" || op.path.ends_with("/consents"));
    if has_input || is_write {
        out.push((
            "400",
            "`malformed_json`, `invalid_id` or `purpose_missing`.",
        ));
    }
    if op.auth || token_route {
        out.push((
            "401",
            "`unauthenticated`: no key (or access token), or an unknown one.",
        ));
    }
    if op.auth {
        out.push((
            "403",
            "`role_not_permitted`, `purpose_not_permitted`, `consent_required`, \
             `processing_restricted` or `objection_recorded`.",
        ));
    }
    if op.path.contains('{') || op.auth && is_write || op.params.iter().any(|p| p.0 == "purpose") {
        out.push((
            "404",
            "`subject_not_found`, `subject_merged` (with `merged_into`) or `not_found`.",
        ));
    }
    if is_write {
        out.push((
            "408",
            "`request_timeout`: the body did not arrive within the server's deadline.",
        ));
        out.push(("409", "`conflict`, `subject_suppressed` or `legal_hold`."));
        out.push((
            "413",
            "`payload_too_large`: the body is over the configured limit.",
        ));
        out.push((
            "415",
            "`unsupported_media_type`: the body is not `application/json`.",
        ));
    }
    if op.method == "DELETE" {
        out.push(("409", "`conflict`."));
    }
    if has_input || is_write {
        out.push((
            "422",
            "`invalid_field` or `unknown_purpose`, naming the `field`.",
        ));
    }
    if op.auth || op.path.starts_with("/v1/dsr") {
        out.push(("429", "`rate_limited`, with `Retry-After`."));
    }
    if is_write || op.method == "DELETE" {
        out.push((
            "507",
            "`insufficient_storage`: the disk is full; nothing was written.",
        ));
    }
    out
}

fn parameter_schema(kind: Kind) -> Schema {
    let object = match kind {
        Kind::Str => ObjectBuilder::new().schema_type(Type::String),
        Kind::Int => ObjectBuilder::new()
            .schema_type(Type::Integer)
            .minimum(Some(0)),
        Kind::Bool => ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["true", "false"])),
        Kind::DateTime => ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime))),
        Kind::Uuid => ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::Custom("uuid".to_owned()))),
        Kind::Choice(words) => ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(words.iter().copied())),
    };
    Schema::Object(object.build())
}

/// The `Idempotency-Key` header: 1 to 255 visible ASCII characters, optionally in double quotes
/// (idempotency.rs checks the same).
fn idempotency_key_schema() -> Schema {
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(257))
            .pattern(Some("^[!-~]+$"))
            .build(),
    )
}

/// The RFC 9457 problem details every refusal carries (error.rs `Problem`).
fn problem_schema() -> Schema {
    let text = || ObjectBuilder::new().schema_type(Type::String);
    Schema::Object(
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .description(Some(
                "RFC 9457 problem details with a stable `code`; `message` repeats `detail` for \
                 the Segment and RudderStack SDKs.",
            ))
            .property(
                "type",
                text().description(Some("`urn:custodia:problem:<code>`.")),
            )
            .property("title", text())
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(400))
                    .maximum(Some(599)),
            )
            .property("detail", text())
            .property("message", text())
            .property(
                "code",
                text().enum_values(Some(ErrorCode::ALL.iter().map(|code| code.as_str()))),
            )
            .property(
                "field",
                text().description(Some(
                    "The input at fault: a JSON pointer into the body, or a parameter name.",
                )),
            )
            .property(
                "merged_into",
                text()
                    .format(Some(SchemaFormat::Custom("uuid".to_owned())))
                    .description(Some(
                        "For `subject_merged`: the subject now holding the data.",
                    )),
            )
            .required("type")
            .required("title")
            .required("status")
            .required("detail")
            .required("message")
            .required("code")
            .build(),
    )
}

fn problem_response(description: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/problem+json",
            ContentBuilder::new()
                .schema(Some(Ref::from_schema_name("Problem")))
                .build(),
        )
        .build()
}

/// The OpenAPI document as JSON.
pub fn openapi_document() -> Value {
    let mut paths = PathsBuilder::new();
    let mut schemas = Vec::new();
    for op in all_ops() {
        let mut builder = OperationBuilder::new()
            .tag(op.tag)
            .summary(Some(op.summary));
        for (name, location, required, kind, description) in op.params {
            let required = if *required {
                Required::True
            } else {
                Required::False
            };
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name(*name)
                    .parameter_in(location.clone())
                    .required(required)
                    .schema(Some(parameter_schema(*kind)))
                    .description(Some(*description)),
            );
        }
        if crate::idempotency::accepts_key(op.method, op.path) {
            builder = builder.parameter(
                ParameterBuilder::new()
                    .name("Idempotency-Key")
                    .parameter_in(ParameterIn::Header)
                    .required(Required::False)
                    .schema(Some(idempotency_key_schema()))
                    .description(Some(IDEMPOTENCY_KEY)),
            );
        }
        if let Some(example) = op.body {
            let mut content = ContentBuilder::new().example(Some(example()));
            if let Some(body) = request_schema(op) {
                (body.collect)(&mut schemas);
                content = content.schema(Some(Ref::from_schema_name((body.name)())));
            }
            builder = builder.request_body(Some(
                RequestBodyBuilder::new()
                    .required(Some(Required::True))
                    .content("application/json", content.build())
                    .build(),
            ));
        }
        for (status, description) in op.responses {
            // `REFUSALS` stands for the refusals computed below, each with its own status.
            if *status == REFUSALS.0 {
                continue;
            }
            let media: &[&str] = if status.starts_with('2') {
                success_media(op)
            } else {
                &["application/json"]
            };
            let mut response = ResponseBuilder::new().description(*description);
            for media in media {
                let mut content = ContentBuilder::new();
                if *media == "application/json"
                    && let Some(answer) = success_schema(op, status)
                {
                    (answer.collect)(&mut schemas);
                    content = content.schema(Some(Ref::from_schema_name((answer.name)())));
                }
                response = response.content(*media, content.build());
            }
            builder = builder.response(*status, response);
        }
        for (status, description) in refusals(op) {
            builder = builder.response(status, problem_response(description));
        }
        if op.auth {
            builder = builder
                .security(SecurityRequirement::new("bearer", Vec::<String>::new()))
                .security(SecurityRequirement::new("basic", Vec::<String>::new()));
        }
        let method = match op.method {
            "GET" => HttpMethod::Get,
            "POST" => HttpMethod::Post,
            "PATCH" => HttpMethod::Patch,
            "PUT" => HttpMethod::Put,
            _ => HttpMethod::Delete,
        };
        paths = paths.path(op.path, utoipa::openapi::PathItem::new(method, builder));
    }
    // One entry per name: a schema named twice is the same type's.
    let schemas: BTreeMap<String, RefOr<Schema>> = schemas.into_iter().collect();
    let components = ComponentsBuilder::new()
        .schema("Problem", problem_schema())
        .schemas_from_iter(schemas)
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: `Authorization: Bearer cus_...`."))
                    .build(),
            ),
        )
        .security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some(
                        "An API key as the user name with an empty password, as the Segment and \
                         RudderStack SDKs send it. `POST /v1/batch` also takes it as `writeKey` \
                         in the body.",
                    ))
                    .build(),
            ),
        )
        .build();
    let doc = OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("Custodia")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Privacy-first customer data platform. Errors are RFC 9457 problem details \
                     with a stable `code`. Every read of personal data names a `purpose`.",
                ))
                .build(),
        )
        .paths(paths.build())
        .components(Some(components))
        .build();
    serde_json::to_value(doc).unwrap_or_else(|_| json!({}))
}

#[cfg(test)]
mod tests;
