//! The committed SDL (`api/schema.graphql`) is exactly what the code serves: clients and
//! reviewers read that file, so a change to the schema must show up in it.
//! Regenerate with `CELLAR_UPDATE_SCHEMA=1 cargo test -p cellar-api --test schema_sdl`.

#[test]
fn committed_sdl_matches_the_schema() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/schema.graphql");
    let sdl = cellar_api::sdl();
    if std::env::var_os("CELLAR_UPDATE_SCHEMA").is_some() {
        std::fs::write(path, &sdl).expect("write schema.graphql");
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == sdl,
        "api/schema.graphql is out of date with the code: run \
         CELLAR_UPDATE_SCHEMA=1 cargo test -p cellar-api --test schema_sdl and commit the file"
    );
}
