//! The one place where store errors become Kafka error codes.

use chronik::cluster::dynamic_config::ConfigChangeError;
use chronik::cluster::metadata::ControllerError;
use chronik::log::batch::BatchError;
use chronik::log::producers::ProducerRefusal;
use chronik::StoreError;

pub const UNKNOWN_SERVER_ERROR: i16 = -1;
pub const NONE: i16 = 0;
pub const OFFSET_OUT_OF_RANGE: i16 = 1;
pub const CORRUPT_MESSAGE: i16 = 2;
pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
pub const LEADER_NOT_AVAILABLE: i16 = 5;
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
pub const BROKER_NOT_AVAILABLE: i16 = 8;
pub const REQUEST_TIMED_OUT: i16 = 7;
pub const MESSAGE_TOO_LARGE: i16 = 10;
pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
pub const NOT_COORDINATOR: i16 = 16;
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
pub const INVALID_REQUIRED_ACKS: i16 = 21;
pub const INVALID_TIMESTAMP: i16 = 32;
pub const ILLEGAL_GENERATION: i16 = 22;
pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
pub const INVALID_GROUP_ID: i16 = 24;
pub const UNKNOWN_MEMBER_ID: i16 = 25;
pub const INVALID_SESSION_TIMEOUT: i16 = 26;
pub const REBALANCE_IN_PROGRESS: i16 = 27;
pub const UNSUPPORTED_VERSION: i16 = 35;
pub const TOPIC_ALREADY_EXISTS: i16 = 36;
pub const INVALID_PARTITIONS: i16 = 37;
pub const INVALID_REPLICATION_FACTOR: i16 = 38;
pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
pub const INVALID_CONFIG: i16 = 40;
pub const NOT_CONTROLLER: i16 = 41;
pub const INVALID_REQUEST: i16 = 42;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
pub const INVALID_PRODUCER_EPOCH: i16 = 47;
pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
pub const GROUP_AUTHORIZATION_FAILED: i16 = 30;
pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
pub const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
pub const ILLEGAL_SASL_STATE: i16 = 34;
pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
pub const SECURITY_DISABLED: i16 = 54;
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
pub const RESOURCE_NOT_FOUND: i16 = 91;
pub const DUPLICATE_RESOURCE: i16 = 92;
pub const UNACCEPTABLE_CREDENTIAL: i16 = 93;
pub const KAFKA_STORAGE_ERROR: i16 = 56;
pub const NON_EMPTY_GROUP: i16 = 68;
pub const GROUP_ID_NOT_FOUND: i16 = 69;
pub const MEMBER_ID_REQUIRED: i16 = 79;
pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
pub const FENCED_INSTANCE_ID: i16 = 82;
pub const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;
pub const ELECTION_NOT_NEEDED: i16 = 84;
pub const NO_REASSIGNMENT_IN_PROGRESS: i16 = 85;
pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
pub const INVALID_RECORD: i16 = 87;
pub const UNKNOWN_TOPIC_ID: i16 = 100;
pub const FENCED_MEMBER_EPOCH: i16 = 110;
pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
pub const STALE_MEMBER_EPOCH: i16 = 113;
pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
pub const REBOOTSTRAP_REQUIRED: i16 = 129;

pub fn code(err: &StoreError) -> i16 {
    match err {
        StoreError::UnknownTopicOrPartition(_) => UNKNOWN_TOPIC_OR_PARTITION,
        StoreError::NotLeader(..) => NOT_LEADER_OR_FOLLOWER,
        StoreError::LeaderNotAvailable(_) | StoreError::ShuttingDown { .. } => LEADER_NOT_AVAILABLE,
        StoreError::OffsetOutOfRange { .. } => OFFSET_OUT_OF_RANGE,
        StoreError::CorruptBatch(..) => CORRUPT_MESSAGE,
        StoreError::InvalidBatch(_, BatchError::TooLarge { .. }) => MESSAGE_TOO_LARGE,
        StoreError::InvalidBatch(_, BatchError::TimestampOutOfRange { .. } | BatchError::LogAppendTimeFromProducer) => INVALID_TIMESTAMP,
        StoreError::InvalidBatch(..) => INVALID_RECORD,
        StoreError::Timeout(_) => REQUEST_TIMED_OUT,
        StoreError::ElectionNotNeeded(_) => ELECTION_NOT_NEEDED,
        StoreError::PreferredLeaderNotAvailable(..) => PREFERRED_LEADER_NOT_AVAILABLE,
        StoreError::NotController(_) => NOT_CONTROLLER,
        StoreError::InvalidConfig { .. } => INVALID_CONFIG,
        StoreError::Storage { .. } | StoreError::DiskFull { .. } => KAFKA_STORAGE_ERROR,
        StoreError::ProducerRefused(_, ProducerRefusal::OutOfOrderSequence { .. }) => OUT_OF_ORDER_SEQUENCE_NUMBER,
        StoreError::ProducerRefused(_, ProducerRefusal::StaleEpoch { .. }) => INVALID_PRODUCER_EPOCH,
        StoreError::Controller(c) => match c {
            ControllerError::TopicExists(_) => TOPIC_ALREADY_EXISTS,
            ControllerError::UnknownTopic(_) | ControllerError::UnknownPartition(_) => UNKNOWN_TOPIC_OR_PARTITION,
            ControllerError::NoReassignmentInProgress(_) => NO_REASSIGNMENT_IN_PROGRESS,
            ControllerError::InvalidTopic(..) => INVALID_TOPIC_EXCEPTION,
            ControllerError::InvalidPartitions(..) => INVALID_PARTITIONS,
            ControllerError::InvalidReplicationFactor(..) | ControllerError::ReplicationFactorChange(..) => INVALID_REPLICATION_FACTOR,
            ControllerError::InvalidReplicaAssignment(_) => INVALID_REPLICA_ASSIGNMENT,
            ControllerError::InvalidConfig(ConfigChangeError::Invalid { .. }) => INVALID_CONFIG,
            ControllerError::InvalidConfig(ConfigChangeError::Request(_)) => INVALID_REQUEST,
            ControllerError::UnknownNode(_) | ControllerError::NodeRemoved(_) => BROKER_NOT_AVAILABLE,
            ControllerError::CannotDecommission(..) | ControllerError::NodeNotEmpty(..) => INVALID_REQUEST,
        },
    }
}
