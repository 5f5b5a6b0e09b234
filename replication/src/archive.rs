//! Encoding owned values as rkyv archives (records, wire frames).

use rkyv::rancor;

/// The serializer rkyv's high-level API uses.
pub(crate) type Serializer<'a> = rkyv::api::high::HighSerializer<
    rkyv::util::AlignedVec,
    rkyv::ser::allocator::ArenaHandle<'a>,
    rancor::Error,
>;

/// The archive of `value`.
pub(crate) fn to_bytes<T>(value: &T) -> Vec<u8>
where
    T: for<'a> rkyv::Serialize<Serializer<'a>>,
{
    match rkyv::to_bytes::<rancor::Error>(value) {
        Ok(bytes) => bytes.to_vec(),
        // Serializing owned data into memory fails only if allocation does,
        // which aborts anyway.
        Err(e) => unreachable!("serializing an archive failed: {e}"),
    }
}
