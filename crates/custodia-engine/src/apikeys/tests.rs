//! Listing and revoking API keys; when each was last used.

use custodia_core::{ErrorCode, RoleName, TenantId};

use crate::Clock;
use crate::tests::fixture;

fn later(t: custodia_core::Timestamp, minutes: i64) -> custodia_core::Timestamp {
    custodia_core::Timestamp::from_unix_micros(t.unix_micros() + minutes * 60_000_000)
}

#[test]
fn an_admin_lists_its_tenants_keys_with_their_last_use_and_revokes_one() {
    let f = fixture();
    let admin = f.caller("admin");
    let tenant = TenantId::default_tenant();
    let app = f
        .engine
        .create_api_key(&tenant, &"app".parse::<RoleName>().unwrap())
        .unwrap();
    let other_tenant: TenantId = "other-shop".parse().unwrap();
    let foreign = f
        .engine
        .create_api_key(&other_tenant, &"app".parse::<RoleName>().unwrap())
        .unwrap();

    let keys = f.engine.api_keys(&admin).unwrap();
    let mut ids: Vec<&str> = keys.iter().map(|k| k.key_id.as_str()).collect();
    ids.sort_unstable();
    let mut expected = [admin.key_id.as_str(), app.id.as_str()];
    expected.sort_unstable();
    assert_eq!(ids, expected, "its own tenant's only");
    let app_view = |f: &crate::tests::Fixture| {
        f.engine
            .api_keys(&admin)
            .unwrap()
            .into_iter()
            .find(|k| k.key_id == app.id.as_str())
            .unwrap()
    };
    assert!(
        keys.iter()
            .all(|k| k.this_key == (k.key_id == admin.key_id.as_str()))
    );
    assert!(app_view(&f).last_used_at.is_none(), "never used yet");
    let printed = format!("{keys:?}");
    assert!(
        !printed.contains(&app.secret.expose()[20..]),
        "no secret in a listing"
    );

    // A use shows at once; later uses move it.
    f.engine.authenticate(app.secret.expose()).unwrap();
    let first = app_view(&f).last_used_at.unwrap();
    assert_eq!(first, f.clock.now());
    f.clock.set(f.clock.now().plus_days(1));
    f.engine.authenticate(app.secret.expose()).unwrap();
    assert_eq!(app_view(&f).last_used_at, Some(f.clock.now()));

    // Revoked: it opens nothing from the next request on; revoking again changes nothing.
    let revoked = f.engine.revoke_api_key(&admin, app.id.as_str()).unwrap();
    assert!(revoked.revoked);
    assert_eq!(revoked.revoked_at, Some(f.clock.now()));
    assert_eq!(
        f.engine
            .authenticate(app.secret.expose())
            .unwrap_err()
            .code(),
        ErrorCode::Unauthenticated
    );
    assert!(
        f.engine
            .revoke_api_key(&admin, app.id.as_str())
            .unwrap()
            .revoked
    );

    // Not its own key, not another tenant's, not a key id that does not exist.
    let own = f
        .engine
        .revoke_api_key(&admin, admin.key_id.as_str())
        .unwrap_err();
    assert_eq!(own.code(), ErrorCode::Conflict);
    for id in [foreign.id.as_str(), "00000000000000ff", "not-a-key"] {
        let err = f.engine.revoke_api_key(&admin, id).unwrap_err();
        assert_eq!(
            (err.code(), err.field()),
            (ErrorCode::NotFound, Some("key_id"))
        );
    }
    assert!(f.engine.authenticate(foreign.secret.expose()).is_ok());
    // Only a role that manages keys may list or revoke.
    let compliance = f.caller("compliance");
    assert_eq!(
        f.engine.api_keys(&compliance).unwrap_err().code(),
        ErrorCode::RoleNotPermitted
    );
}

#[test]
fn the_last_use_is_kept_at_once_but_written_at_most_hourly() {
    let f = fixture();
    let admin = f.caller("admin");
    let tenant = TenantId::default_tenant();
    let app = f
        .engine
        .create_api_key(&tenant, &"app".parse::<RoleName>().unwrap())
        .unwrap();
    let stored = |f: &crate::tests::Fixture| {
        f.engine
            .store
            .meta(&format!("api_key.{}.last_used", app.id))
            .unwrap()
            .map(|b| i64::from_be_bytes(b.try_into().unwrap()))
    };
    f.engine.authenticate(app.secret.expose()).unwrap();
    let written = stored(&f).unwrap();
    assert_eq!(written, f.clock.now().unix_micros());
    // Ten minutes later: remembered in memory, not written again.
    f.clock.set(later(f.clock.now(), 10));
    f.engine.authenticate(app.secret.expose()).unwrap();
    assert_eq!(stored(&f), Some(written));
    let listed = f.engine.api_keys(&admin).unwrap();
    let view = listed.iter().find(|k| k.key_id == app.id.as_str()).unwrap();
    assert_eq!(view.last_used_at, Some(f.clock.now()));
    // An hour after the last write: written.
    f.clock.set(later(f.clock.now(), 60));
    f.engine.authenticate(app.secret.expose()).unwrap();
    assert_eq!(stored(&f), Some(f.clock.now().unix_micros()));
}
