//! `sqlx::migrate!` embeds the migration files at compile time; tell cargo to rebuild when one
//! is added or changed, which it cannot notice on its own.
fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
