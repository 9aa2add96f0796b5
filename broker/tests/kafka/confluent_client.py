"""confluent-kafka (librdkafka) against a Kafka listener, for
broker/tests/kafka_clients.rs and kafka_groups.rs.

  produce: sends --count messages (at most --rate a second, if given) and
           prints one JSON line per delivery report:
           {"delivered": {"i", "key", "partition", "offset"}}.
  consume: assigns every partition of the topic from the beginning (no group
           membership: confluent_group.py is the group member) and prints
           one JSON line per message until --count have arrived.

Message i (from --first) is key "k<i>", value "v<i>" followed by --pad bytes
of text, headers trace=abc and i=<i>, CreateTime --timestamp + i ms.
Anything wrong exits non-zero with the reason on stderr.
"""

import argparse
import functools
import json
import sys
import time

from confluent_kafka import (
    OFFSET_BEGINNING,
    Consumer,
    KafkaError,
    Producer,
    TopicPartition,
)


def fail(message):
    print(f"confluent_client: {message}", file=sys.stderr)
    sys.exit(1)


def common_config(args):
    config = {"bootstrap.servers": args.bootstrap, "client.id": "rivulet-test"}
    if args.debug:
        config["debug"] = args.debug
    return config


def text(data):
    return None if data is None else data.decode("utf-8", errors="replace")


def produce(args):
    config = common_config(args)
    config.update(
        {
            "acks": args.acks,
            "compression.type": args.compression,
            "linger.ms": 5,
            # Failures are reported, not retried for minutes.
            "message.timeout.ms": int(args.timeout * 1000),
        }
    )
    producer = Producer(config)
    errors = []

    def on_delivery(i, error, message):
        if error is not None:
            errors.append(f"message {i}: {error}")
            return
        line = {
            "i": i,
            "key": text(message.key()),
            "partition": message.partition(),
            "offset": message.offset(),
        }
        print(json.dumps({"delivered": line}))

    pad = "x" * args.pad
    started = time.monotonic()
    for i in range(args.first, args.first + args.count):
        if args.rate > 0:
            # Paced: message i leaves no sooner than i / rate seconds in.
            due = started + (i - args.first) / args.rate
            while time.monotonic() < due:
                producer.poll(max(0.0, min(0.05, due - time.monotonic())))
        while True:
            try:
                producer.produce(
                    args.topic,
                    value=f"v{i}{pad}".encode(),
                    key=f"k{i}".encode(),
                    headers=[("trace", b"abc"), ("i", str(i).encode())],
                    timestamp=args.timestamp + i,
                    on_delivery=functools.partial(on_delivery, i),
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    left = producer.flush(args.timeout)
    if errors:
        fail(f"{len(errors)} deliveries failed, the first: {errors[0]}")
    if left:
        fail(f"{left} messages still undelivered after {args.timeout} s")


def consume(args):
    config = common_config(args)
    config.update({"group.id": "rivulet-test", "enable.auto.commit": False})
    consumer = Consumer(config)
    metadata = consumer.list_topics(args.topic, timeout=args.timeout)
    topic = metadata.topics.get(args.topic)
    if topic is None or topic.error is not None:
        fail(f"no topic {args.topic} in metadata: {topic and topic.error}")
    partitions = sorted(topic.partitions)
    consumer.assign(
        [TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions]
    )
    got = 0
    deadline = time.monotonic() + args.timeout
    while got < args.count:
        if time.monotonic() > deadline:
            fail(f"got {got} of {args.count} messages in {args.timeout} s")
        message = consumer.poll(0.5)
        if message is None:
            continue
        if message.error() is not None:
            if message.error().code() == KafkaError._PARTITION_EOF:
                continue
            fail(f"consume error: {message.error()}")
        kind, timestamp = message.timestamp()
        line = {
            "partition": message.partition(),
            "offset": message.offset(),
            "key": text(message.key()),
            "value": text(message.value()),
            "headers": [[k, text(v)] for k, v in (message.headers() or [])],
            "timestamp_type": kind,
            "timestamp": timestamp,
        }
        print(json.dumps(line))
        got += 1
    consumer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("command", choices=["produce", "consume"])
    parser.add_argument("--bootstrap", required=True, help="HOST:PORT")
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first", type=int, default=0, help="first message's i")
    parser.add_argument("--pad", type=int, default=0, help="value padding bytes")
    parser.add_argument("--compression", default="none")
    parser.add_argument("--acks", default="all")
    parser.add_argument("--rate", type=float, default=0, help="messages a second (0: no limit)")
    parser.add_argument(
        "--timestamp", type=int, default=1_700_000_000_000, help="ms of message 0"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds")
    parser.add_argument("--debug", default="", help="librdkafka debug contexts")
    args = parser.parse_args()
    if args.command == "produce":
        produce(args)
    else:
        consume(args)


if __name__ == "__main__":
    main()
