"""kafka-python against a Kafka listener, with no api_version hint (it
negotiates with ApiVersions), for broker/tests/kafka_clients.rs.

  produce: prints {"api_version": [...], "magic": N} (the broker version it
           inferred, the record format it will write), then one JSON line per
           acknowledged message: {"delivered": {"i", "key", "partition", "offset"}}.
  consume: prints {"api_version": [...]}, assigns every partition of the
           topic from the earliest offset (no group membership) and prints
           one JSON line per message until --count have arrived.

Message i is key "k<i>" (none for every tenth), value "v<i>", headers
trace=abc and i=<i>, CreateTime --timestamp + i ms.
Anything wrong exits non-zero with the reason on stderr.
"""

import argparse
import json
import logging
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition


def fail(message):
    print(f"kafka_python_client: {message}", file=sys.stderr)
    sys.exit(1)


def text(data):
    return None if data is None else data.decode("utf-8", errors="replace")


def key_of(i):
    return None if i % 10 == 9 else f"k{i}".encode()


def produce(args):
    config = {}
    if args.no_idempotence:
        # kafka-python 3 makes an idempotent producer by default once it
        # takes the broker for 0.11 or newer: that needs InitProducerId.
        config["enable_idempotence"] = False
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        request_timeout_ms=int(args.timeout * 1000),
        **config,
    )
    version = producer.config["api_version"]
    magic = KafkaProducer.max_usable_produce_magic(version)
    print(json.dumps({"api_version": list(version), "magic": magic}))
    futures = []
    for i in range(args.count):
        future = producer.send(
            args.topic,
            value=f"v{i}".encode(),
            key=key_of(i),
            headers=[("trace", b"abc"), ("i", str(i).encode())],
            timestamp_ms=args.timestamp + i,
        )
        futures.append((i, future))
    producer.flush(timeout=args.timeout)
    for i, future in futures:
        try:
            meta = future.get(timeout=args.timeout)
        except Exception as error:  # the client's own error types, all fatal here
            fail(f"message {i} failed: {error!r}")
        line = {
            "i": i,
            "key": text(key_of(i)),
            "partition": meta.partition,
            "offset": meta.offset,
        }
        print(json.dumps({"delivered": line}))
    producer.close(timeout=args.timeout)


def consume(args):
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        request_timeout_ms=int(args.timeout * 1000) + 1000,
    )
    print(json.dumps({"api_version": list(consumer.config["api_version"])}))
    deadline = time.monotonic() + args.timeout
    partitions = None
    while not partitions:
        if time.monotonic() > deadline:
            fail(f"no partitions for topic {args.topic} in {args.timeout} s")
        partitions = consumer.partitions_for_topic(args.topic)
        if not partitions:
            time.sleep(0.1)
    consumer.assign([TopicPartition(args.topic, p) for p in sorted(partitions)])
    got = 0
    while got < args.count:
        if time.monotonic() > deadline:
            fail(f"got {got} of {args.count} messages in {args.timeout} s")
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                line = {
                    "partition": record.partition,
                    "offset": record.offset,
                    "key": text(record.key),
                    "value": text(record.value),
                    "headers": [[k, text(v)] for k, v in (record.headers or [])],
                    "timestamp_type": record.timestamp_type,
                    "timestamp": record.timestamp,
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
    parser.add_argument(
        "--timestamp", type=int, default=1_700_000_000_000, help="ms of message 0"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds")
    parser.add_argument(
        "--no-idempotence",
        action="store_true",
        help="produce without idempotence (the library's default is on)",
    )
    parser.add_argument("--debug", action="store_true", help="log at DEBUG to stderr")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING, stream=sys.stderr
    )
    if args.command == "produce":
        produce(args)
    else:
        consume(args)


if __name__ == "__main__":
    main()
