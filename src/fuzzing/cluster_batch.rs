//! Fuzz body for the cluster's stream-message decoder ([`crate::cluster::wire`]).
//!
//! Arbitrary bytes are decoded as a batch: the answer is a batch or a clean `WireError`,
//! never a panic or an allocation the bytes do not pay for. Property asserted: a batch
//! that decodes re-encodes to the very same bytes.

use crate::cluster::wire;

pub fn run(data: &[u8]) {
    if let Ok(batch) = wire::decode(data) {
        let mut again = Vec::new();
        assert!(
            wire::encode(&batch, &mut again).is_ok(),
            "a decoded batch encodes"
        );
        assert_eq!(again, data, "decode then encode gives the same bytes");
    }
}
