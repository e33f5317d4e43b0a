//! From a request frame to a request: the one place where bytes from a
//! client become typed values. The decoders (vendored kafka-protocol) never
//! allocate from a count on the wire; this refuses what Chronik does not
//! serve before any body is decoded. The fuzz harness (`fuzz/`) drives this.

use bytes::Bytes;
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind};
use kafka_protocol::protocol::Decodable;

use crate::apis;

/// The shortest valid request: api key, api version, correlation id.
pub const REQUEST_HEADER_LEN_MIN: usize = 8;

/// A frame decoded as far as Chronik serves it.
#[derive(Debug)]
pub enum Decoded {
    Request { key: ApiKey, version: i16, header: RequestHeader, request: RequestKind },
    /// An ApiVersions newer than we decode: answered with UNSUPPORTED_VERSION (KIP-511).
    ApiVersionsTooNew { correlation_id: i32 },
}

/// Why a frame is refused; the connection is closed (as Kafka does).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("frame of {0} bytes is shorter than a request header")]
    TooShort(usize),
    #[error("unknown api key {key} (correlation id {correlation_id})")]
    UnknownApi { key: i16, correlation_id: i32 },
    #[error("{key:?} v{version} is not supported (correlation id {correlation_id}); see ApiVersions")]
    UnsupportedVersion { key: ApiKey, version: i16, correlation_id: i32 },
    #[error("malformed {key:?} v{version} header: {detail}")]
    MalformedHeader { key: ApiKey, version: i16, detail: String },
    #[error("malformed {key:?} v{version} request (correlation id {correlation_id}): {detail}")]
    Malformed { key: ApiKey, version: i16, correlation_id: i32, detail: String },
}

/// The api key, version and correlation id at the start of a frame.
pub fn peek(frame: &[u8]) -> Option<(i16, i16, i32)> {
    let b = frame.get(..REQUEST_HEADER_LEN_MIN)?;
    Some((i16::from_be_bytes([b[0], b[1]]), i16::from_be_bytes([b[2], b[3]]), i32::from_be_bytes([b[4], b[5], b[6], b[7]])))
}

pub fn decode_frame(frame: &Bytes) -> Result<Decoded, Refusal> {
    let (raw_key, version, correlation_id) = peek(frame).ok_or(Refusal::TooShort(frame.len()))?;
    let key = ApiKey::try_from(raw_key).map_err(|_| Refusal::UnknownApi { key: raw_key, correlation_id })?;
    if !apis::decodable(key, version) {
        if key == ApiKey::ApiVersions {
            return Ok(Decoded::ApiVersionsTooNew { correlation_id });
        }
        return Err(Refusal::UnsupportedVersion { key, version, correlation_id });
    }
    let mut buf = frame.clone();
    let header = RequestHeader::decode(&mut buf, key.request_header_version(version))
        .map_err(|e| Refusal::MalformedHeader { key, version, detail: e.to_string() })?;
    let request = RequestKind::decode(key, &mut buf, version)
        .map_err(|e| Refusal::Malformed { key, version, correlation_id, detail: e.to_string() })?;
    Ok(Decoded::Request { key, version, header, request })
}

#[cfg(test)]
mod tests {
    //! Length bombs for every API and version Chronik advertises: each
    //! length or count position of a request, set to the largest value its
    //! encoding allows, must give a decode error (or a request), never an
    //! allocation of what it claims. Before the vendored patch, a 22-byte
    //! Metadata v12 frame aborted the process.
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::RequestKind;
    use kafka_protocol::protocol::Encodable;

    fn header_bytes(key: ApiKey, version: i16) -> Vec<u8> {
        let mut b = bytes::BytesMut::new();
        let h = RequestHeader::default().with_request_api_key(key as i16).with_request_api_version(version).with_correlation_id(7).with_client_id(Some("it".into()));
        h.encode(&mut b, key.request_header_version(version)).unwrap();
        b.to_vec()
    }

    /// The bombs: i32 and i16 maxima and -2, an unsigned varint of 2^32-1.
    const BOMBS: &[&[u8]] = &[b"\x7f\xff\xff\xff", b"\x7f\xff", b"\xff\xff\xff\xfe", b"\xff\xff\xff\xff\x0f", b"\xfe\xff\xff\xff\x0f"];

    #[test]
    fn a_22_byte_metadata_frame_is_refused() {
        // Metadata v12, header v2, topic count 2^32-1 (compact, varint).
        let mut f = header_bytes(ApiKey::Metadata, 12);
        f.put_slice(b"\xff\xff\xff\xff\x0f\x00\x00\x00");
        let err = decode_frame(&Bytes::from(f)).unwrap_err();
        assert!(matches!(err, Refusal::Malformed { key: ApiKey::Metadata, .. }), "{err:?}");
    }

    #[test]
    fn length_bombs_in_every_advertised_api_and_version() {
        let mut cases = 0;
        for &(key, min, max) in apis::SUPPORTED {
            for version in min..=max {
                if !apis::decodable(key, version) {
                    continue;
                }
                let head = header_bytes(key, version);
                // The default request of this version, encoded: every length
                // field of the top-level message is somewhere in it.
                let mut body = bytes::BytesMut::new();
                if let Ok(req) = default_request(key) {
                    let _ = req.encode(&mut body, version);
                }
                let body = body.to_vec();
                for at in 0..=body.len() {
                    for bomb in BOMBS {
                        let mut f = head.clone();
                        f.extend_from_slice(&body[..at]);
                        f.extend_from_slice(bomb);
                        f.extend_from_slice(&body[(at + bomb.len()).min(body.len())..]);
                        let _ = decode_frame(&Bytes::from(f));
                        cases += 1;
                    }
                }
            }
        }
        assert!(cases > 1000, "only {cases} cases");
    }

    fn default_request(key: ApiKey) -> Result<RequestKind, ()> {
        use kafka_protocol::messages::*;
        Ok(match key {
            ApiKey::Produce => RequestKind::Produce(Default::default()),
            ApiKey::Fetch => RequestKind::Fetch(Default::default()),
            ApiKey::ListOffsets => RequestKind::ListOffsets(Default::default()),
            ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default().with_topics(Some(vec![]))),
            ApiKey::ApiVersions => RequestKind::ApiVersions(Default::default()),
            ApiKey::CreateTopics => RequestKind::CreateTopics(Default::default()),
            ApiKey::DeleteTopics => RequestKind::DeleteTopics(Default::default()),
            ApiKey::DescribeConfigs => RequestKind::DescribeConfigs(Default::default()),
            ApiKey::FindCoordinator => RequestKind::FindCoordinator(Default::default()),
            ApiKey::JoinGroup => RequestKind::JoinGroup(Default::default()),
            ApiKey::SyncGroup => RequestKind::SyncGroup(Default::default()),
            ApiKey::Heartbeat => RequestKind::Heartbeat(Default::default()),
            ApiKey::LeaveGroup => RequestKind::LeaveGroup(Default::default()),
            ApiKey::OffsetCommit => RequestKind::OffsetCommit(Default::default()),
            ApiKey::OffsetFetch => RequestKind::OffsetFetch(Default::default()),
            ApiKey::ListGroups => RequestKind::ListGroups(Default::default()),
            ApiKey::DescribeGroups => RequestKind::DescribeGroups(Default::default()),
            ApiKey::DeleteGroups => RequestKind::DeleteGroups(Default::default()),
            ApiKey::InitProducerId => RequestKind::InitProducerId(Default::default()),
            ApiKey::OffsetForLeaderEpoch => RequestKind::OffsetForLeaderEpoch(Default::default()),
            ApiKey::DescribeCluster => RequestKind::DescribeCluster(Default::default()),
            ApiKey::DeleteRecords => RequestKind::DeleteRecords(Default::default()),
            // A resource with a config, so that the nested arrays and strings
            // are in the encoding too.
            ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default().with_resources(vec![
                alter_configs_request::AlterConfigsResource::default().with_configs(vec![alter_configs_request::AlterableConfig::default()]),
            ])),
            ApiKey::IncrementalAlterConfigs => RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default().with_resources(vec![
                incremental_alter_configs_request::AlterConfigsResource::default()
                    .with_configs(vec![incremental_alter_configs_request::AlterableConfig::default()]),
            ])),
            ApiKey::CreatePartitions => RequestKind::CreatePartitions(CreatePartitionsRequest::default().with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_assignments(Some(vec![create_partitions_request::CreatePartitionsAssignment::default().with_broker_ids(vec![BrokerId(1)])])),
            ])),
            ApiKey::ElectLeaders => RequestKind::ElectLeaders(
                ElectLeadersRequest::default().with_topic_partitions(Some(vec![elect_leaders_request::TopicPartitions::default().with_partitions(vec![0])])),
            ),
            ApiKey::AlterPartitionReassignments => RequestKind::AlterPartitionReassignments(AlterPartitionReassignmentsRequest::default().with_topics(vec![
                alter_partition_reassignments_request::ReassignableTopic::default().with_partitions(vec![
                    alter_partition_reassignments_request::ReassignablePartition::default().with_replicas(Some(vec![BrokerId(1)])),
                ]),
            ])),
            ApiKey::ListPartitionReassignments => RequestKind::ListPartitionReassignments(ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
                list_partition_reassignments_request::ListPartitionReassignmentsTopics::default().with_partition_indexes(vec![0])
            ]))),
            ApiKey::DescribeLogDirs => RequestKind::DescribeLogDirs(DescribeLogDirsRequest::default().with_topics(Some(vec![
                describe_log_dirs_request::DescribableLogDirTopic::default().with_partitions(vec![0])
            ]))),
            ApiKey::OffsetDelete => RequestKind::OffsetDelete(OffsetDeleteRequest::default().with_topics(vec![
                offset_delete_request::OffsetDeleteRequestTopic::default().with_partitions(vec![offset_delete_request::OffsetDeleteRequestPartition::default()])
            ])),
            ApiKey::DescribeProducers => RequestKind::DescribeProducers(
                DescribeProducersRequest::default().with_topics(vec![describe_producers_request::TopicRequest::default().with_partition_indexes(vec![0])]),
            ),
            ApiKey::DescribeQuorum => RequestKind::DescribeQuorum(DescribeQuorumRequest::default().with_topics(vec![
                describe_quorum_request::TopicData::default().with_partitions(vec![describe_quorum_request::PartitionData::default()])
            ])),
            ApiKey::DescribeTopicPartitions => RequestKind::DescribeTopicPartitions(
                DescribeTopicPartitionsRequest::default()
                    .with_topics(vec![describe_topic_partitions_request::TopicRequest::default()])
                    .with_cursor(Some(describe_topic_partitions_request::Cursor::default())),
            ),
            ApiKey::ConsumerGroupHeartbeat => RequestKind::ConsumerGroupHeartbeat(
                ConsumerGroupHeartbeatRequest::default()
                    .with_subscribed_topic_names(Some(vec![TopicName::default()]))
                    .with_topic_partitions(Some(vec![consumer_group_heartbeat_request::TopicPartitions::default().with_partitions(vec![0])])),
            ),
            ApiKey::ConsumerGroupDescribe => {
                RequestKind::ConsumerGroupDescribe(ConsumerGroupDescribeRequest::default().with_group_ids(vec![GroupId::default()]))
            }
            ApiKey::ListConfigResources => RequestKind::ListConfigResources(ListConfigResourcesRequest::default().with_resource_types(vec![2])),
            ApiKey::SaslHandshake => RequestKind::SaslHandshake(SaslHandshakeRequest::default().with_mechanism("PLAIN".into())),
            ApiKey::SaslAuthenticate => RequestKind::SaslAuthenticate(SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from_static(b"\0u\0p"))),
            ApiKey::DescribeUserScramCredentials => RequestKind::DescribeUserScramCredentials(
                DescribeUserScramCredentialsRequest::default().with_users(Some(vec![describe_user_scram_credentials_request::UserName::default()])),
            ),
            ApiKey::AlterUserScramCredentials => RequestKind::AlterUserScramCredentials(
                AlterUserScramCredentialsRequest::default()
                    .with_deletions(vec![alter_user_scram_credentials_request::ScramCredentialDeletion::default()])
                    .with_upsertions(vec![alter_user_scram_credentials_request::ScramCredentialUpsertion::default()]),
            ),
            ApiKey::DescribeClientQuotas => RequestKind::DescribeClientQuotas(
                DescribeClientQuotasRequest::default().with_components(vec![describe_client_quotas_request::ComponentData::default()]),
            ),
            ApiKey::CreateAcls => RequestKind::CreateAcls(CreateAclsRequest::default().with_creations(vec![create_acls_request::AclCreation::default()])),
            ApiKey::DescribeAcls => RequestKind::DescribeAcls(DescribeAclsRequest::default()),
            ApiKey::DeleteAcls => RequestKind::DeleteAcls(DeleteAclsRequest::default().with_filters(vec![delete_acls_request::DeleteAclsFilter::default()])),
            _ => return Err(()),
        })
    }

    #[test]
    fn every_advertised_api_has_a_bomb_case() {
        for &(key, _, _) in apis::SUPPORTED {
            assert!(default_request(key).is_ok(), "{key:?} is advertised but has no length-bomb case");
        }
    }

    #[test]
    fn regressions_found_by_fuzzing_decode_without_harm() {
        // Every input the fuzzer ever crashed on (fuzz/regressions/).
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/regressions");
        let mut n = 0;
        for e in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
            let path = e.unwrap().path();
            if path.extension().is_some_and(|x| x == "bin") {
                let data = std::fs::read(&path).unwrap();
                let _ = crate::fuzzing::one_input(&data);
                n += 1;
            }
        }
        assert!(n > 0, "no regression inputs in {}", dir.display());
    }
}
