#!/usr/bin/env bash
# Builds the libFuzzer targets into OUT (default build/fuzz): each target is its harness,
# Tests/Fuzz/FuzzSupport.swift and exactly the product sources it needs, compiled by swiftc
# with -sanitize=fuzzer,address (no SwiftPM, so the parsers must stay free of other
# dependencies: a new one shows up here as a compile error).
#
#   Tests/Fuzz/build.sh [OUT] [TARGET...]      targets: frame http nats tag regex (default: all)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v swiftc >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"

OUT="${1:-build/fuzz}"
shift || true
S=Sources/LogRelayCore
F=Tests/Fuzz
REGEX="$S/Regex/LinearRegex.swift $S/Regex/RegexParser.swift $S/Regex/RegexProgram.swift \
       $S/Regex/RegexMatcher.swift $S/Regex/RegexCharClass.swift $S/Regex/RegexUnicode.swift"

# target → harness and product sources (keep in step with the imports of the parsers)
sources() {
    case "$1" in
        frame) echo "$F/FuzzFrameDecoder.swift $S/Stream/FrameDecoder.swift" ;;
        http)  echo "$F/FuzzHTTPParser.swift $S/DaemonAPI/HTTPParser.swift" ;;
        nats)  echo "$F/FuzzNATSServerParser.swift $S/Sinks/NATS/NATSProtocol.swift $S/Support/JSONText.swift" ;;
        # TagTemplate uses OptionError (LogOptions.swift), ContainerInfo, NATSServerURL.hexValue
        # and JSONText; LogOptions.swift needs NATSSubject (NATSServerURL.swift) and the regex
        # engine in turn.
        tag)   echo "$F/FuzzTagTemplate.swift $S/Event/TagTemplate.swift $S/Event/LogOptions.swift \
                     $S/Event/ContainerInfo.swift $S/Sinks/NATS/NATSServerURL.swift $S/Support/JSONText.swift \
                     $REGEX" ;;
        regex) echo "$F/FuzzRegex.swift $REGEX" ;;
        *) echo "unknown fuzz target: $1" >&2; return 1 ;;
    esac
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame http nats tag regex)
mkdir -p "$OUT"
for t in "${targets[@]}"; do
    src=$(sources "$t")
    bin="$OUT/fuzz-$t"
    # Rebuild only when a source is newer than the binary (2 shared cores: no needless work).
    if [ -x "$bin" ] && [ -z "$(find $src $F/FuzzSupport.swift "$0" -newer "$bin" 2>/dev/null)" ]; then
        echo "fuzz build: $bin is up to date"
        continue
    fi
    echo "fuzz build: $bin"
    # ld.gold warns about every ASan helper symbol ("Cannot export local symbol"): noise.
    # shellcheck disable=SC2086
    swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name "Fuzz_$t" \
        $F/FuzzSupport.swift $src -o "$bin.tmp" 2> >(grep -v "Cannot export local symbol" >&2)
    mv "$bin.tmp" "$bin"
done
