//! Rebuilds when a migration script is added: refinery's
//! `embed_migrations!` reads the folders at compile time, and cargo only
//! tracks the files it already included.

fn main() {
    println!("cargo:rerun-if-changed=migrations");
}
