#!/usr/bin/env bash
# Regenerates the Swift code for every .proto under Protos/ into Shared/KeelAPI/Generated.
#
#   Protos/generate.sh            regenerate in place
#   Protos/generate.sh --check    regenerate into a temporary folder and fail if the
#                                 committed code differs (CI runs this)
#
# Needs `protoc` (Debian: protobuf-compiler). The Swift plugins protoc-gen-swift and
# protoc-gen-grpc-swift-2 are taken from $KEEL_PROTOC_PLUGINS when set, otherwise
# built once (release, ~3 min) from grpc-swift-protobuf into .build-protoc-plugins/.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PLUGINS_VERSION="2.4.1"
MODE="write"
if [[ "${1:-}" == "--check" ]]; then MODE="check"; fi

if ! command -v protoc >/dev/null; then
  echo "protoc not found: install it with 'apt-get install -y protobuf-compiler'" >&2
  exit 1
fi

plugins="${KEEL_PROTOC_PLUGINS:-}"
if [[ -z "$plugins" ]]; then
  src="$ROOT/.build-protoc-plugins/grpc-swift-protobuf"
  if [[ ! -x "$src/.build/release/protoc-gen-grpc-swift-2" || ! -x "$src/.build/release/protoc-gen-swift" ]]; then
    echo "building protoc plugins from grpc-swift-protobuf $PLUGINS_VERSION (one time)" >&2
    rm -rf "$src"
    mkdir -p "$(dirname "$src")"
    git clone --quiet https://github.com/grpc/grpc-swift-protobuf "$src"
    git -C "$src" checkout --quiet "$PLUGINS_VERSION"
    (cd "$src" && swift build -c release --product protoc-gen-grpc-swift-2 >&2 \
      && swift build -c release --product protoc-gen-swift >&2)
  fi
  plugins="$src/.build/release"
fi

out="$ROOT/Shared/KeelAPI/Generated"
if [[ "$MODE" == "check" ]]; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
rm -rf "$out"
mkdir -p "$out"

cd "$ROOT/Protos"
mapfile -t protos < <(find keel opentelemetry grpc -name '*.proto' | LC_ALL=C sort)
protoc -I . \
  --plugin=protoc-gen-swift="$plugins/protoc-gen-swift" \
  --plugin=protoc-gen-grpc-swift-2="$plugins/protoc-gen-grpc-swift-2" \
  --swift_out="$out" --swift_opt=Visibility=Public,FileNaming=PathToUnderscores,UseAccessLevelOnImports=true \
  --grpc-swift-2_out="$out" \
  --grpc-swift-2_opt=Visibility=Public,Client=true,Server=true,FileNaming=PathToUnderscores,UseAccessLevelOnImports=true \
  "${protos[@]}"

if [[ "$MODE" == "check" ]]; then
  if ! diff -r "$ROOT/Shared/KeelAPI/Generated" "$out" >/dev/null; then
    echo "Shared/KeelAPI/Generated is out of date: run Protos/generate.sh and commit the result" >&2
    diff -r "$ROOT/Shared/KeelAPI/Generated" "$out" | head -40 >&2
    exit 1
  fi
  echo "generated code is current"
fi
