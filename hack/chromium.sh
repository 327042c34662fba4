#!/usr/bin/env bash
# chromium.sh makes sure headless Chromium (Debian's chromium) is there for the
# portal's real-browser test (controlplane/portal TestBrowser). Under CI
# (CI=true) a missing chromium is installed (about 25 packages, 124 MB, when the
# X libraries are there; /work/shared/PLATFORM-NOTES.md); elsewhere it only says
# how, and the test skips with the same message.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then
  exit 0
fi
if [ "${CI:-}" = "true" ]; then
  echo ">> installing chromium from Debian (CI) for the portal's browser test" >&2
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq >&2
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends chromium >&2
else
  echo "NOTE: no chromium: the portal's browser test (controlplane/portal TestBrowser) will skip; install it with apt-get install --no-install-recommends chromium" >&2
fi
