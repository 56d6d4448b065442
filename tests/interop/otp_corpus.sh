#!/bin/sh
# SPDX-License-Identifier: Apache-2.0
# Checks the edist term codec against a real Erlang/OTP, both ways.
#
#   otp_corpus.sh CHECKER [OTP_CORPUS_ERL]   the test (meson passes both)
#   otp_corpus.sh --seeds DIR [OTP_CORPUS_ERL]
#       writes libFuzzer seeds to DIR/decode, DIR/parse and DIR/pattern
#
# Environment: OTP_CORPUS_SEED (default 1) picks the corpus, OTP_CORPUS_COUNT
# (default 10000) the number of random terms, OTP_CORPUS_KEEP=1 keeps the
# temporary directory (corpus and our output) for investigation. A single
# record is re-checked verbosely with: CHECKER corpus.bin /dev/null INDEX
#
# The last line of output is "N passed, N failed" over the C checker and the
# erl verifier together; the exit status is non-zero on any failure.
set -u
exec 2>&1 # one stream, so that the summary line really is the last line

here=$(cd "$(dirname "$0")" && pwd)
seed=${OTP_CORPUS_SEED:-1}
count=${OTP_CORPUS_COUNT:-10000}

die() {
    echo "FAIL: $*"
    echo "0 passed, 1 failed"
    exit 1
}

if [ "${1:-}" = "--seeds" ]; then
    [ $# -ge 2 ] || die "usage: $0 --seeds DIR [otp_corpus.erl]"
    dir=$2
    src=${3:-$here/otp_corpus.erl}
    mode=seeds
else
    [ $# -ge 1 ] || die "usage: $0 CHECKER [otp_corpus.erl]"
    checker=$1
    src=${2:-$here/otp_corpus.erl}
    mode=test
    [ -x "$checker" ] || die "checker $checker is not executable"
fi

# CI always installs Erlang: a missing erl is a failure, not a skip.
command -v erl >/dev/null 2>&1 || die "erl not found (Erlang/OTP is required)"
command -v erlc >/dev/null 2>&1 || die "erlc not found (Erlang/OTP is required)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/otp_corpus.XXXXXX") || die "mktemp failed"
if [ "${OTP_CORPUS_KEEP:-0}" = 1 ]; then
    echo "keeping $tmp"
else
    trap 'rm -rf "$tmp"' EXIT
fi
trap 'exit 130' INT TERM

erlc -o "$tmp" "$src" || die "erlc $src failed"
run_erl() {
    erl -noshell -noinput -pa "$tmp" -run otp_corpus main "$@"
}

if [ "$mode" = seeds ]; then
    mkdir -p "$dir" || die "cannot create $dir"
    run_erl seeds "$seed" "$dir" || die "seed generation failed"
    exit 0
fi

start=$(date +%s)
run_erl gen "$seed" "$count" "$tmp/corpus.bin" || die "corpus generation failed (seed $seed)"

"$checker" "$tmp/corpus.bin" "$tmp/ours.bin" >"$tmp/check.out" 2>&1
check_rc=$?
summary=$(tail -n 1 "$tmp/check.out")
sed '$d' "$tmp/check.out"
if ! printf '%s\n' "$summary" | grep -Eq '^[0-9]+ passed, [0-9]+ failed$'; then
    echo "$summary"
    echo "FAIL: checker exited with status $check_rc and no summary"
    summary="0 passed, 1 failed"
fi

verify_rc=0
if [ -s "$tmp/ours.bin" ]; then
    run_erl verify "$tmp/corpus.bin" "$tmp/ours.bin" >"$tmp/verify.out" 2>&1
    verify_rc=$?
    cat "$tmp/verify.out"
else
    verify_rc=1
    echo "FAIL: the checker wrote no output for erl to verify"
fi
vsummary=$(grep -E '^erl verify: [0-9]+ passed, [0-9]+ failed$' "$tmp/verify.out" 2>/dev/null | tail -n 1)

c_passed=${summary%% passed*}
c_failed=${summary#*passed, }
c_failed=${c_failed%% failed*}
v_passed=0
v_failed=1
if [ -n "$vsummary" ]; then
    v=${vsummary#erl verify: }
    v_passed=${v%% passed*}
    v_failed=${v#*passed, }
    v_failed=${v_failed%% failed*}
fi
passed=$((c_passed + v_passed))
failed=$((c_failed + v_failed))
[ "$check_rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
[ "$verify_rc" -ne 0 ] && [ "$failed" -eq 0 ] && failed=1

echo "seed $seed, $(($(date +%s) - start)) s; reproduce with OTP_CORPUS_SEED=$seed OTP_CORPUS_KEEP=1"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
