#!/bin/sh
# The container's entry point: check the home once (a mistake stops the container with one clear line and
# exit 2, rather than a worker that fails at every pass), then become the worker so that SIGTERM and SIGHUP
# reach it directly.
set -e
playbook validate >/dev/null
exec playbook worker "$@"
