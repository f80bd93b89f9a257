// Shared pieces of the unit tests: attaching a stream to a real connection, LineRecords,
// a loopback listener.
import Glibc
@testable import LogRelayCore

/// A stream attached to a Logentries connection of `registry`, as StartLogging does it.
func attachLogentries(registry: LogentriesRegistry, options: LogentriesOptions, tls: TLSContext?, name: String,
                      buffer: EventBuffer, encoder: EventEncoder) -> ConnectionSink<LogentriesSink> {
    let a = LogentriesAttachment(buffer: buffer, name: name, route: LogentriesWire(token: options.token, encoder: encoder))
    return ConnectionSink(attachment: a, connection: registry.attach(a, key: options.connectionKey) {
        LogentriesSink(key: options.connectionKey, tls: tls)
    })
}

/// LineRecords for `lines`, as the stream thread writes them into a buffer.
func lineRecords(_ lines: [[UInt8]], source: String, time: Int64, partial: Bool = false) -> [UInt8] {
    var out: [UInt8] = []
    for l in lines {
        l.withUnsafeBytes { line in
            Array(source.utf8).withUnsafeBytes { src in
                LineRecord.append(line: line, source: src, timeNano: time, partial: partial, to: &out)
            }
        }
    }
    return out
}
