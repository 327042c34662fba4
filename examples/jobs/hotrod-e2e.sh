#!/bin/sh
# hotrod e2e: one dispatch through the frontend under the sandbox's routing
# key; the route hop must be the sandbox's fork. SIGNADOT_ROUTING_KEY and
# SIGNADOT_SANDBOX_NAME (and the SANDBOXMESH_* twins) come from the runner.
set -eu
echo "routing key ${SIGNADOT_ROUTING_KEY}, sandbox ${SIGNADOT_SANDBOX_NAME}"
wget -q -O response.json --header "baggage: sm-routing-key=${SIGNADOT_ROUTING_KEY}" \
  "${FRONTEND}/dispatch?customer=392"
echo "answer: $(wc -c < response.json) bytes, sha256 $(sha256sum response.json | cut -d " " -f 1)"
# The route hop of the (indented) answer, without white space:
# "service":"route","version":...,"build":...,"sandbox":...
route=$(tr -d ' \n' < response.json | grep -o '"service":"route"[^{}]*' | head -n 1)
echo "route hop: ${route}"
case "$route" in
  *"\"sandbox\":\"${SIGNADOT_SANDBOX_NAME}\""*) ;;
  *) echo "FAIL: the route hop was not served by sandbox ${SIGNADOT_SANDBOX_NAME}" >&2; exit 1 ;;
esac
case "$route" in
  *"\"build\":\"${WANT_BUILD}\""*) ;;
  *) echo "FAIL: the route hop is not build ${WANT_BUILD}" >&2; exit 1 ;;
esac
echo "PASS: route served by the fork (build ${WANT_BUILD})"
