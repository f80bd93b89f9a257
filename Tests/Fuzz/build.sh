#!/usr/bin/env bash
# Builds the libFuzzer targets into OUT (default build/fuzz): each target is its harness,
# Tests/Fuzz/FuzzSupport.swift and exactly the product sources it needs, compiled by swiftc
# with -sanitize=fuzzer,address (no SwiftPM, so the parsers must stay free of other
# dependencies: a new one shows up here as a compile error).
#
#   Tests/Fuzz/build.sh [OUT] [TARGET...]      targets: frame http nats tag regex options startlogging encoder logentries httpresponse nkeys (default: all)
set -euo pipefail
cd "$(dirname "$0")/../.."
command -v swiftc >/dev/null || export PATH="/opt/swift/usr/bin:$PATH"

OUT="${1:-build/fuzz}"
shift || true
S=Sources/LogRelayCore
F=Tests/Fuzz
REGEX="$S/Regex/LinearRegex.swift $S/Regex/RegexParser.swift $S/Regex/RegexProgram.swift \
       $S/Regex/RegexMatcher.swift $S/Regex/RegexCharClass.swift $S/Regex/RegexUnicode.swift"

# The option parser and what it needs: TagTemplate uses OptionError (LogOptions.swift),
# ContainerInfo, NATSServerURL.hexValue and JSONText; LogOptions.swift needs NATSSubject
# (NATSServerURL.swift), the NATS user key file type (NATSUserKey.swift, NKeys.swift: OpenSSL),
# the multiline-datetime-format check (MultilineGrouper.swift, PartialMerger.swift, SourceSlots.swift, FrameDecoder.swift) and the regex engine in turn;
# NATSUserKey reads its file with the system layer.
SYSTEM="$S/System/Files.swift $S/System/Socket.swift $S/System/Threads.swift"
OPTIONS="$S/Event/TagTemplate.swift $S/Event/LogOptions.swift $S/Event/ContainerInfo.swift \
         $S/Sinks/NATS/NATSServerURL.swift $S/Sinks/NATS/NATSUserKey.swift $S/Sinks/NATS/NKeys.swift \
         $S/Stream/MultilineGrouper.swift $S/Stream/PartialMerger.swift $S/Stream/SourceSlots.swift $S/Stream/FrameDecoder.swift \
         $S/Support/JSONText.swift $REGEX $SYSTEM"

# target → harness and product sources (keep in step with the imports of the parsers)
sources() {
    case "$1" in
        frame) echo "$F/FuzzFrameDecoder.swift $S/Stream/FrameDecoder.swift" ;;
        http)  echo "$F/FuzzHTTPParser.swift $S/DaemonAPI/HTTPParser.swift" ;;
        httpresponse) echo "$F/FuzzHTTPResponseParser.swift $S/Transport/HTTPResponseParser.swift" ;;
        nats)  echo "$F/FuzzNATSServerParser.swift $S/Sinks/NATS/NATSProtocol.swift $S/Support/JSONText.swift" ;;
        nkeys) echo "$F/FuzzNKeys.swift $S/Sinks/NATS/NKeys.swift $S/Sinks/NATS/NATSProtocol.swift $S/Support/JSONText.swift" ;;
        tag)   echo "$F/FuzzTagTemplate.swift $OPTIONS" ;;
        regex) echo "$F/FuzzRegex.swift $REGEX" ;;
        options) echo "$F/FuzzLogOptions.swift $OPTIONS" ;;
        startlogging) echo "$F/FuzzStartLogging.swift $OPTIONS $S/Event/Attributes.swift" ;;
        # ContainerInfo throws OptionError (LogOptions.swift), hence $OPTIONS; LineRecord reads
        # record lengths with EventBuffer's helper, and an EventBuffer charges the FlowBudget.
        encoder) echo "$F/FuzzEventEncoder.swift $S/Event/EventEncoder.swift $OPTIONS" ;;
        logentries) echo "$F/FuzzLogentriesWire.swift $S/Sinks/Logentries/LogentriesWire.swift $S/Sinks/LineRecord.swift \
                          $S/Sinks/EventBuffer.swift $S/Sinks/FlowBudget.swift $S/System/Mutex.swift \
                          $S/Event/EventEncoder.swift $OPTIONS" ;;
        *) echo "unknown fuzz target: $1" >&2; return 1 ;;
    esac
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame http nats tag regex options startlogging encoder logentries httpresponse nkeys)
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
    swiftc -sanitize=fuzzer,address -parse-as-library -O -module-name "Fuzz_$t" -I Sources/CSystem -I Sources/COpenSSL \
        $F/FuzzSupport.swift $src -o "$bin.tmp" 2> >(grep -v "Cannot export local symbol" >&2)
    mv "$bin.tmp" "$bin"
done
