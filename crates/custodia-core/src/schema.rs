//! JSON Schemas of the core types as they appear on the wire (`openapi` feature), for the
//! server's OpenAPI document. Each type serializes as a string by hand, so its schema is written
//! here beside it rather than derived.

use std::borrow::Cow;

use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::{EventId, Pseudonym, PurposeId, RoleName, SubjectId, Timestamp};

fn string(description: &str) -> ObjectBuilder {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(description))
}

macro_rules! string_schema {
    ($name:ident, $build:expr) => {
        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let builder: ObjectBuilder = $build;
                RefOr::T(Schema::Object(builder.build()))
            }
        }

        impl ToSchema for $name {
            fn name() -> Cow<'static, str> {
                Cow::Borrowed(stringify!($name))
            }
        }
    };
}

string_schema!(
    SubjectId,
    string("A subject's random id: a hyphenated UUID.")
        .format(Some(SchemaFormat::Custom("uuid".to_owned())))
);
string_schema!(
    EventId,
    string("An event's id: a hyphenated UUID v7, in ingestion order.")
        .format(Some(SchemaFormat::Custom("uuid".to_owned())))
);
string_schema!(
    Timestamp,
    string("An RFC 3339 time in UTC.")
        .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
);
string_schema!(
    Pseudonym,
    string("A subject's pseudonym: 32 lower-case hex digits.").pattern(Some("^[0-9a-f]{32}$"))
);
string_schema!(
    PurposeId,
    string("A purpose of processing from the policies (GET /v1/purposes).")
        .pattern(Some("^[a-z][a-z0-9_]{0,63}$"))
);
string_schema!(
    RoleName,
    string("A role from the policies.").pattern(Some("^[a-z][a-z0-9_]{0,63}$"))
);
