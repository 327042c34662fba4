#!/bin/sh
mkdir -p out
echo "report of ${WANT}" > out/report.txt
echo "checking ${WANT}"
echo "a warning" >&2
[ "${WANT}" = pass ] || exit 7
echo PASS
