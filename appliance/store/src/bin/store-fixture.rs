//! Writes the reference fixture database of an earlier schema version.
//!
//! Usage: `store-fixture v1|v2|v3 <path>`; the committed fixtures were made with
//! `cargo run -p safe-yolo-store --bin store-fixture -- v1 appliance/store/tests/fixtures/schema-v1.redb`
//! (and the same with `v2`/`schema-v2.redb` and `v3`/`schema-v3.redb`).

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: store-fixture v1|v2|v3 <path>";
    let version = args.next().ok_or(usage)?;
    let path = args.next().ok_or(usage)?;
    let path = std::path::Path::new(&path);
    match version.as_str() {
        "v1" => safe_yolo_store::schema::v1::write_fixture(path)?,
        "v2" => safe_yolo_store::schema::v2::write_fixture(path)?,
        "v3" => safe_yolo_store::schema::v3::write_fixture(path)?,
        other => return Err(format!("no fixture writer for {other}").into()),
    }
    Ok(())
}
