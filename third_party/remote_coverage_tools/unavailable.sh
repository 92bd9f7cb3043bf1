#!/bin/sh
echo "bazel coverage is not available in the rnnzoo workspace: Bazel's coverage tools are not installed (see third_party/remote_coverage_tools/README.md)" >&2
exit 1
