//! Which Kafka APIs the listener answers, at which versions, and the
//! ApiVersions reply that tells clients so.
//!
//! A Kafka client's first request is ApiVersions; from the ranges in the
//! answer it picks, for every later request, the highest version both sides
//! know. The *minimum* versions matter as much as the maxima: librdkafka (the
//! C client under kcat and confluent-kafka) turns whole features on or off by
//! checking that the broker's range for each API it needs overlaps a fixed
//! range of its own. Its "message format v2" feature needs Produce 3 and
//! Fetch 4; some of its older builds also look for Produce ranges that start
//! at 0. kafka-python guesses the broker's Kafka release from the maxima,
//! and uses record batches v2 (headers) only once Metadata reaches 4.
//!
//! So each range below is the codec's (`kafka-protocol` decodes Kafka 4.1's
//! versions) cut where this broker stops meaning what the version says:
//! Produce and Fetch from 13 and DeleteTopics from 6 name topics by id, and
//! ListOffsets from 7 asks for timestamps this broker does not index. Produce
//! is advertised from 0 for librdkafka's check; versions 0 to 2 carry the
//! old message formats, which no client that reads this table sends, and
//! are answered UNSUPPORTED_VERSION like any version outside the table.
//!
//! librdkafka's balanced consumer (`subscribe`, kcat -G) needs its
//! "broker balanced consumer" feature: FindCoordinator 0, OffsetCommit 1 to
//! 2, OffsetFetch 1, JoinGroup, SyncGroup, Heartbeat and LeaveGroup 0, each
//! range overlapping ours. The group APIs are advertised over the codec's
//! whole range, since every version of the classic protocol means something
//! this broker does (static membership's instance ids, from JoinGroup 5,
//! are refused per request: see [`super::groups`]); what is not served is
//! the new consumer protocol of KIP-848 (ConsumerGroupHeartbeat, and
//! OffsetCommit and OffsetFetch from 9 with member epochs), so clients keep
//! to the classic one.

use kafka_protocol::messages::ApiKey;
use kafka_protocol::messages::api_versions_response::{ApiVersion, ApiVersionsResponse};
use kafka_protocol::protocol::Message;

/// An API and the versions this broker advertises for it.
#[derive(Debug, Clone, Copy)]
pub struct Supported {
    /// The API.
    pub key: ApiKey,
    /// Lowest advertised version.
    pub min: i16,
    /// Highest advertised version.
    pub max: i16,
}

// ANCHOR: supported
/// Every API the listener answers, with its advertised versions.
#[rustfmt::skip]
pub const SUPPORTED: &[Supported] = &[
    Supported { key: ApiKey::Produce, min: 0, max: 12 },
    Supported { key: ApiKey::Fetch, min: 4, max: 12 },
    Supported { key: ApiKey::ListOffsets, min: 1, max: 6 },
    Supported { key: ApiKey::Metadata, min: 0, max: 12 },
    Supported { key: ApiKey::OffsetCommit, min: 2, max: 8 },
    Supported { key: ApiKey::OffsetFetch, min: 1, max: 7 },
    Supported { key: ApiKey::FindCoordinator, min: 0, max: 3 },
    Supported { key: ApiKey::ApiVersions, min: 0, max: 4 },
    Supported { key: ApiKey::InitProducerId, min: 0, max: 4 },
    Supported { key: ApiKey::CreateTopics, min: 2, max: 7 },
    Supported { key: ApiKey::DeleteTopics, min: 1, max: 5 },
    Supported { key: ApiKey::JoinGroup, min: 0, max: 9 },
    Supported { key: ApiKey::SyncGroup, min: 0, max: 5 },
    Supported { key: ApiKey::Heartbeat, min: 0, max: 4 },
    Supported { key: ApiKey::LeaveGroup, min: 0, max: 5 },
    Supported { key: ApiKey::DescribeGroups, min: 0, max: 6 },
    Supported { key: ApiKey::ListGroups, min: 0, max: 5 },
];
// ANCHOR_END: supported

/// Whether this broker answers `key` at `version`, as advertised, and the
/// codec can decode it (the part of Produce's range below the codec's is
/// advertised but not served).
pub fn served(key: ApiKey, version: i16) -> bool {
    advertised(key, version) && codec_knows(key, version)
}

/// Whether `version` of `key` is in the table.
pub fn advertised(key: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|api| api.key == key && (api.min..=api.max).contains(&version))
}

/// Whether the codec has a schema for `version` of `key`.
pub fn codec_knows(key: ApiKey, version: i16) -> bool {
    let range = key.valid_versions();
    (range.min..=range.max).contains(&version)
}

/// The ApiVersions answer: the table, and `error_code` (0, or 35 when the
/// client asked at a version this broker does not know).
pub fn api_versions(error_code: i16) -> ApiVersionsResponse {
    let api_keys = SUPPORTED
        .iter()
        .map(|api| {
            ApiVersion::default()
                .with_api_key(api.key as i16)
                .with_min_version(api.min)
                .with_max_version(api.max)
        })
        .collect();
    ApiVersionsResponse::default()
        .with_error_code(error_code)
        .with_api_keys(api_keys)
}

/// The newest ApiVersions the codec can write: a reply to an ApiVersions
/// request at an unknown version is written at version 0, which every
/// client reads (Kafka's rule), and one the codec knows at its own version.
pub fn api_versions_reply_version(asked: i16) -> i16 {
    if codec_knows(ApiKey::ApiVersions, asked) && advertised(ApiKey::ApiVersions, asked) {
        asked
    } else {
        0
    }
}

/// The codec's highest version of ApiVersions (for tests).
pub fn codec_max_api_versions() -> i16 {
    ApiVersionsResponse::VERSIONS.max
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_advertised_range_is_decodable_except_produce_below_3() {
        for api in SUPPORTED {
            for version in api.min..=api.max {
                let servable = served(api.key, version);
                let old_produce = api.key == ApiKey::Produce && version < 3;
                assert_eq!(servable, !old_produce, "{:?} v{version}", api.key);
            }
        }
    }

    #[test]
    fn the_table_meets_what_the_clients_check() {
        let range = |key| SUPPORTED.iter().find(|api| api.key == key).unwrap();
        // librdkafka's message format v2 feature: Produce 3 and Fetch 4.
        assert!(range(ApiKey::Produce).min <= 3 && range(ApiKey::Produce).max >= 3);
        assert!(range(ApiKey::Fetch).min <= 4 && range(ApiKey::Fetch).max >= 4);
        assert_eq!(range(ApiKey::Produce).min, 0);
        // kafka-python uses record batch v2 once Metadata reaches 4.
        assert!(range(ApiKey::Metadata).max >= 4);
        // librdkafka's balanced consumer (rdkafka_feature.c,
        // RD_KAFKA_FEATURE_BROKER_BALANCED_CONSUMER): each of these ranges
        // must overlap ours.
        for (key, min, max) in [
            (ApiKey::FindCoordinator, 0, 0),
            (ApiKey::OffsetCommit, 1, 2),
            (ApiKey::OffsetFetch, 1, 1),
            (ApiKey::JoinGroup, 0, 0),
            (ApiKey::SyncGroup, 0, 0),
            (ApiKey::Heartbeat, 0, 0),
            (ApiKey::LeaveGroup, 0, 0),
        ] {
            let ours = range(key);
            assert!(
                ours.min <= max && min <= ours.max,
                "{key:?}: {}..={} does not meet librdkafka's {min}..={max}",
                ours.min,
                ours.max
            );
        }
        // The new consumer protocol (KIP-848) is not offered: its
        // heartbeat, and the commit and fetch versions with member epochs.
        assert!(
            !SUPPORTED
                .iter()
                .any(|api| api.key == ApiKey::ConsumerGroupHeartbeat)
        );
        assert!(range(ApiKey::OffsetCommit).max < 9);
        assert!(range(ApiKey::OffsetFetch).max < 9);
        // The group APIs' versions are all the codec's.
        for key in [
            ApiKey::JoinGroup,
            ApiKey::SyncGroup,
            ApiKey::Heartbeat,
            ApiKey::LeaveGroup,
            ApiKey::DescribeGroups,
            ApiKey::ListGroups,
        ] {
            let codec = key.valid_versions();
            assert_eq!(
                (range(key).min, range(key).max),
                (codec.min, codec.max),
                "{key:?}"
            );
        }
    }
}
