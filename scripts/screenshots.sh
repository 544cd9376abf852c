#!/usr/bin/env bash
# Regenerates the console's and the tenant portal's screenshots in docs/console/*.png and prints its
# page weights and load times, by running the console's browser tests in
# headless Chromium (apt-get install chromium) against a real control plane,
# agent and receiver. docs/CONSOLE.md shows the pictures and the figures.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p docs/console
rm -f docs/console/*.png
HOOKWIRE_CONSOLE_SCREENSHOTS="$PWD/docs/console" go test ./controlplane/internal/webui/ \
  -run 'TestConsole(DeliveryFlow|Charts|SubscriptionActions|Performance)$' -count=1 -v 2>&1 |
  grep -E '^(---|ok|FAIL|PASS)|PERF' | sed 's/^ *browser_more_test.go:[0-9]*: //'
# The tenant portal's pages (a 360 px wide phone, the tenant's dark theme).
HOOKWIRE_CONSOLE_SCREENSHOTS="$PWD/docs/console" go test ./cmd/hookwire/ \
  -run 'TestPortalInBrowser$' -count=1 -v 2>&1 | grep -E '^(---|ok|FAIL|PASS)'
ls -l docs/console
