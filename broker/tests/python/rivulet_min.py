"""A minimal Rivulet client, written from the book's protocol reference
(book/src/reference-protocol.md) alone, with Python's standard library only.

It is the proof that the reference is enough for a client in another
language: broker/tests/python_client.rs runs it against a real
rivulet-server and checks what it reports.

    python rivulet_min.py check HOST:PORT     the main walk: streams, topics,
                                              produce, poll, offsets, errors
    python rivulet_min.py limits HOST:PORT    a server started with
                                              --max-connections 1 and
                                              --idle-timeout-seconds 2

Each prints one JSON object (what it saw) and exits 1 if a check failed.
"""

import json
import socket
import struct
import sys
import time

# --- CRC-32C (Castagnoli), reflected, init and final XOR 0xffffffff ---------

_POLY = 0x82F63B78  # 0x1EDC6F41 reflected
_TABLE = []
for _n in range(256):
    _c = _n
    for _ in range(8):
        _c = (_c >> 1) ^ _POLY if _c & 1 else _c >> 1
    _TABLE.append(_c)


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


assert crc32c(b"123456789") == 0xE3069283, "the check value the reference gives"

# --- Codes and statuses, from the reference's tables --------------------------

CREATE_TOPIC, PRODUCE, POLL = 10, 11, 12
CREATE_STREAM, LIST_STREAMS, DELETE_STREAM = 20, 21, 22
CREATE_TOPIC_NAMED, LIST_TOPICS, DESCRIBE_TOPIC, DELETE_TOPIC = 23, 24, 25, 26
POLL_BY, STORE_OFFSET, GET_OFFSETS, STATS, LOGIN = 27, 28, 29, 30, 31

OK, FRAME_TOO_LARGE, MALFORMED, UNKNOWN_COMMAND = 0, 1, 2, 3
TOPIC_NOT_FOUND, INVALID, PARTITION_NOT_FOUND = 4, 5, 7
STREAM_NOT_FOUND, ALREADY_EXISTS, TOO_MANY_CONNECTIONS = 8, 9, 13
CLOSING = {FRAME_TOO_LARGE, MALFORMED, UNKNOWN_COMMAND, TOO_MANY_CONNECTIONS}

KIND_OFFSET, KIND_TIMESTAMP, KIND_FIRST, KIND_LAST, KIND_NEXT = 0, 1, 2, 3, 4
EXTENDED = 0x80000000
MAX_REPLY = 64 << 20  # our own limit on a reply's frame_len


class ServerError(Exception):
    """A reply with a status other than 0: the body is the message."""

    def __init__(self, status, message):
        super().__init__(f"status {status}: {message}")
        self.status = status
        self.message = message


class ConnectionClosed(Exception):
    """The server closed the connection (no more frames will come)."""


# --- Frames -------------------------------------------------------------------


class Connection:
    def __init__(self, addr, timeout=30.0):
        host, port = addr.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.next_correlation = 1

    def close(self):
        self.sock.close()

    def _read_exact(self, n):
        data = bytearray()
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionClosed(f"closed after {len(data)} of {n} bytes")
            data += chunk
        return bytes(data)

    def read_frame(self):
        """One frame: (code or status, correlation, body)."""
        frame_len, code, correlation = struct.unpack("<IHI", self._read_exact(10))
        if frame_len < 6 or frame_len > MAX_REPLY:
            raise ConnectionClosed(f"a reply claims frame_len {frame_len}")
        return code, correlation, self._read_exact(frame_len - 6)

    def request(self, code, body=b""):
        """Sends one request and reads its reply: the ok body, or ServerError."""
        correlation = self.next_correlation
        self.next_correlation += 1
        self.sock.sendall(struct.pack("<IHI", 6 + len(body), code, correlation) + body)
        status, got, reply = self.read_frame()
        if status == TOO_MANY_CONNECTIONS and got == 0:
            # The connection-limit refusal: sent unasked, with correlation 0.
            raise ServerError(status, reply.decode("utf-8"))
        if got != correlation:
            raise ConnectionClosed(f"reply to correlation {got}, expected {correlation}")
        if status != OK:
            raise ServerError(status, reply.decode("utf-8"))
        return reply

    def is_closed(self, patience=5.0):
        """Whether the server has closed the connection (reads nothing else)."""
        self.sock.settimeout(patience)
        try:
            return self.sock.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    # --- JSON commands ---------------------------------------------------------

    def call_json(self, code, request):
        reply = self.request(code, json.dumps(request).encode("utf-8"))
        return json.loads(reply.decode("utf-8"))

    def create_stream(self, name):
        return self.call_json(CREATE_STREAM, {"name": name})

    def list_streams(self):
        return self.call_json(LIST_STREAMS, {})["streams"]

    def delete_stream(self, name):
        return self.call_json(DELETE_STREAM, {"name": name})

    def create_topic(self, name, partitions, stream=None, settings=None):
        request = {"name": name, "partitions": partitions}
        if stream is not None:
            request["stream"] = stream
        if settings:
            request["settings"] = settings
        return self.call_json(CREATE_TOPIC_NAMED, request)

    def list_topics(self, stream=None):
        return self.call_json(LIST_TOPICS, {"stream": stream})["topics"]

    def describe_topic(self, topic):
        return self.call_json(DESCRIBE_TOPIC, topic_ref(topic))

    def delete_topic(self, topic):
        return self.call_json(DELETE_TOPIC, topic_ref(topic))

    def store_offset(self, consumer, topic, partition, offset):
        request = {
            "consumer": consumer,
            "topic": topic_ref(topic),
            "partition": partition,
            "offset": offset,
        }
        return self.call_json(STORE_OFFSET, request)

    def get_offsets(self, consumer, topic):
        return self.call_json(GET_OFFSETS, {"consumer": consumer, "topic": topic_ref(topic)})

    def stats(self):
        return self.call_json(STATS, {})

    # --- The binary data path --------------------------------------------------

    def produce(self, topic, records, partition=None, key=None):
        """One batch: to `partition`, by `key` (crc32c(key) % partitions), or
        round robin when neither is given."""
        if partition is not None:
            head = struct.pack("<IBI", topic, 0, partition)
        elif key is not None:
            head = struct.pack("<IBH", topic, 2, len(key)) + key
        else:
            head = struct.pack("<IB", topic, 1)
        body = head + struct.pack("<I", len(records)) + b"".join(records)
        reply = self.request(PRODUCE, body)
        partition, first_offset, count, durable = struct.unpack("<IQIB", reply)
        return {
            "partition": partition,
            "first_offset": first_offset,
            "count": count,
            "durable": durable,
        }

    def poll(self, topic, partition, offset, count):
        body = struct.pack("<IIQI", topic, partition, offset, count)
        return decode_polled(self.request(POLL, body))

    def poll_by(self, topic, partition, kind, value=0, count=100, consumer="", auto_commit=False):
        name = consumer.encode("utf-8")
        body = (
            struct.pack("<IIBQIH", topic, partition, kind, value, count, len(name))
            + name
            + struct.pack("<B", 1 if auto_commit else 0)
        )
        return decode_polled(self.request(POLL_BY, body))


def topic_ref(topic):
    return {"id": topic} if isinstance(topic, int) else {"name": topic}


# --- Records ------------------------------------------------------------------


def encode_record(value, key=None, headers=(), create_time=None, record_id=0):
    """A record as a producer sends it: offset and timestamp 0 (the server's
    to set), the checksum computed all the same. Version 1 unless it has a
    key, headers or a create time."""
    if key is None and not headers and create_time is None:
        payload, word = value, len(value)
    else:
        section = struct.pack("<Bq", 0, -1 if create_time is None else create_time)
        if key is None:
            section += struct.pack("<i", -1)
        else:
            section += struct.pack("<i", len(key)) + key
        section += struct.pack("<I", len(headers))
        for name, header_value in headers:
            name = name.encode("utf-8")
            section += struct.pack("<I", len(name)) + name
            if header_value is None:
                section += struct.pack("<i", -1)
            else:
                section += struct.pack("<i", len(header_value)) + header_value
        payload = struct.pack("<I", len(section)) + section + value
        word = len(payload) | EXTENDED
    rest = struct.pack("<IQQQ", word, 0, 0, record_id) + payload
    return struct.pack("<I", crc32c(rest)) + rest


def decode_polled(body):
    (count,) = struct.unpack_from("<I", body, 0)
    records, at = [], 4
    for _ in range(count):
        crc, word, offset, timestamp, record_id = struct.unpack_from("<IIQQQ", body, at)
        length = 32 + (word & ~EXTENDED & 0xFFFFFFFF)
        raw = body[at : at + length]
        if len(raw) != length:
            raise ValueError(f"record at byte {at} is cut short")
        if crc32c(raw[4:]) != crc:
            raise ValueError(f"record {offset} fails its checksum")
        record = {
            "offset": offset,
            "timestamp": timestamp,
            "id": record_id,
            "key": None,
            "headers": [],
            "create_time": None,
        }
        payload = raw[32:]
        if word & EXTENDED:
            (section_len,) = struct.unpack_from("<I", payload, 0)
            flags, create_time, key_len = struct.unpack_from("<Bqi", payload, 4)
            p = 17
            if key_len >= 0:
                record["key"] = payload[p : p + key_len].decode("utf-8", "replace")
                p += key_len
            (header_count,) = struct.unpack_from("<I", payload, p)
            p += 4
            for _ in range(header_count):
                (name_len,) = struct.unpack_from("<I", payload, p)
                name = payload[p + 4 : p + 4 + name_len].decode("utf-8")
                p += 4 + name_len
                (value_len,) = struct.unpack_from("<i", payload, p)
                p += 4
                value = None
                if value_len >= 0:
                    value = payload[p : p + value_len].decode("utf-8", "replace")
                    p += value_len
                record["headers"].append([name, value])
            if p != 4 + section_len:
                raise ValueError(f"record {offset}: the section is not what it says")
            record["create_time"] = None if create_time == -1 else create_time
            value = None if flags & 1 else payload[p:]
        else:
            value = payload
        record["value"] = None if value is None else value.decode("utf-8", "replace")
        records.append(record)
        at += length
    if at != len(body):
        raise ValueError("bytes left after the last record")
    return records


# --- The walks the Rust test runs -----------------------------------------------


class Checks:
    def __init__(self):
        self.report = {"failed": []}

    def expect(self, what, condition, seen=None):
        if not condition:
            self.report["failed"].append(f"{what}: {seen!r}")

    def refused(self, what, call):
        """Runs `call`, which must be refused; returns (status, message)."""
        try:
            got = call()
        except ServerError as error:
            self.report[what] = {"status": error.status, "message": error.message}
            return error.status, error.message
        self.expect(f"{what} is refused", False, got)
        return None, None


def check(addr):
    c = Checks()
    r = c.report
    conn = Connection(addr)

    # Streams: create, re-create (exists), and one made on demand by a topic.
    r["stream"] = conn.create_stream("shop")
    c.expect("new stream", r["stream"] == {"name": "shop", "topics": []}, r["stream"])
    status, _ = c.refused("stream_again", lambda: conn.create_stream("shop"))
    c.expect("re-creating a stream answers 9", status == ALREADY_EXISTS, status)

    topic = conn.create_topic("orders", 2, stream="shop")
    r["topic"] = topic
    c.expect("topic in its stream", topic["stream"] == "shop" and topic["partitions"] == 2, topic)
    again = conn.create_topic("orders", 2, stream="shop")
    c.expect("re-creating a topic as it is answers it", again["id"] == topic["id"], again)
    made = conn.create_topic("audit", 1, stream="made-on-demand")
    streams = {s["name"]: s["topics"] for s in conn.list_streams()}
    r["streams"] = streams
    c.expect("a missing stream is created", streams.get("made-on-demand") == ["audit"], streams)
    tid = topic["id"]

    # Produce: plain records, then records with keys, headers, create time.
    plain = [encode_record(b"v%d" % i, record_id=i) for i in range(3)]
    r["produced_plain"] = conn.produce(tid, plain, partition=0)
    c.expect("plain batch", r["produced_plain"]["first_offset"] == 0, r["produced_plain"])
    keyed = [
        encode_record(b"paid", key=b"order-7", headers=[("trace", b"abc"), ("retry", None)],
                      create_time=1_767_225_600_000, record_id=7),
        encode_record(b"shipped", key=b"order-8", headers=[("trace", b"def")], record_id=8),
    ]
    r["produced_keyed"] = conn.produce(tid, keyed, partition=0)
    c.expect("keyed batch follows", r["produced_keyed"]["first_offset"] == 3, r["produced_keyed"])

    # By key: the partition the reference's formula gives (a key chosen to
    # land in partition 1, so that partition 0 holds only the batches above).
    key = next(k for k in (b"customer-%d" % n for n in range(100)) if crc32c(k) % 2 == 1)
    by_key = conn.produce(tid, [encode_record(b"k")], key=key)
    r["produced_by_key"] = by_key
    r["key"] = key.decode()
    c.expect("key hash", by_key["partition"] == 1 and by_key["first_offset"] == 0, by_key)

    # Poll partition 0 back: 5 records, in order, as sent.
    polled = conn.poll(tid, 0, 0, 100)
    r["polled"] = polled
    c.expect("five records", [p["offset"] for p in polled] == [0, 1, 2, 3, 4], polled)
    c.expect("plain values", [p["value"] for p in polled[:3]] == ["v0", "v1", "v2"], polled)
    c.expect("keys", [p["key"] for p in polled] == [None, None, None, "order-7", "order-8"], polled)
    c.expect("headers", polled[3]["headers"] == [["trace", "abc"], ["retry", None]], polled[3])
    c.expect("create time", polled[3]["create_time"] == 1_767_225_600_000, polled[3])
    c.expect("one timestamp per batch",
             len({p["timestamp"] for p in polled[:3]}) == 1
             and polled[3]["timestamp"] == polled[4]["timestamp"]
             and polled[0]["timestamp"] <= polled[3]["timestamp"], polled)

    # Count 0, past the end, positions.
    r["poll_count_0"] = conn.poll(tid, 0, 0, 0)
    r["poll_past_end"] = conn.poll(tid, 0, 99, 10)
    c.expect("count 0 answers none", r["poll_count_0"] == [], r["poll_count_0"])
    c.expect("past the end answers none", r["poll_past_end"] == [], r["poll_past_end"])
    last = conn.poll_by(tid, 0, KIND_LAST, count=2)
    c.expect("last 2", [p["offset"] for p in last] == [3, 4], last)
    since = conn.poll_by(tid, 0, KIND_TIMESTAMP, value=polled[3]["timestamp"], count=10)
    c.expect("by timestamp", since and since[0]["timestamp"] >= polled[3]["timestamp"], since)

    # Consumer offsets: stored, read back, and used by a poll of the next ones.
    r["stored"] = conn.store_offset("billing", "orders", 0, 3)
    offsets = conn.get_offsets("billing", "orders")
    r["offsets"] = offsets
    c.expect("stored offset", offsets["partitions"][0]["offset"] == 3, offsets)
    c.expect("no offset elsewhere", offsets["partitions"][1]["offset"] is None, offsets)
    c.expect("next offset", offsets["partitions"][0]["next_offset"] == 5, offsets)
    nxt = conn.poll_by(tid, 0, KIND_NEXT, count=1, consumer="billing", auto_commit=True)
    c.expect("next from the stored offset", [p["offset"] for p in nxt] == [3], nxt)
    after = conn.get_offsets("billing", tid)
    c.expect("auto-commit stored 4", after["partitions"][0]["offset"] == 4, after)
    status, _ = c.refused("offset_past_end", lambda: conn.store_offset("billing", tid, 0, 99))
    c.expect("an offset past the end is invalid", status == INVALID, status)

    # Errors that keep the connection, with their messages.
    c.refused("describe_missing", lambda: conn.describe_topic("nope"))
    c.refused("delete_missing", lambda: conn.delete_topic("nope"))
    c.refused("delete_missing_stream", lambda: conn.delete_stream("nowhere"))
    c.refused("bad_partition", lambda: conn.poll(tid, 9, 0, 1))
    described = conn.describe_topic("orders")
    r["described"] = described
    c.expect("describe fills partitions", len(described["partition_info"]) == 2, described)
    r["stats"] = conn.stats()
    conn.close()

    # An empty batch is malformed: status 2, then the connection is closed.
    empty = Connection(addr)
    status, _ = c.refused("empty_batch", lambda: empty.produce(tid, [], partition=0))
    c.expect("an empty batch is malformed", status == MALFORMED, status)
    r["empty_batch_closed"] = empty.is_closed()
    empty.close()
    # So is a JSON body with a field its type does not have.
    unknown = Connection(addr)
    status, _ = c.refused(
        "unknown_field", lambda: unknown.call_json(DESCRIBE_TOPIC, {"title": "orders"})
    )
    r["unknown_field_closed"] = unknown.is_closed()
    unknown.close()

    conn = Connection(addr)
    conn.delete_topic("orders")
    conn.delete_stream("made-on-demand")
    conn.delete_stream("shop")
    r["after_delete"] = conn.list_topics()
    conn.close()
    return r


def limits(addr):
    """Against a server with --max-connections 1 --idle-timeout-seconds 2."""
    c = Checks()
    r = c.report
    first = Connection(addr)
    first.stats()
    # The second connection is sent one frame unasked: status 13, correlation 0.
    second = Connection(addr)
    status, correlation, body = second.read_frame()
    r["refusal"] = {"status": status, "correlation": correlation, "message": body.decode("utf-8")}
    r["refused_closed"] = second.is_closed()
    second.close()
    # The first is closed when idle: no frame, just the end of the stream.
    time.sleep(4.5)
    r["idle_closed"] = first.is_closed(patience=10)
    first.close()
    # And once it has gone, a new connection is let in.
    for _ in range(100):
        try:
            again = Connection(addr)
            r["after_idle"] = again.stats()["connections"]
            again.close()
            break
        except (ServerError, ConnectionClosed):
            time.sleep(0.1)
    return r


def main():
    walk, addr = sys.argv[1], sys.argv[2]
    report = {"check": check, "limits": limits}[walk](addr)
    print(json.dumps(report))
    sys.exit(1 if report["failed"] else 0)


if __name__ == "__main__":
    main()
