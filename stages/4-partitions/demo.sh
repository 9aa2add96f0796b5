#!/usr/bin/env bash
# Stage 4's protocol by hand: no Rust client, only bash, printf and od.
#
#   cargo run --release -p stage4-partitions --bin stage4-server   # one terminal
#   stages/4-partitions/demo.sh [HOST:PORT]                         # another
#
# Talks to a running stage4-server (default 127.0.0.1:7404): creates topic 7
# with 3 partitions, produces a batch by key ("order-7") and two by round
# robin, then polls the key's partition and checks each record's crc32c here,
# in bash, over the bytes the checksum covers: from byte 4 to the end of the
# payload. Every frame is printed both ways; the book's protocol reference
# gives the layout, and every integer is little-endian. Run it again and the
# batches are appended after the first ones.
set -euo pipefail
addr="${1:-127.0.0.1:7404}"
host="${addr%:*}"
port="${addr##*:}"
exec 3<>"/dev/tcp/$host/$port" || {
  echo "no server at $addr: start one with cargo run --release -p stage4-partitions --bin stage4-server" >&2
  exit 1
}

# Integers as printf escapes, little-endian: every byte of a frame is written
# as \xHH, so a frame's length is its escapes' length divided by four.
le() { # le BYTES VALUE
  local i out=""
  for ((i = 0; i < $1; i++)); do out+=$(printf '\\x%02x' $((($2 >> (8 * i)) & 255))); done
  printf '%s' "$out"
}
text() { # the bytes of a string
  local i out=""
  for ((i = 0; i < ${#1}; i++)); do out+=$(printf '\\x%02x' "'${1:i:1}"); done
  printf '%s' "$out"
}
hex() { # the escapes of a frame as hex, 16 bytes a line
  printf '%s\n' "$1" | sed 's/\\x//g; s/../& /g' | fold -w 48 | sed 's/^/     /; s/ *$//'
}
# CRC-32C (Castagnoli), bit by bit, of the bytes given as decimal arguments.
crc32c() {
  local crc=0xFFFFFFFF byte bit
  for byte in "$@"; do
    crc=$((crc ^ byte))
    for ((bit = 0; bit < 8; bit++)); do
      if ((crc & 1)); then crc=$(((crc >> 1) ^ 0x82F63B78)); else crc=$((crc >> 1)); fi
    done
  done
  printf '0x%08x' $((crc ^ 0xFFFFFFFF))
}
bytes_of() { # a string's bytes as decimal arguments
  local i
  for ((i = 0; i < ${#1}; i++)); do printf '%d ' "'${1:i:1}"; done
}

correlation=0
reply=() # the last reply's body, one decimal byte per element
status=0

# Sends one frame (code, body as escapes) and reads the reply into $status and
# ${reply[@]}.
request() {
  local code=$1 body=$2 frame len
  correlation=$((correlation + 1))
  frame="$(le 4 $((6 + ${#body} / 4)))$(le 2 "$code")$(le 4 "$correlation")$body"
  echo "  -> $((${#frame} / 4)) bytes: frame_len, code $code, correlation $correlation, body"
  hex "$frame"
  printf '%b' "$frame" >&3
  len=$(head -c 4 <&3 | od -An -tu4 | tr -d ' ')
  # od prints decimal bytes separated by blanks: one array element each.
  # shellcheck disable=SC2207
  header=($(head -c 6 <&3 | od -An -tu1))
  status=$((header[0] | header[1] << 8))
  reply=()
  if ((len > 6)); then
    # shellcheck disable=SC2207
    reply=($(head -c $((len - 6)) <&3 | od -An -tu1 -v))
  fi
  echo "  <- $((4 + len)) bytes: status $status, correlation $((header[2] | header[3] << 8 | header[4] << 16 | header[5] << 24)), body of ${#reply[@]} bytes"
  if ((${#reply[@]} > 0)); then
    hex "$(printf '\\x%02x' "${reply[@]}")"
  fi
  if ((status != 0)); then
    echo "     error: $(printf '%b' "$(printf '\\x%02x' "${reply[@]}")")"
    exit 1
  fi
}

# A little-endian integer of the reply, from byte $1, $2 bytes long.
field() {
  local i value=0
  for ((i = $2 - 1; i >= 0; i--)); do value=$((value << 8 | reply[$1 + i])); done
  echo "$value"
}

# One record as a producer sends it: the checksum, offset and timestamp are
# the server's to fill in, so they go as zeros.
record() { # record ID PAYLOAD
  printf '%s' "$(le 4 0)$(le 4 ${#2})$(le 8 0)$(le 8 0)$(le 8 "$1")$(text "$2")"
}

topic=7
partitions=3
echo "create topic $topic with $partitions partitions (code 10: topic u32, partitions u32)"
request 10 "$(le 4 $topic)$(le 4 $partitions)"
echo "     ok: empty body"
echo

key=order-7
# shellcheck disable=SC2046
key_crc=$(crc32c $(bytes_of "$key"))
echo "produce \"paid\" (id 1) and \"shipped\" (id 2) by key \"$key\" (code 11: topic u32, partitioning 2, key_len u16, key, count u32, records)"
echo "     crc32c(\"$key\") = $key_crc, and $key_crc % $partitions = $((key_crc % partitions)): the partition it must land in"
request 11 "$(le 4 $topic)$(le 1 2)$(le 2 ${#key})$(text "$key")$(le 4 2)$(record 1 paid)$(record 2 shipped)"
keyed=$(field 0 4)
echo "     ok: partition $keyed, first_offset $(field 4 8), count $(field 12 4), durable ${reply[16]}"
echo

for id in 3 4; do
  echo "produce \"next-$id\" (id $id) by round robin (code 11: topic u32, partitioning 1, count u32, records)"
  request 11 "$(le 4 $topic)$(le 1 1)$(le 4 1)$(record "$id" "next-$id")"
  echo "     ok: partition $(field 0 4), first_offset $(field 4 8), count $(field 12 4), durable ${reply[16]}"
  echo
done

echo "poll partition $keyed of topic $topic from offset 0, at most 10 (code 12: topic u32, partition u32, offset u64, count u32)"
request 12 "$(le 4 $topic)$(le 4 "$keyed")$(le 8 0)$(le 4 10)"
count=$(field 0 4)
echo "     ok: count $count, then records (crc32c u32, payload_len u32, offset u64, timestamp u64, id u64, payload):"
at=4
for ((r = 0; r < count; r++)); do
  len=$(field $((at + 4)) 4)
  stored=$(printf '0x%08x' "$(field "$at" 4)")
  payload=$(printf '%b' "$(printf '\\x%02x' "${reply[@]:at+32:len}")")
  covered=("${reply[@]:at+4:28+len}")
  computed=$(crc32c "${covered[@]}")
  echo "     offset $(field $((at + 8)) 8), timestamp $(field $((at + 16)) 8), id $(field $((at + 24)) 8), payload \"$payload\""
  echo "       crc32c $stored; computed here over its bytes 4..$((32 + len)), payload included: $computed ($([ "$stored" = "$computed" ] && echo match || echo MISMATCH))"
  covered[${#covered[@]} - 1]=$((covered[${#covered[@]} - 1] ^ 1))
  echo "       with the payload's last bit flipped it would be $(crc32c "${covered[@]}"): a client refuses that record"
  at=$((at + 32 + len))
done
exec 3>&-
