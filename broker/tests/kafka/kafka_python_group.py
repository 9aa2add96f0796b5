"""A kafka-python consumer in a group, for broker/tests/kafka_groups.rs: the
same lines as confluent_group.py (assigned, revoked, each message, each
commit), flushed at once, from a pure-Python client that negotiates its own
versions (the group APIs' flexible ones: JoinGroup 7, SyncGroup 5,
Heartbeat 4, LeaveGroup 5).

It stops when its standard input ends (or after --count messages): it
closes the consumer, which leaves the group, and exits 0.
"""

import argparse
import json
import logging
import sys
import threading

from kafka import ConsumerRebalanceListener, KafkaConsumer, TopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata


def say(line):
    print(json.dumps(line), flush=True)


def text(data):
    return None if data is None else data.decode("utf-8", errors="replace")


class Listener(ConsumerRebalanceListener):
    def on_partitions_revoked(self, revoked):
        say({"revoked": sorted(p.partition for p in revoked)})

    def on_partitions_assigned(self, assigned):
        say({"assigned": sorted(p.partition for p in assigned), "member": None})


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--client-id", default="rivulet-group-test")
    parser.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument("--heartbeat-interval-ms", type=int, default=500)
    parser.add_argument("--debug", action="store_true", help="log at DEBUG")
    args = parser.parse_args()
    if args.debug:
        logging.basicConfig(level=logging.DEBUG)

    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        client_id=args.client_id,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        # One assignor (the default list is range, roundrobin), as the
        # confluent-kafka members use.
        partition_assignment_strategy=[RangePartitionAssignor],
        session_timeout_ms=args.session_timeout_ms,
        heartbeat_interval_ms=args.heartbeat_interval_ms,
        max_poll_interval_ms=20000,
    )
    consumer.subscribe([args.topic], listener=Listener())

    stop = threading.Event()

    def watch_stdin():
        for _ in sys.stdin:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    got = 0
    while not stop.is_set() and (args.count == 0 or got < args.count):
        batches = consumer.poll(timeout_ms=200, max_records=1)
        for partition, messages in batches.items():
            for message in messages:
                say(
                    {
                        "partition": message.partition,
                        "offset": message.offset,
                        "key": text(message.key),
                        "value": text(message.value),
                    }
                )
                got += 1
                at = TopicPartition(partition.topic, partition.partition)
                done = {"partition": message.partition, "offset": message.offset + 1}
                try:
                    consumer.commit({at: OffsetAndMetadata(message.offset + 1)})
                    say({"committed": done})
                except KafkaError as error:
                    say({"commit_failed": dict(done, error=str(error))})
    consumer.close()


if __name__ == "__main__":
    main()
