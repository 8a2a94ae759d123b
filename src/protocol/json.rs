//! The JSON writers under their old path, for code written before they moved to
//! [`crate::json::write`] (the one writer every layer shares). New code imports from
//! there.

pub use crate::json::write::{
    key, next_key, u64_digits, write_bool, write_f64, write_i64, write_opt_i64, write_opt_u64,
    write_str as write_json_str, write_u64,
};
