#!/usr/bin/env bash
# Stage 3's protocol by hand: no Rust client, only bash, printf and od.
#
#   cargo run --release -p stage3-tcp-server --bin stage3-server   # one terminal
#   stages/3-tcp-server/demo.sh [HOST:PORT]                         # another
#
# Talks to a running stage3-server (default 127.0.0.1:7403): creates stream
# 100, appends "hello" (id 1) and "world" (id 2), and polls the stream from
# offset 0 (each run appends two more, and a restarted server still has them),
# printing every frame both ways, byte by byte, and what its fields say. The
# book's protocol reference gives the layout; every integer is little-endian.
set -euo pipefail
addr="${1:-127.0.0.1:7403}"
host="${addr%:*}"
port="${addr##*:}"
exec 3<>"/dev/tcp/$host/$port" || {
  echo "no server at $addr: start one with cargo run --release -p stage3-tcp-server --bin stage3-server" >&2
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

correlation=0
reply=() # the last reply's body, one decimal byte per element
status=0

# Sends one frame (code, body as escapes) and reads the reply into $status and
# ${reply[@]}.
request() {
  local code=$1 body=$2 frame len
  correlation=$((correlation + 1))
  frame="$(le 4 $((6 + ${#body} / 4)))$(le 2 "$code")$(le 4 "$correlation")$body"
  echo "  -> $(( ${#frame} / 4 )) bytes: frame_len, code $code, correlation $correlation, body"
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

stream=100 # a stream of its own: the load generator uses streams 0 and up
echo "create stream $stream (code 1: stream u32)"
request 1 "$(le 4 $stream)"
echo "     ok: empty body"
echo

echo "append \"hello\" (id 1) and \"world\" (id 2) (code 2: stream u32, count u32, then per message id u64, len u32, payload)"
body="$(le 4 $stream)$(le 4 2)"
body+="$(le 8 1)$(le 4 5)$(text hello)"
body+="$(le 8 2)$(le 4 5)$(text world)"
request 2 "$body"
echo "     ok: first_offset $(field 0 8), count $(field 8 4), durable ${reply[12]}"
echo

echo "poll stream $stream from offset 0, at most 10 (code 3: stream u32, offset u64, count u32)"
request 3 "$(le 4 $stream)$(le 8 0)$(le 4 10)"
count=$(field 0 4)
echo "     ok: count $count, then stage 1's records (offset u64, id u64, len u32, payload):"
at=4
for ((m = 0; m < count; m++)); do
  len=$(field $((at + 16)) 4)
  payload=$(printf '%b' "$(printf '\\x%02x' "${reply[@]:at+20:len}")")
  echo "     offset $(field "$at" 8), id $(field $((at + 8)) 8), len $len, payload \"$payload\""
  at=$((at + 20 + len))
done
exec 3>&-
