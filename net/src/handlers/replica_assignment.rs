//! Explicit replica assignments, as CreateTopics and CreatePartitions carry
//! them. On this one-node cluster an assignment is valid when it places
//! every partition on this node alone; anything else names a broker that
//! does not exist (INVALID_REPLICA_ASSIGNMENT, as Kafka answers).

use kafka_protocol::messages::BrokerId;

/// Why an assignment cannot be followed (a message for the client).
pub type Refusal = String;

/// Checks each partition's replica list: exactly this node.
pub fn check_replicas<'a>(
    node_id: i32,
    replicas: impl IntoIterator<Item = &'a [BrokerId]>,
) -> Result<(), Refusal> {
    for (n, brokers) in replicas.into_iter().enumerate() {
        match brokers {
            [only] if only.0 == node_id => {}
            [] => return Err(format!("assignment {n} lists no broker")),
            _ => {
                let listed: Vec<i32> = brokers.iter().map(|b| b.0).collect();
                return Err(format!(
                    "assignment {n} lists brokers {listed:?}; this cluster is broker {node_id} alone"
                ));
            }
        }
    }
    Ok(())
}

/// Checks that partition indexes are 0..n, each once, in any order.
pub fn check_partition_indexes(indexes: impl IntoIterator<Item = i32>) -> Result<i32, Refusal> {
    let mut indexes: Vec<i32> = indexes.into_iter().collect();
    indexes.sort_unstable();
    for (expected, index) in (0..).zip(&indexes) {
        if *index != expected {
            return Err(format!(
                "partition indexes must be 0 to {} each once; {index} is not {expected}",
                indexes.len().saturating_sub(1)
            ));
        }
    }
    i32::try_from(indexes.len()).map_err(|_| "too many partitions".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_this_node_alone_is_a_valid_replica_list() {
        let this = [BrokerId(3)];
        assert!(check_replicas(3, [&this[..], &this[..]]).is_ok());
        assert!(check_replicas(3, [&[BrokerId(4)][..]]).is_err());
        assert!(check_replicas(3, [&[][..]]).is_err());
        assert!(check_replicas(3, [&[BrokerId(3), BrokerId(3)][..]]).is_err());
    }

    #[test]
    fn partition_indexes_must_run_from_zero_without_gaps() {
        assert_eq!(check_partition_indexes([1, 0, 2]), Ok(3));
        assert!(check_partition_indexes([0, 2]).is_err());
        assert!(check_partition_indexes([0, 0]).is_err());
        assert_eq!(check_partition_indexes([]), Ok(0));
    }
}
