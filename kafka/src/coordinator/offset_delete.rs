//! OffsetDelete (KIP-496): removes a group's committed offsets for some
//! partitions. Allowed for an Empty group, and for an active consumer group
//! only on topics none of its members subscribes to
//! (GROUP_SUBSCRIBED_TO_TOPIC otherwise); a non-empty group of another
//! protocol type refuses (NON_EMPTY_GROUP), as Kafka's coordinator does.

use std::collections::BTreeSet;

use bytes::Buf;
use chronik::offsets::GroupCommand;
use chronik::PartitionStore;
use tracing::info;

use super::{Coordinator, State};
use crate::errors::*;

/// The topics a member's consumer-protocol subscription names (Kafka's
/// ConsumerProtocolSubscription: a version, then the topic array, the same
/// in every version). None if the bytes are not one.
pub(crate) fn subscribed_topics(mut metadata: &[u8]) -> Option<Vec<String>> {
    if metadata.remaining() < 6 {
        return None;
    }
    let _version = metadata.get_i16();
    let count = metadata.get_i32();
    // Each topic takes at least its 2-byte length: a larger count is a lie.
    if count < 0 || count as usize > metadata.remaining() / 2 {
        return None;
    }
    let mut topics = Vec::with_capacity(count as usize);
    for _ in 0..count {
        if metadata.remaining() < 2 {
            return None;
        }
        let len = metadata.get_i16();
        if len < 0 || len as usize > metadata.remaining() {
            return None;
        }
        topics.push(String::from_utf8_lossy(&metadata[..len as usize]).into_owned());
        metadata.advance(len as usize);
    }
    Some(topics)
}

impl<S: PartitionStore> Coordinator<S> {
    /// Deletes `group`'s committed offsets of `partitions`: Ok with each
    /// partition's error code (NONE: deleted, or there was none), or the
    /// error of the whole request.
    pub async fn delete_offsets(&self, group: &str, partitions: &[(String, i32)]) -> Result<Vec<i16>, i16> {
        let g = self.group(group).await?;
        let committed = self.committed(group)?;
        if !g.known && committed.is_empty() {
            return Err(GROUP_ID_NOT_FOUND);
        }
        let subscribed: Option<BTreeSet<String>> = match g.state {
            State::Empty | State::Dead => Some(BTreeSet::new()),
            _ if g.protocol_type.as_deref() == Some("consumer") => g
                .members
                .values()
                .flat_map(|m| m.protocols.iter().map(|(_, meta)| subscribed_topics(meta)))
                .collect::<Option<Vec<Vec<String>>>>()
                .map(|lists| lists.into_iter().flatten().collect()),
            _ => None,
        };
        let Some(subscribed) = subscribed else { return Err(NON_EMPTY_GROUP) };
        let mut codes = Vec::with_capacity(partitions.len());
        let mut delete = Vec::new();
        for (topic, partition) in partitions {
            codes.push(if subscribed.contains(topic) {
                GROUP_SUBSCRIBED_TO_TOPIC
            } else if self.store.topic_id(topic).is_none() {
                UNKNOWN_TOPIC_OR_PARTITION
            } else {
                if committed.iter().any(|(t, p, _)| t == topic && p == partition) {
                    delete.push((topic.clone(), *partition));
                }
                NONE
            });
        }
        if !delete.is_empty() {
            let n = delete.len();
            self.store.group_write(GroupCommand::DeleteOffsets { group: group.to_string(), offsets: delete }).await.map_err(|e| Self::store_error(&e))?;
            info!(group = %group, deleted = n, "committed offsets deleted (OffsetDelete)");
        }
        drop(g);
        Ok(codes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subscription(version: i16, topics: &[&str]) -> Vec<u8> {
        let mut b = version.to_be_bytes().to_vec();
        b.extend((topics.len() as i32).to_be_bytes());
        for t in topics {
            b.extend((t.len() as i16).to_be_bytes());
            b.extend(t.as_bytes());
        }
        b.extend([0, 0, 0, 0]); // user data: empty
        b
    }

    #[test]
    fn reads_the_topics_of_any_subscription_version() {
        assert_eq!(subscribed_topics(&subscription(0, &["a", "bb"])), Some(vec!["a".to_string(), "bb".to_string()]));
        assert_eq!(subscribed_topics(&subscription(3, &[])), Some(vec![]));
    }

    #[test]
    fn refuses_what_is_not_a_subscription() {
        assert_eq!(subscribed_topics(&[]), None);
        // A count of 2^31-1 topics in 8 bytes.
        assert_eq!(subscribed_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff, 0, 1]), None);
        // A topic longer than what is left.
        assert_eq!(subscribed_topics(&[0, 0, 0, 0, 0, 1, 0, 9, b'a']), None);
    }
}
