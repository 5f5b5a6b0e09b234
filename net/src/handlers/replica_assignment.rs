//! Explicit replica assignments, as CreateTopics and CreatePartitions carry
//! them. In a cluster each partition's list names brokers once each (the
//! controller checks they are registered and that the lists agree). On a
//! broker alone an assignment is valid when it places every partition on
//! this node alone; anything else names a broker that does not exist
//! (INVALID_REPLICA_ASSIGNMENT, as Kafka answers).

use kafka_protocol::messages::BrokerId;

/// Why an assignment cannot be followed (a message for the client).
pub type Refusal = String;

/// Checks each partition's replica list: on a broker `alone`, exactly
/// this node; in a cluster (`None`), brokers each once. The lists, as ids.
pub fn check_replicas<'a>(
    alone: Option<i32>,
    replicas: impl IntoIterator<Item = &'a [BrokerId]>,
) -> Result<Vec<Vec<i32>>, Refusal> {
    let mut lists = Vec::new();
    for (n, brokers) in replicas.into_iter().enumerate() {
        let ids: Vec<i32> = brokers.iter().map(|b| b.0).collect();
        let unique: std::collections::BTreeSet<i32> = ids.iter().copied().collect();
        match (brokers, alone) {
            ([], _) => return Err(format!("assignment {n} lists no broker")),
            (_, None) if unique.len() != ids.len() => {
                return Err(format!("assignment {n} lists a broker twice: {ids:?}"));
            }
            (_, None) => {}
            ([only], Some(node_id)) if only.0 == node_id => {}
            (_, Some(node_id)) => {
                return Err(format!(
                    "assignment {n} lists brokers {ids:?}; this cluster is broker {node_id} alone"
                ));
            }
        }
        lists.push(ids);
    }
    Ok(lists)
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
        assert!(check_replicas(Some(3), [&this[..], &this[..]]).is_ok());
        assert!(check_replicas(Some(3), [&[BrokerId(4)][..]]).is_err());
        assert!(check_replicas(Some(3), [&[][..]]).is_err());
        assert!(check_replicas(Some(3), [&[BrokerId(3), BrokerId(3)][..]]).is_err());
    }

    #[test]
    fn in_a_cluster_a_replica_list_names_brokers_once_each() {
        let lists = check_replicas(None, [&[BrokerId(1), BrokerId(0)][..], &[BrokerId(2)][..]]);
        assert_eq!(lists, Ok(vec![vec![1, 0], vec![2]]));
        assert!(check_replicas(None, [&[BrokerId(1), BrokerId(1)][..]]).is_err());
        assert!(check_replicas(None, [&[][..]]).is_err());
    }

    #[test]
    fn partition_indexes_must_run_from_zero_without_gaps() {
        assert_eq!(check_partition_indexes([1, 0, 2]), Ok(3));
        assert!(check_partition_indexes([0, 2]).is_err());
        assert!(check_partition_indexes([0, 0]).is_err());
        assert_eq!(check_partition_indexes([]), Ok(0));
    }
}
