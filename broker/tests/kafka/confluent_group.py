"""A confluent-kafka (librdkafka) consumer in a group, for
broker/tests/kafka_groups.rs: it subscribes to --topic as a member of
--group and prints one JSON line (flushed at once: the test may SIGKILL it)
for each thing that happens:

  {"assigned": [partitions], "member": id}   the group gave it partitions
                                             (eager: its whole new set)
  {"revoked": [partitions]}                  a rebalance took them back
  {"partition", "offset", "key", "value"}    a message, once processed
  {"committed": {"partition", "offset"}}     its commit succeeded (offset:
                                             the next one to read)
  {"commit_failed": {"partition", "offset", "error"}}

Each message is committed (synchronously) after it is printed, so what it
consumed without committing is at most the message it was killed on.

It stops when its standard input ends (or after --count messages, if
given): it closes the consumer, which leaves the group, and exits 0.
Anything wrong exits non-zero with the reason on stderr.
"""

import argparse
import json
import sys
import threading

from confluent_kafka import Consumer, KafkaError, KafkaException


def fail(message):
    print(f"confluent_group: {message}", file=sys.stderr, flush=True)
    sys.exit(1)


def say(line):
    print(json.dumps(line), flush=True)


def text(data):
    return None if data is None else data.decode("utf-8", errors="replace")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--client-id", default="rivulet-group-test")
    parser.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    parser.add_argument("--session-timeout-ms", type=int, default=6000)
    parser.add_argument("--heartbeat-interval-ms", type=int, default=500)
    # librdkafka's default is "range,roundrobin": the leader picks the
    # first that every member supports. One, so the spread is known.
    parser.add_argument("--assignor", default="range")
    parser.add_argument("--debug", default="", help="librdkafka debug contexts")
    args = parser.parse_args()

    config = {
        "bootstrap.servers": args.bootstrap,
        "client.id": args.client_id,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "partition.assignment.strategy": args.assignor,
        "session.timeout.ms": args.session_timeout_ms,
        "heartbeat.interval.ms": args.heartbeat_interval_ms,
        # The rebalance timeout librdkafka sends: how long a rebalance may
        # wait for a member that does not join again.
        "max.poll.interval.ms": 20000,
    }
    if args.debug:
        config["debug"] = args.debug
    consumer = Consumer(config)

    def on_assign(consumer, partitions):
        say(
            {
                "assigned": sorted(p.partition for p in partitions),
                "member": consumer.memberid(),
            }
        )

    def on_revoke(consumer, partitions):
        say({"revoked": sorted(p.partition for p in partitions)})

    consumer.subscribe([args.topic], on_assign=on_assign, on_revoke=on_revoke)

    stop = threading.Event()

    def watch_stdin():
        for _ in sys.stdin:
            pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()

    got = 0
    while not stop.is_set() and (args.count == 0 or got < args.count):
        message = consumer.poll(0.2)
        if message is None:
            continue
        if message.error() is not None:
            if message.error().code() == KafkaError._PARTITION_EOF:
                continue
            fail(f"consume error: {message.error()}")
        partition, offset = message.partition(), message.offset()
        say(
            {
                "partition": partition,
                "offset": offset,
                "key": text(message.key()),
                "value": text(message.value()),
            }
        )
        got += 1
        try:
            consumer.commit(message=message, asynchronous=False)
            say({"committed": {"partition": partition, "offset": offset + 1}})
        except KafkaException as error:
            say(
                {
                    "commit_failed": {
                        "partition": partition,
                        "offset": offset + 1,
                        "error": str(error.args[0]),
                    }
                }
            )
    consumer.close()


if __name__ == "__main__":
    main()
