#!/bin/sh
# Runs test binaries one after another; prints each suite's Check summary and
# a final "N passed, N failed" line. Exits non-zero if any suite failed.
BUILD=$1
shift
export MP_BUILD="$BUILD"
passed=0
failed=0
for t in "$@"; do
    echo "== $t"
    if "$t"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "!! FAILED: $t"
    fi
done
echo "suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
