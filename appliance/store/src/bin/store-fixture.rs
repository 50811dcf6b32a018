//! Writes the reference fixture database of an earlier schema version.
//!
//! Usage: `store-fixture v1 <path>`; the committed fixture was made with
//! `cargo run -p safe-yolo-store --bin store-fixture -- v1 appliance/store/tests/fixtures/schema-v1.redb`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let version = args.next().ok_or("usage: store-fixture v1 <path>")?;
    let path = args.next().ok_or("usage: store-fixture v1 <path>")?;
    match version.as_str() {
        "v1" => safe_yolo_store::schema::v1::write_fixture(std::path::Path::new(&path))?,
        other => return Err(format!("no fixture writer for {other}").into()),
    }
    Ok(())
}
